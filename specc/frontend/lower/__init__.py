"""The lowering of the checked AST that both interpreters consume: the elaborator
(specc.frontend.elaborate) evaluates what is lowered here for given arguments, the source writer
(specc.emit.statements) prints it as Python. A rule written here exists once, so `check` and the
compiled class cannot apply it differently."""
