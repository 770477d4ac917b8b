"""Binding values to parameters: a class's parameters (defaults, `-D` overrides, constructor
arguments), the network's fixed parameters (bound by a backbone, or block-typed), and the budget
one elaboration pays its steps from."""
from __future__ import annotations

import difflib

from ..core.layers import ACTIVATIONS, OPS
from ..core.values import BlockRef, coerce
from . import ast as A
from .errors import Pos, SpecError
from .evaluator import Evaluator
from .load import Program
from .masking import check_name, class_params
from .reserved import PARAMETER_NAMES


def bind_arguments(program: Program, args: dict, overrides: dict | None = None) -> dict:
    """The class's parameter values: defaults, then `overrides` (-D), then `args`."""
    net = program.network
    src = program.sources.get(net.pos.file)
    params = class_params(program)
    known = {p.name for p in params}
    for name in list(args) + list(overrides or {}):
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"parameters: {', '.join(p.name for p in params)}"
            raise SpecError(f"{program.class_name} has no parameter '{name}'", net.pos, hint=hint, source=src)
    bound = {}
    for p in params:
        if p.name in args:
            value, origin = args[p.name], "argument"
        elif overrides and p.name in overrides:
            value, origin = overrides[p.name], "-D value"
        elif p.default is not None:
            value, origin = Evaluator(program, {}).eval(p.default), "default"
        else:
            raise SpecError(f"parameter '{p.name}' of {program.class_name} has no default and no value was given",
                            p.pos, hint=f"pass {p.name}=... (or -D {p.name}=...)",
                            source=program.sources.get(p.pos.file))
        try:
            bound[p.name] = coerce(value, p.type, f"{origin} of '{p.name}'")
        except TypeError as e:
            raise SpecError(str(e), p.pos, source=program.sources.get(p.pos.file)) from None
    return bound


def fixed_values(program: Program) -> dict:
    """The values of the network's fixed parameters (bound by the backbone, or block-typed)."""
    out = {}
    for p, expr, pos in program.network.fixed:
        src = program.sources.get(pos.file)
        check_name(program, p.name, p.pos, "parameter", PARAMETER_NAMES)
        if p.type.name == "block":
            if p.name in OPS or p.name in ACTIVATIONS or p.name in program.blocks:
                raise SpecError(f"block parameter '{p.name}' has the name of a layer or block, which it would "
                                "hide", p.pos, hint="rename the parameter", source=program.sources.get(p.pos.file))
            if not isinstance(expr, A.Name) or expr.id not in program.blocks:
                known = ", ".join(sorted(program.blocks)) or "none"
                raise SpecError(f"'{p.name}' takes a block defined in the spec, e.g. `{p.name}=NAME`", pos,
                                hint=f"blocks in scope: {known}", source=src)
            out[p.name] = BlockRef(expr.id)
            continue
        value = Evaluator(program, {}).eval(expr)
        try:
            out[p.name] = coerce(value, p.type, f"the value bound to '{p.name}'")
        except TypeError as e:
            raise SpecError(str(e), pos, source=src) from None
    return out


def block_parameters(program: Program) -> dict[str, str]:
    """The network's block-typed parameters: name -> the block it is fixed to (unchecked: see
    fixed_values)."""
    return {p.name: expr.id for p, expr, _ in program.network.fixed
            if p.type.name == "block" and isinstance(expr, A.Name)}




_TYPE_REFS: dict[str, A.TypeRef] = {}


def type_ref(typ: str) -> A.TypeRef:
    """The TypeRef of a type written as text ("int?", "list[int]"), shared (they are only read)."""
    t = _TYPE_REFS.get(typ)
    if t is None:
        base, optional = typ.rstrip("?"), typ.endswith("?")
        name, _, arg = base.partition("[")
        t = _TYPE_REFS[typ] = A.TypeRef(name, arg.rstrip("]") or None, optional, Pos("<builtin>", 1, 1))
    return t
