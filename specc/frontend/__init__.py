"""The front end: spec text -> AST -> IR, with source-positioned errors. No torch; the only user
of lark."""
