"""`specc.build`: the runtime form of a spec, a class made in memory with the same constructor as
the generated one, assembled by the same code (specc.assemble)."""
from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

from .assemble import assemble
from .frontend.classdef import NO_DEFAULT, class_def, python_default
from .frontend.load import Program, load_program
from .runtime import compiled


def build(spec_path: str | Path, /, **constructor_args):
    """Compile the spec at `spec_path` in memory and construct it with `constructor_args`."""
    return runtime_class(load_program(spec_path))(**constructor_args)


# Classes made here live in no module, so pickle cannot find them by name: they are cached by the
# content of their spec, and their instances pickle as "the class of this spec, this state".
_classes: dict[tuple, type] = {}


def _key(program: Program, overrides: dict | None) -> tuple:
    return (program.path, program.class_name, program.continual, tuple(program.sources.items()),
            repr(program.mask), repr(sorted((overrides or {}).items())))


def plain_class(program: Program) -> type:
    """The plain (unmasked, non-continual) class of `program`'s architecture, built once."""
    return runtime_class(dataclasses.replace(program, mask=None, continual=False, class_name=program.network.name))


def _instance_of(program: Program, overrides: dict | None):
    cls = runtime_class(program, overrides)
    return cls.__new__(cls)


def runtime_class(program: Program, overrides: dict | None = None) -> type:
    """The class `program` compiles to, made in memory (once per spec content and overrides)."""
    key = _key(program, overrides)
    if key not in _classes:
        _classes[key] = _make_class(program, overrides)
    return _classes[key]


def _make_class(program: Program, overrides: dict | None) -> type:
    cdef = class_def(program, overrides)
    base = getattr(compiled, cdef.base)
    P = inspect.Parameter
    sig = inspect.Signature(
        [P("self", P.POSITIONAL_OR_KEYWORD)]
        + [P(d.name, P.POSITIONAL_OR_KEYWORD, default=P.empty if d.default is NO_DEFAULT else python_default(d))
           for d in cdef.params]
        + [P("kwargs", P.VAR_KEYWORD)])
    names = [d.name for d in cdef.params]

    def __init__(self, *args, **kwargs):
        bound = sig.bind(self, *args, **kwargs)
        bound.apply_defaults()
        values = {n: bound.arguments[n] for n in names}
        base_kwargs = {k: (None if v == "None" else values[v]) for k, v in cdef.base_args}
        base.__init__(self, **base_kwargs, **bound.arguments.get("kwargs", {}))
        assemble(self, program, values)

    def __reduce_ex__(self, protocol):
        return (_instance_of, (program, overrides), self.__getstate__())

    __init__.__signature__ = sig
    return type(cdef.name, (base,), {"__init__": __init__, "__reduce_ex__": __reduce_ex__,
                                     "__module__": __name__, "specc_program": program,
                                     "__doc__": f"{cdef.name}, compiled at run time from {program.path}."})
