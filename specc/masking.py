"""What a `mask SCHEME(...)` declaration does to a backbone's interface.

A scheme rewrites the constructor parameters of the architecture (CLArena's masked classes differ
from the plain ones: HAT adds `gate` after `output_dim` and turns `batch_normalization: bool` into
None / "shared" / "independent"), and maps the masked class's arguments back to the architecture's.
The masking itself is done by the fx passes (specc/passes/)."""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from . import ast as A
from .errors import SpecError
from .load import Program

BN_MODES = (None, "shared", "independent")


@dataclass(frozen=True)
class Option:
    name: str
    type: str
    default: object


# Options each scheme's declaration accepts. `gate` and `batch_normalization` set the defaults of
# the constructor parameters of the same name (CLArena's classes have no default for `gate`).
SCHEMES: dict[str, tuple[Option, ...]] = {
    "hat": (Option("gate", "str?", None), Option("batch_normalization", "str?", None)),
}
NOT_YET = ("wsn", "amnesiac_hat")


def _err(program: Program, msg: str, pos, hint=None) -> SpecError:
    return SpecError(msg, pos, hint=hint, source=program.sources.get(pos.file) if pos else None)


def options(program: Program) -> dict:
    """The declaration's options, checked (literals only), with defaults for the ones not given."""
    m = program.mask
    if m is None:
        return {}
    if m.scheme not in SCHEMES:
        if m.scheme in NOT_YET:
            raise _err(program, f"masking scheme '{m.scheme}' is not supported yet", m.pos,
                       f"supported: {', '.join(SCHEMES)}")
        close = difflib.get_close_matches(m.scheme, list(SCHEMES) + list(NOT_YET), n=1)
        raise _err(program, f"unknown masking scheme '{m.scheme}'", m.pos,
                   f"did you mean '{close[0]}'?" if close else f"schemes: {', '.join(SCHEMES)}")
    opts = {o.name: o for o in SCHEMES[m.scheme]}
    if m.args:
        raise _err(program, f"mask {m.scheme}(...) takes keyword options only", m.args[0].pos,
                   f"options: {', '.join(opts)}")
    out = {}
    for name, expr in m.kwargs:
        if name not in opts:
            close = difflib.get_close_matches(name, list(opts), n=1)
            raise _err(program, f"mask {m.scheme} has no option '{name}'", expr.pos,
                       f"did you mean '{close[0]}'?" if close else f"options: {', '.join(opts)}")
        if not isinstance(expr, A.Lit):
            raise _err(program, f"option '{name}' must be a literal", expr.pos)
        out[name] = (expr.value, expr.pos)
    result = {}
    for o in SCHEMES[m.scheme]:
        value, pos = out.get(o.name, (o.default, m.pos))
        ok = (value is None and o.type.endswith("?")) or isinstance(value, {"str": str, "str?": str, "bool": bool}[o.type])
        if not ok:
            raise _err(program, f"option '{o.name}' must be {o.type}, got {value!r}", pos)
        result[o.name] = value
    if m.scheme == "hat" and result["batch_normalization"] not in BN_MODES:
        raise _err(program, "batch_normalization must be none, \"shared\" or \"independent\"", m.pos)
    return result


def class_params(program: Program) -> list[A.Param]:
    """The constructor parameters of the class `program` compiles to."""
    params = list(program.network.params)
    m = program.mask
    if m is None:
        return params
    opts = options(program)
    if m.scheme == "hat":
        out = []
        for p in params:
            if p.name == "batch_normalization":
                if p.type.name != "bool":
                    raise _err(program, "HAT masking needs `batch_normalization: bool` in the architecture", p.pos)
                p = A.Param(p.name, A.TypeRef("str", None, True, p.pos),
                            A.Lit(m.pos, opts["batch_normalization"]), p.pos)
            out.append(p)
            if p.name == "output_dim":
                out.append(_gate_param(m, opts))
        if not any(p.name == "gate" for p in out):
            out.append(_gate_param(m, opts))
        return out
    return params


def _gate_param(m: A.MaskDecl, opts: dict) -> A.Param:
    default = A.Lit(m.pos, opts["gate"]) if opts["gate"] is not None else None
    return A.Param("gate", A.TypeRef("str", None, False, m.pos), default, m.pos)


def network_args(program: Program, class_values: dict) -> dict:
    """The architecture's arguments for the masked class's (already type-checked) arguments."""
    m = program.mask
    if m is None:
        return dict(class_values)
    out = {k: v for k, v in class_values.items() if k != "gate"}
    if m.scheme == "hat" and "batch_normalization" in class_values:
        mode = class_values["batch_normalization"]
        if mode not in BN_MODES:
            raise _err(program, f"batch_normalization must be None, 'shared' or 'independent', not {mode!r}",
                       m.pos)
        out["batch_normalization"] = mode is not None
    return out
