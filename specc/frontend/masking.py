"""What a `mask SCHEME(...)` declaration does to a backbone's interface.

A scheme rewrites the constructor parameters of the architecture (CLArena's masked classes differ
from the plain ones: HAT adds `gate` after `output_dim` and turns `batch_normalization: bool` into
None / "shared" / "independent"), and maps the masked class's arguments back to the architecture's.
What each scheme adds is its declaration's (specc/schemes); the masking itself is done by its pass
(specc/runtime/schemes)."""
from __future__ import annotations

import difflib
import keyword

from ..core.layers import OPS
from ..schemes import SCHEMES, Scheme, batch_norm_mode
from . import ast as A
from .errors import SpecError
from .load import Program
from .reserved import GENERATED_NAMES, GENERATED_PREFIX, METHODS, PARAMETER_NAMES, SCHEME_ATTRIBUTES


def scheme(program: Program) -> Scheme | None:
    """The declaration of the spec's masking scheme (None: no `mask` line), checked to exist."""
    m = program.mask
    if m is None:
        return None
    if m.scheme not in SCHEMES:
        close = difflib.get_close_matches(m.scheme, list(SCHEMES), n=1)
        raise _err(program, f"unknown masking scheme '{m.scheme}'", m.pos,
                   f"did you mean '{close[0]}'?" if close else f"schemes: {', '.join(SCHEMES)}")
    return SCHEMES[m.scheme]


def weights_branches(program: Program) -> bool:
    s = scheme(program)
    return s is not None and (s.weights_branches or bool(options(program).get("protect_shortcuts")))


def _err(program: Program, msg: str, pos, hint=None) -> SpecError:
    return SpecError(msg, pos, hint=hint, source=program.sources.get(pos.file) if pos else None)


def options(program: Program) -> dict:
    """The declaration's options, checked (literals only), with defaults for the ones not given."""
    m = program.mask
    s = scheme(program)
    if s is None:
        return {}
    opts = {o.name: o for o in s.options}
    if m.args:
        raise _err(program, f"mask {m.scheme}(...) takes keyword options only", m.args[0].pos,
                   f"options: {', '.join(opts)}")
    given = {}
    for name, expr in m.kwargs:
        if name not in opts:
            close = difflib.get_close_matches(name, list(opts), n=1)
            raise _err(program, f"mask {m.scheme} has no option '{name}'", expr.pos,
                       f"did you mean '{close[0]}'?" if close else f"options: {', '.join(opts)}")
        if not isinstance(expr, A.Lit):
            raise _err(program, f"option '{name}' must be a literal", expr.pos)
        given[name] = (expr.value, expr.pos)
    result = {}
    for o in s.options:
        value, pos = given.get(o.name, (o.default, m.pos))
        problem = o.problem(value)
        if problem is not None:
            raise _err(program, problem, pos)
        result[o.name] = value
    return result


def class_params(program: Program) -> list[A.Param]:
    """The constructor parameters of the class `program` compiles to, checked: they become a
    Python signature and attributes of the module."""
    out = _scheme_params(program)
    check_interface(program, out)
    return out


_TYPES = {"int", "float", "bool", "str", "list", "activation"}


def check_interface(program: Program, params: list[A.Param]) -> None:
    """The class name and constructor parameters must make a valid, unshadowed Python class."""
    check_name(program, program.class_name, program.backbone_pos or program.network.pos, "class", GENERATED_NAMES)
    # the network's own class too, when the backbone derives from it under another name
    check_name(program, program.network.name, program.network.pos, "network", GENERATED_NAMES)
    seen: dict[str, A.Param] = {}
    defaulted: A.Param | None = None
    for p in params:
        check_name(program, p.name, p.pos, "parameter", PARAMETER_NAMES)
        if p.name in seen:
            raise _err(program, f"parameter '{p.name}' is declared twice (first at {seen[p.name].pos})", p.pos)
        seen[p.name] = p
        t = p.type
        if t.name not in _TYPES or (t.arg is not None and (t.name != "list" or t.arg not in ("int", "float"))) \
                or (t.name == "list" and t.arg is None):
            raise _err(program, f"unknown type '{t}'", t.pos,
                       "types: int, float, bool, str, list[int], list[float], activation; `T?` also accepts none")
        if p.default is not None:
            defaulted = p
        elif defaulted is not None:
            raise _err(program, f"parameter '{p.name}' has no default but follows '{defaulted.name}', which has one",
                       p.pos, "constructor arguments without a default come first (as in Python): "
                              f"give '{p.name}' a default or move it before '{defaulted.name}'")


def check_name(program: Program, name: str, pos, what: str, reserved: frozenset) -> None:
    """A name that becomes a Python identifier (parameter, module attribute, class)."""
    reason = name_problem(name, reserved)
    if reason is not None:
        raise _err(program, f"'{name}' cannot be a {what} name: {reason}", pos, "choose another name")


def name_problem(name: str, reserved: frozenset) -> str | None:
    """Why `name` cannot be a Python name of the generated class (`reserved`: the names taken where
    it would live), or None."""
    if not name.isidentifier() or keyword.iskeyword(name):
        return "it is a Python keyword"
    if name.startswith("__"):
        return ("Python mangles names that start with two underscores inside a class, and those that also "
                "end with two are its special names (__init__, __class__, __dict__, ...)")
    if name == "self":
        return "the generated constructor calls the instance `self`"
    if name == "kwargs":
        return "the generated constructor passes on other keyword arguments as `kwargs`"
    if name.startswith(GENERATED_PREFIX):
        return f"the generated module names runtime helpers '{GENERATED_PREFIX}...'"
    if name not in reserved:
        return None
    if name in GENERATED_NAMES:
        return f"the generated module uses the name '{name}' (an import or a builtin its constructor calls)"
    if name in METHODS:
        return f"the backbone has a method '{name}' (of torch.nn.Module or the backbone classes)"
    if name in SCHEME_ATTRIBUTES:
        return f"{SCHEME_ATTRIBUTES[name]} keeps its own attribute '{name}' on the backbone"
    return f"the backbone already has an attribute '{name}'"


_BATCH_NORM_OPS = tuple(name for name, entry in OPS.items() if entry.per_task_copies)


def check_scheme_names(program: Program) -> None:
    """Names the masking scheme gives attributes of its own must be free: with per-task batch
    norms ("independent"), a batch norm (or a module list of them) `X` of a module gets siblings
    `Xs` (its per-task copies) and `original_X_state_dict` (specc/runtime/batchnorm.py), as in
    CLArena. Checked on the spec text, so it holds whatever the arguments."""
    m = program.mask
    if m is None or options(program)["batch_normalization"] == "off":
        return
    scopes = [(program.network.body, list(class_params(program)))]
    scopes += [(b.body, []) for b in program.blocks.values()]
    for body, params in scopes:
        names: dict[str, object] = {p.name: p.pos for p in params}
        norms: list[str] = []
        for el in A.layer_elements(body):
            if el.path is not None:
                names.setdefault(el.path.name, el.path.pos)
                if len(el.ops) == 1 and el.ops[0].name in _BATCH_NORM_OPS and el.ops[0].repeat is None:
                    norms.append(el.path.name)
        for bn in norms:
            for taken in (f"{bn}s", f"original_{bn}_state_dict"):
                if taken in names:
                    raise _err(program, f"'{taken}' cannot be a module or parameter name here: the {m.scheme} "
                                        f"scheme keeps the per-task copies of batch norm '{bn}' under it",
                               names[taken], "choose another name")


def _scheme_params(program: Program) -> list[A.Param]:
    params = list(program.network.params)
    m = program.mask
    s = scheme(program)
    if s is None:
        return params
    opts = options(program)
    gate = _gate_param(m, opts) if s.unit_masks else None
    out = []
    for p in params:
        if p.name == "batch_normalization":
            if p.type.name != "bool":
                raise _err(program, f"masking with {m.scheme} needs `batch_normalization: bool` in the architecture",
                           p.pos)
            if opts["batch_normalization"] == "off":
                continue
            p = A.Param(p.name, A.TypeRef("str", None, True, p.pos),
                        A.Lit(m.pos, opts["batch_normalization"]), p.pos)
        out.append(p)
    if gate is not None:
        # CLArena puts `gate` right after `output_dim`. A `gate` without a default must also come
        # before the first parameter with one, or the signature would not be valid Python.
        names = [p.name for p in out]
        at = names.index("output_dim") + 1 if "output_dim" in names else len(out)
        if gate.default is None:
            first_default = next((i for i, p in enumerate(out) if p.default is not None), len(out))
            at = min(at, first_default)
        out.insert(at, gate)
    for name, type_, default in s.extra_params:
        out.append(A.Param(name, A.TypeRef(type_, None, False, m.pos), A.Lit(m.pos, default), m.pos))
    return out


def _gate_param(m: A.MaskDecl, opts: dict) -> A.Param:
    default = A.Lit(m.pos, opts["gate"]) if opts["gate"] is not None else None
    return A.Param("gate", A.TypeRef("str", None, False, m.pos), default, m.pos)


def check_gate_default(program: Program, value, pos=None) -> None:
    """A gate given as a default (`-D gate=...`) or in a `prepare(...)` (at `pos`) must be one there
    is: a class whose default cannot be constructed is not emitted. (A gate passed to the
    constructor is the runtime's to refuse, with CLArena's ValueError.)"""
    s = scheme(program)
    if s is not None and s.unit_masks and value not in s.gates:
        raise _err(program, f"gate must be {' or '.join(repr(g) for g in s.gates)}, not {value!r}",
                   pos or program.mask.pos)


def network_args(program: Program, class_values: dict) -> dict:
    """The architecture's arguments for the masked class's (already type-checked) arguments."""
    m = program.mask
    s = scheme(program)
    if s is None:
        return dict(class_values)
    added = {"gate"} if s.unit_masks else set()
    added |= {name for name, _, _ in s.extra_params}
    out = {k: v for k, v in class_values.items() if k not in added}
    if options(program)["batch_normalization"] == "off" and any(
            p.name == "batch_normalization" for p in program.network.params):
        out["batch_normalization"] = False
    elif "batch_normalization" in class_values:
        try:
            mode = batch_norm_mode(class_values["batch_normalization"])
        except ValueError as e:
            raise _err(program, str(e), m.pos) from None
        out["batch_normalization"] = mode is not None
    return out
