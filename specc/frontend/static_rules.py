"""The rules of a spec that hold whatever its arguments, checked on the text of every element, in
the network and in every block, under every guard (issue 20: `conv2d(4, kernal=3) if flag` must be
refused even where `flag` is false for the values `check` probes).

Both sides consume these rules once: `check`, `show`, `graph` and `compile` run them through
specc.frontend.probe.check_statically before elaborating or writing anything, and the source writer
(specc.emit.statements) resolves an operation with `layer_kind`, the same function. What depends on
argument values (shapes, module-list order, computed names) is checked by the elaborator for the
values given and again, positioned, by the generated constructor (specc.runtime.shapes, indexed,
module_name)."""
from __future__ import annotations

import difflib

from ..core.layers import ACTIVATIONS, OPS, REQUIRED
from ..core.values import coerce
from . import ast as A
from .errors import SpecError
from .load import Program


def layer_kind(program: Program, name: str, params: dict[str, A.Param], block_params: dict[str, str]) -> str | None:
    """What an operation name stands for in a scope whose parameters are `params` (name -> its
    declaration; loop variables are not parameters): "activation", "builtin", "function" (a
    builtin without a module), "block", "activation-param" (an activation-typed parameter), or None
    (not a layer). The elaborator's order: activations, builtins, blocks, then parameters, so a
    parameter named like a layer does not hide it."""
    if name in ACTIVATIONS:
        return "activation"
    if name in OPS:
        return "function" if OPS[name].torch_class is None else "builtin"
    if block_params.get(name, name) in program.blocks:
        return "block"
    p = params.get(name)
    if p is not None and p.type.name == "activation":
        return "activation-param"
    return None


def _err(program: Program, msg: str, pos, hint: str | None = None) -> SpecError:
    return SpecError(msg, pos, hint=hint, source=program.sources.get(pos.file))


def given_arguments(program: Program, op: A.Op, names: list[str], what: str) -> dict[str, A.Expr]:
    """The expressions `op` passes, by argument name (positional ones first), for a layer or block
    whose arguments are `names`: at most that many positional arguments, no unknown name, none given
    twice. The elaborator binds arguments with it too."""
    if len(op.args) > len(names):
        raise _err(program, f"{what} takes at most {len(names)} positional arguments, got {len(op.args)}", op.pos,
                   f"arguments: {', '.join(names)}" if names else None)
    given = dict(zip(names, op.args))
    for name, a in op.kwargs:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            raise _err(program, f"{what} has no argument '{name}'", a.pos,
                       f"did you mean '{close[0]}'?" if close else
                       (f"arguments: {', '.join(names)}" if names else f"{what} takes no arguments"))
        if name in given:
            raise _err(program, f"argument '{name}' of {what} given twice", a.pos)
        given[name] = a
    return given


def _check_signature(program: Program, op: A.Op, signature, what: str) -> None:
    """Argument names, counts, required arguments and literal types of `op` against `signature`
    ((name, type, default) triples; a type is text, or a TypeRef for a block's parameters)."""
    given = given_arguments(program, op, [n for n, _, _ in signature], what)
    for name, typ, default in signature:
        if name not in given:
            if default is REQUIRED:
                raise _err(program, f"{what} needs argument '{name}'", op.pos)
            continue
        a = given[name]
        if isinstance(a, A.Lit):
            from .binding import type_ref

            try:
                coerce(a.value, typ if isinstance(typ, A.TypeRef) else type_ref(typ), f"argument '{name}' of {what}",
                       isinstance(typ, A.TypeRef))
            except TypeError as e:
                raise _err(program, str(e), a.pos) from None


def _block_signature(block: A.BlockDef):
    return [(p.name, p.type, REQUIRED if p.default is None else None) for p in block.params]


def _check_op(program: Program, op: A.Op, params: dict, block_params: dict) -> None:
    kind = layer_kind(program, op.name, params, block_params)
    if kind is None:
        p = params.get(op.name)
        if p is not None and p.type.name == "block":
            return  # a block parameter bound to no block: refused where it is bound (elaborate.fixed_values)
        if p is not None:
            raise _err(program, f"'{op.name}' is a parameter of type {p.type.name}, not a layer", op.pos,
                       "an operation names a layer, an activation, a block, or a parameter of type "
                       "activation or block")
        known = list(OPS) + list(ACTIVATIONS) + list(program.blocks)
        close = difflib.get_close_matches(op.name, known, n=1)
        raise _err(program, f"unknown layer '{op.name}'", op.pos,
                   f"did you mean '{close[0]}'?" if close else "builtin layers: " + ", ".join(OPS))
    if kind == "activation":
        _check_signature(program, op, ACTIVATIONS[op.name], op.name)
    elif kind in ("builtin", "function"):
        _check_signature(program, op, OPS[op.name].params, op.name)
    elif kind == "block":
        block = program.blocks[block_params.get(op.name, op.name)]
        _check_signature(program, op, _block_signature(block), f"block '{block.name}'")
    elif op.args or op.kwargs:  # an activation parameter: its value (a class) is called as it is
        raise _err(program, f"activation parameter '{op.name}' takes no arguments here", op.pos,
                   "its value is constructed without arguments; write the activation by name to pass some")


def check_sequence_op(program: Program, el: A.Layer, op: A.Op, params: dict, block_params: dict) -> None:
    """What may be repeated or be part of a sequence (an nn.Sequential of numbered children): a module.
    A builtin without one (flatten, identity, ...) may not, nor an optional activation parameter among
    other operations (where it is none the sequence would have a hole; alone, its element's implicit
    guard leaves the whole element out: specc.frontend.lower.guards). The elaborator checks each
    operation of a sequence with this function too."""
    if len(el.ops) == 1 and op.repeat is None:
        return
    kind = layer_kind(program, op.name, params, block_params)
    if kind == "function":
        raise _err(program, f"'{op.name}' has no module, so it cannot be repeated or part of a sequence", op.pos,
                   "write it as an element of its own")
    if kind == "activation-param" and len(el.ops) > 1 and params[op.name].type.optional:
        raise _err(program, f"activation parameter '{op.name}' may be none, so it cannot be part of a sequence",
                   op.pos, f"give it an element of its own (`NAME: {op.name}()`), which is left out when it is none")


def _check_element(program: Program, el: A.Layer) -> None:
    p = el.path
    for op in el.ops:
        entry = OPS.get(op.name)
        if entry is not None and entry.parameter and (
                p is None or p.index is not None or p.parts is not None or len(el.ops) > 1 or op.repeat is not None):
            # its name is the name of a parameter of the enclosing module (timm's `cls_token`)
            raise _err(program, f"'{op.name}' makes a parameter of the enclosing module: it needs a plain name "
                       "and cannot be repeated, listed or part of a sequence", op.pos,
                       f"write `NAME: {op.name}()` as an element of its own, e.g. `cls_token: class_token()`")
    if p is None:
        return
    if p.index is not None and (len(el.ops) > 1 or el.ops[0].repeat is not None):
        raise _err(program, "a sequence cannot be an element of a module list", p.pos,
                   "give the sequence a name of its own (`name: a(...), b(...)`), or a computed name (`name{i}`)")
    if p.parts is not None:
        check_scheme_computed_name(program, p)
    if p.parts is None:
        check_module_name(program, p.name, p.pos)


def check_not_parameter(program: Program, name: str, pos, params) -> None:
    """A module of the network may not take the name of one of its `params` (parameters become
    attributes of the backbone). Checked here for every plain name whatever the guards, and by the
    elaborator on a computed name's value."""
    if name in params:
        raise _err(program, f"module '{name}' has the name of a parameter", pos,
                   "parameters become attributes of the backbone: rename one of them")


def check_module_name(program: Program, name: str, pos) -> None:
    """A module name the generated class can take: a Python name that is not reserved (a method or
    attribute of the class: specc.frontend.reserved) and not the factory of a block (`block_NAME`).
    Checked here for every plain name whatever the guards, and by the elaborator for a computed name's
    value (what the masking scheme takes is checked on that name's text: check_scheme_computed_name)."""
    from .masking import check_name
    from .reserved import MODULE_NAMES

    check_name(program, name, pos, "module", MODULE_NAMES)
    if name in block_factories(program):
        raise _err(program, f"module name '{name}' is taken by the generated class (the factory of block "
                   f"'{name[len('block_'):]}')", pos, "choose another name")


def block_factories(program: Program) -> tuple[str, ...]:
    """The names of the blocks' factories (`block_NAME`), which no module may take: the elaborator
    refuses them (check_module_name) and the generated constructor, for a computed name, through
    factories_spelled_by, whichever blocks the class instantiates."""
    return tuple(sorted(f"block_{b}" for b in program.blocks))


def factories_spelled_by(program: Program, parts: list) -> tuple[str, ...]:
    """The block factories a computed name with `parts` (literal text or expressions) may spell: those
    its leading literal text fits; none when it starts with a value (an int's digits)."""
    head = parts[0] if parts and isinstance(parts[0], str) else None
    if head is None:
        return ()
    return tuple(f for f in block_factories(program) if f.startswith(head) or head.startswith(f))


def check_scheme_computed_name(program: Program, p: A.PathRef) -> None:
    """A computed name that ends in 's' or starts with 'original_' is refused under a masking scheme
    with batch norms (it names the per-task copies of a batch norm X `Xs` and
    `original_X_state_dict`): the braces hold ints, so the name's text decides both."""
    from .masking import options

    if program.mask is None or options(program).get("batch_normalization") == "off":
        return
    assert p.parts is not None, "only computed names (with parts) are checked here"
    first, last = p.parts[0], p.parts[-1]
    if (isinstance(last, str) and last.endswith("s")) or (isinstance(first, str) and first.startswith("original_")):
        raise _err(program, "this computed module name cannot be used here: the masking scheme names the per-task "
                   "copies of a batch norm X `Xs` and `original_X_state_dict`", p.pos,
                   "choose a name that does not end in 's' or start with 'original_'")


def first_joins(stmts) -> dict[str, int]:
    """Branch name -> index of the first statement of `stmts` that joins it (by add or concat)."""
    out: dict[str, int] = {}
    for i, s in enumerate(stmts):
        for name in _joins_in(s):
            out.setdefault(name, i)
    return out


def _joins_in(s) -> list[str]:
    """The branches a statement joins (by add or concat), in order."""
    if isinstance(s, A.ForLoop):
        return [n for st in s.body for n in _joins_in(st)]
    out = []
    if isinstance(s, (A.Chain, A.Branch)):
        for el in A.flat_elements(s.elements):
            if isinstance(el, A.Add):
                out.append(el.branch)
            elif isinstance(el, A.Concat):
                out += el.branches
            elif isinstance(el, A.Mul):
                out.append(el.branch)
    return out


def _check_branches(program: Program, stmts) -> None:
    """A branch joined inside a loop is computed once, before the loop: it must be declared first."""
    joins = first_joins(stmts)
    for i, s in enumerate(stmts):
        if isinstance(s, A.Branch):
            first = joins.get(s.name)
            if first is not None and first < i and isinstance(stmts[first], A.ForLoop):
                raise _err(program, f"branch '{s.name}' is added inside a loop before it is declared", s.pos,
                           "declare the branch before the loop that adds it")


def check_records(program: Program, elements) -> None:
    """Which layer a `record` stores the activation of is decided by the chain's text: a record after
    a guarded weighted layer (or a guarded group holding one) would store one layer's activation
    or another's depending on the guard, which the generated forward cannot follow. Refused."""
    def weighted(el) -> bool:
        return isinstance(el, A.Layer) and len(el.ops) == 1 and el.ops[0].repeat is None \
            and el.ops[0].name in OPS and OPS[el.ops[0].name].weighted

    def walk(elements, state):
        # state: None (no weighted layer yet), "sure", or the position of the guard that makes it unsure
        for el in elements:
            if weighted(el):
                state = el.cond_pos if el.cond is not None else "sure"
            elif isinstance(el, A.Group):
                inner = walk(el.elements, state)
                if el.cond is not None and any(weighted(x) for x in A.flat_elements(el.elements)):
                    state = el.cond_pos
                elif el.cond is None:
                    state = inner
            elif isinstance(el, A.Record) and state not in (None, "sure"):
                raise _err(program, "which layer's activation this `record` stores depends on the guard at "
                           f"{state.line}:{state.column}", el.pos,
                           "record inside the guarded part, or unguard the weighted layer")
        return state
    walk(elements, None)


def _chains(stmts):
    """The element lists of the chains and branches of `stmts`, loops included, in source order."""
    for s in stmts:
        if isinstance(s, A.ForLoop):
            yield from _chains(s.body)
        elif isinstance(s, (A.Chain, A.Branch)):
            yield s.elements


def check_static_rules(program: Program) -> None:
    """Every element of the network and of every block, whatever the guards: operation names,
    argument names and counts, literal argument types, module-list elements, reserved module names,
    a plain module name declared twice (whatever the guards),
    branches joined in loops, records whose layer a guard decides, in-place operations that may
    overwrite the caller's input, a recorded activation or a value branches read."""
    from .binding import block_parameters
    from .lower.uses import resolve_use, use_targets

    block_params = block_parameters(program)
    net_params = {p.name: p for p in program.network.params}
    net_params.update({p.name: p for p, _, _ in program.network.fixed})
    scopes = [(program.network.body, net_params, "the network")]
    scopes += [(b.body, {**net_params, **{p.name: p for p in b.params}}, "this block") for b in program.blocks.values()]
    for body, params, where in scopes:
        _check_branches(program, body)
        targets = use_targets(body)
        for elements in _chains(body):
            check_records(program, elements)
            for el in A.flat_elements(elements):
                if isinstance(el, A.Use):
                    resolve_use(program, targets, el, where, params, block_params)
        seen: set[str] = set()
        for el in sorted(A.layer_elements(body), key=lambda el: (el.pos.file, el.pos.line, el.pos.column)):
            _check_element(program, el)
            p = el.path
            if where == "the network" and p is not None and p.parts is None:
                check_not_parameter(program, p.name, p.pos, net_params)
            if p is not None and p.index is None and p.parts is None:
                if p.name in seen:  # the generated constructor would let the second replace the first
                    raise _err(program, f"module '{p.name}' is declared twice", p.pos,
                               "one element per module name, whatever the guards: give each its own name (an "
                               "activation, dropout or pooling may be called again with `use NAME`)")
                seen.add(p.name)
            for op in el.ops:
                _check_op(program, op, params, block_params)
                check_sequence_op(program, el, op, params, block_params)
    check_inplace(program)


# Builtins whose output may be their input itself or a view of it, by their catalogue role (dropout in
# eval mode returns its input; flatten and subsample are views; identity is its input; a zero pad may
# be a view).
_PASS_THROUGH = tuple(n for n, k in OPS.items() if k.role in ("dropout", "identity", "flatten", "subsample", "pad"))


_INPUT = "the network's input, which belongs to the caller (or a view of it)"
_RECORDED = "a value recorded as an activation"
_SHARED = "a value that other layers or branches read too"


class _Overwrites:
    """Where the value flowing through a chain may be one that an in-place operation must not
    overwrite, for some arguments: the caller's input tensor (or a view of it), a recorded
    activation, or a block's input that its branches read too. An element under a guard may be
    absent, a repetition or a loop may run zero times, a block's body may pass its input through,
    `record if c` may record. An in-place operation where that may be so is refused whatever the
    arguments: the compiled class cannot tell at construction what its forward's values are.
    The state is the reason (one of the three above) or None (surely a new tensor of its own)."""

    def __init__(self, program: Program):
        from .binding import block_parameters

        self.program = program
        self.block_params = block_parameters(program)
        self.net_params = {p.name: p for p in program.network.params}
        self.net_params.update({p.name: p for p, _, _ in program.network.fixed})
        self.done: dict[tuple, str | None] = {}

    def body(self, stmts, start: str | None, params: dict) -> str | None:
        """The state after a scope's statements, from `start` (the state of the scope's input)."""
        if any(isinstance(s, A.Branch) for s in stmts):
            start = start or _SHARED  # the main path and the branches read the scope's input
        return self.statements(stmts, start, start, params, _modules(stmts))

    def statements(self, stmts, state, start, params, modules) -> str | None:
        for s in stmts:
            if isinstance(s, A.ForLoop):
                state = state or self.statements(s.body, state, start, params, modules)
            elif isinstance(s, A.Chain):
                state = self.elements(s.elements, state, params, modules)
            elif isinstance(s, A.Branch):  # from the scope's input
                self.elements(s.elements, start, params, modules)
        return state

    def elements(self, elements, state, params: dict, modules: dict) -> str | None:
        for el in elements:
            if isinstance(el, A.Group):
                out = self.elements(el.elements, state, params, modules)
            elif isinstance(el, A.Layer):
                out = self.layer(el, state, params)
            elif isinstance(el, A.Use):
                target = modules.get(el.path.name)
                out = self.op(target.ops[0], state, params) if target is not None else state
            elif isinstance(el, (A.Add, A.Concat, A.Mul)):
                out = None
            elif isinstance(el, A.Record):
                out = state or _RECORDED
            else:
                out = state
            state = (state or out) if el.cond is not None else out
        return state

    def layer(self, el: A.Layer, state, params: dict) -> str | None:
        for op in el.ops:
            out = self.op(op, state, params)
            state = (state or out) if op.repeat is not None else out
        return state

    def op(self, op: A.Op, state, params: dict) -> str | None:
        kind = layer_kind(self.program, op.name, params, self.block_params)
        inplace = next((a for name, a in op.kwargs if name == "inplace"), None)
        if inplace is not None and not (isinstance(inplace, A.Lit) and inplace.value is False) and state:
            raise _err(self.program, f"'{op.name}' has inplace=true but its input may be {state} for some "
                       "arguments: overwriting it would change results", op.pos,
                       "drop `inplace=true` here, or put a layer that makes a new tensor (a conv, a linear, a "
                       "batch norm, ...) before it, unguarded")
        if kind == "block":
            block = self.program.blocks[self.block_params.get(op.name, op.name)]
            key = (block.name, state)
            if key not in self.done:
                self.done[key] = self.body(block.body, state, {**self.net_params, **{p.name: p for p in block.params}})
            return self.done[key]
        if kind == "activation-param":
            return state if params[op.name].type.optional else None
        if kind == "activation":
            return state if inplace is not None else None
        if kind in ("builtin", "function") and op.name in _PASS_THROUGH:
            return state
        return None


def _modules(stmts) -> dict:
    """The single modules a `use` in `stmts` may name: plain name -> its element."""
    return {el.path.name: el for el, _ in A.guarded_layers(stmts) if el.path is not None
            and el.path.parts is None and el.path.index is None and len(el.ops) == 1}


def check_inplace(program: Program) -> None:
    """No in-place operation where its input may be a value it must not overwrite (_Overwrites)."""
    walker = _Overwrites(program)
    walker.body(program.network.body, _INPUT, walker.net_params)
