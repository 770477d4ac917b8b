"""Facts shared by the front end and the runtime: the layer catalogue and the value types of the
spec language. Imports neither torch nor lark."""
