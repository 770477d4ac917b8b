"""The interface of the class a Program compiles to: its name, base class and constructor
parameters (with defaults as Python values and as validated source text). Shared by the runtime
class factory (specc.build) and the emitter, so both expose the same constructor."""
from __future__ import annotations

from dataclasses import dataclass

from ..core.activations import ACTIVATIONS
from ..core.values import Activation, coerce, type_name
from .ast import TypeRef
from .binding import bind_arguments
from .errors import SpecError
from .evaluator import Evaluator
from .load import Program
from .masking import check_gate_default, class_params, network_args

NO_DEFAULT = object()


@dataclass(frozen=True)
class ParamDef:
    name: str
    annotation: str  # Python source text
    default: object  # Python value (activations as Activation), or NO_DEFAULT
    default_src: str | None  # Python source text of the default


@dataclass(frozen=True)
class ClassDef:
    name: str
    params: tuple[ParamDef, ...]


def class_def(program: Program, overrides: dict | None = None) -> ClassDef:
    """The class of `program`; `overrides` (-D name=value) replace parameters' defaults."""
    overrides = overrides or {}
    params_ast = class_params(program)
    unknown = set(overrides) - {p.name for p in params_ast}
    if unknown:
        # bind_arguments words the error (with a suggestion) the same way for -D and arguments.
        bind_arguments(program, {}, {n: overrides[n] for n in unknown})
    params = []
    for p in params_ast:
        if p.name in overrides:
            default = _coerce(program, p, overrides[p.name], "-D value")
        elif p.default is not None:
            default = _coerce(program, p, Evaluator(program, {}).eval(p.default), "default")
        else:
            default = NO_DEFAULT
        params.append(ParamDef(p.name, annotation(p.type), default,
                               None if default is NO_DEFAULT else literal(default)))
    # A default the masked class would refuse (`-D gate=tanh`) is refused here, not at run time.
    if "gate" in overrides:
        check_gate_default(program, overrides["gate"])
    network_args(program, {d.name: d.default for d in params if d.name == "batch_normalization"
                           and d.default is not NO_DEFAULT})
    defaulted = None
    for p, d in zip(params_ast, params):
        if d.default is not NO_DEFAULT:
            defaulted = p
        elif defaulted is not None:
            raise SpecError(f"-D gives '{defaulted.name}' a default, but '{p.name}' after it has none",
                            p.pos, hint=f"set it too (-D {p.name}=...): constructor arguments without a "
                                        "default come first", source=program.sources.get(p.pos.file))
    return ClassDef(program.class_name, tuple(params))


def _coerce(program: Program, p, value, origin: str):
    try:
        return coerce(value, p.type, f"{origin} of '{p.name}'")
    except TypeError as e:
        raise SpecError(str(e), p.pos, source=program.sources.get(p.pos.file)) from None


def annotation(t: TypeRef) -> str:
    base = {"int": "int", "float": "float", "bool": "bool", "str": "str",
            "activation": "type[nn.Module]"}.get(t.name)
    if t.name == "list":
        base = f"list[{t.arg or 'int'}]"
    if base is None:
        raise SpecError(f"unknown type '{type_name(t)}'", t.pos,
                        hint="types: int, float, bool, str, list[int], list[float], activation (each may end in ?)")
    return f"{base} | None" if t.optional else base


def literal(v) -> str:
    """Python source for a validated value: only literals and catalogue activation classes."""
    if isinstance(v, Activation):
        if v.cls is not None or v.name not in ACTIVATIONS:
            raise ValueError(f"{v!r} has no source form")
        return f"nn.{v.name}"
    if v is None or isinstance(v, (bool, int, str)):
        return repr(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):  # `inf` and `nan` are not literals
            raise ValueError(f"{v!r} has no source form")
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(literal(x) for x in v) + "]"
    raise ValueError(f"{v!r} has no source form")


def python_value(value):
    """A checked spec value as the Python object a constructor takes (activation classes resolved
    from torch.nn)."""
    if isinstance(value, Activation):
        from torch import nn
        return getattr(nn, value.name)
    if isinstance(value, list):
        return list(value)
    return value
