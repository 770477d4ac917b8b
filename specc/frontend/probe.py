"""A spec checked without its constructor's arguments: parameters without a default take `-D`
values, else probe values (the same for `check`, `show`, `graph` and `compile`, which checks every
spec this way before writing anything)."""
from __future__ import annotations

from .elaborate import elaborate
from .facts import analyse
from .ir import Network
from .load import Program
from .masking import class_params, scheme

PROBE_VALUES = {"int": 64, "float": 0.5, "bool": False, "str": "probe", "list": [64], "activation": "ReLU"}


def probe_values(program: Program, overrides: dict) -> dict:
    """Values for the parameters that have neither a default nor a `-D` value: those of the spec's
    first `prepare(...)` (real values its author chose), else stand-ins (a masked class's `gate`: a
    gate the scheme knows)."""
    from .prepare import arguments

    s = scheme(program)
    prepared = arguments(program)[0][0] if program.prepares else {}
    return {p.name: prepared[p.name] if p.name in prepared else
            s.gates[0] if p.name == "gate" and s is not None and s.unit_masks else PROBE_VALUES[p.type.name]
            for p in class_params(program) if p.default is None and p.name not in overrides}


def check_pretrained(program: Program) -> None:
    """A `pretrained` declaration names a `str?` parameter, a torchvision model (an identifier)
    and renames of dotted key segments."""
    import re

    from .errors import SpecError

    decl = program.network.pretrained
    if decl is None:
        return
    src = program.sources.get(decl.pos.file)
    param = next((p for p in program.network.params if p.name == decl.param), None)
    if param is None or param.type.name != "str" or not param.type.optional:
        raise SpecError(f"`pretrained {decl.param}` needs a parameter '{decl.param}: str?' (the name of the "
                        "weights, none for none)", decl.pos, source=src)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", decl.model):
        raise SpecError(f"'{decl.model}' is not a torchvision model name", decl.pos, source=src)
    for old, new in decl.renames:
        for key in (old, new):
            if key is not None and not re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*", key):
                raise SpecError(f"'{key}' is not a state-dict key or part of one (names and indices "
                                "separated by dots)", decl.pos, source=src)


def check_statically(program: Program, overrides: dict) -> None:
    """What holds whatever the arguments, checked on the spec text: no recursive block, no plain
    module name in a loop, the static rules of every element under every guard
    (specc.frontend.static_rules), names the masking scheme keeps free, a known gate as a default, a
    well-formed `pretrained` declaration."""
    from .masking import check_gate_default, check_scheme_names
    from .scope_rules import check_loop_names, check_no_recursive_blocks
    from .static_rules import check_static_rules

    check_no_recursive_blocks(program)
    check_loop_names(program)
    check_static_rules(program)
    check_scheme_names(program)
    if "gate" in overrides:
        check_gate_default(program, overrides["gate"])
    check_pretrained(program)


def probe(program: Program, overrides: dict | None = None, image_size: int | None = None) -> Network:
    """The analysed IR of `program` for its defaults, `overrides` and probe values, after the
    static checks: what `check`, `show`, `graph` and `compile` check."""
    from .prepare import arguments

    overrides = overrides or {}
    check_statically(program, overrides)
    checked = {**probe_values(program, overrides), **overrides}
    net = analyse(elaborate(program, {}, checked, image_size=image_size))
    # Each prepared structure builds and analyses too (a prepare names every parameter without a
    # default); the first one's values are usually the ones just checked.
    for args, _ in arguments(program):
        if any(checked.get(k, _UNSET) != v for k, v in args.items()):
            analyse(elaborate(program, {}, {**overrides, **args}))
    return net


_UNSET = object()
