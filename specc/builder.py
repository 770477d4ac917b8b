"""`specc.build`: the runtime form of a spec, a class made in memory with the same constructor as
the generated one, assembled by the same code (specc.assemble)."""
from __future__ import annotations

import dataclasses
import inspect
from functools import lru_cache
from pathlib import Path

from .assemble import assemble
from .classdef import NO_DEFAULT, class_def, python_default
from .load import Program, load_program
from .runtime import compiled


def build(spec_path: str | Path, /, **constructor_args):
    """Compile the spec at `spec_path` in memory and construct it with `constructor_args`."""
    return runtime_class(load_program(spec_path))(**constructor_args)


_plain: dict[int, tuple[Program, type]] = {}


def plain_class(program: Program) -> type:
    """The plain (unmasked, non-continual) class of `program`'s architecture, built once."""
    hit = _plain.get(id(program))
    if hit is None or hit[0] is not program:
        plain = dataclasses.replace(program, mask=None, continual=False, class_name=program.network.name)
        hit = _plain[id(program)] = (program, runtime_class(plain))
    return hit[1]


def runtime_class(program: Program, overrides: dict | None = None) -> type:
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

    __init__.__signature__ = sig
    return type(cdef.name, (base,), {"__init__": __init__, "__module__": __name__, "specc_program": program,
                                     "__doc__": f"{cdef.name}, compiled at run time from {program.path}."})
