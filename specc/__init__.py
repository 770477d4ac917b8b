"""specc: a compiler from declarative network specs to continual-learning backbones."""

__version__ = "0.1.0"


def build(spec_path, /, **constructor_args):
    """Compile the spec at `spec_path` in memory and construct its class with `constructor_args`."""
    from .builder import build as _build  # torch is imported only when a module is built

    return _build(spec_path, **constructor_args)
