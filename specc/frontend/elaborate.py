"""Elaboration: a Program and constructor arguments -> the IR (specc.frontend.ir.Network).

Binds parameters (defaults, `-D` overrides, constructor arguments), expands blocks, repetitions,
loops and conditionals, infers every input size through the graph, and rejects what does not fit
with a source-positioned SpecError. Pure Python: no torch import.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field

from ..core.layers import ACTIVATIONS, OPS, REQUIRED, check, check_activation, out_shape, parameter_count, torch_kwargs
from ..core.limits import (
    BLOCK_DEPTH,
    INT_BITS,
    LIST_LENGTH,
    MODULES,
    NESTING,
    NODES,
    PARAMETERS,
    VALUE_SIZE,
    Budget,
    int_in_range,
)
from ..core.shape import FIELDS as SHAPE_FIELDS
from ..core.shape import gate_problem
from ..core.values import Activation, BlockRef, coerce, type_name
from . import ast as A
from .errors import Pos, SpecError
from .ir import ModuleDecl, Network, Node, Param, Shape
from .load import Program
from .masking import check_name, check_scheme_names, class_params, network_args, options, weights_branches
from .reserved import MODULE_NAMES, PARAMETER_NAMES
from .static_rules import check_records, first_joins, given_arguments

_FUNCS = ("len", "range", "min", "max")


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


def elaborate(program: Program, args: dict | None = None, overrides: dict | None = None,
              image_size: int | None = None) -> Network:
    """Elaborate `program` with constructor `args` (missing ones take `overrides`, then defaults).

    `image_size` fills in the height and width of an `input image(c)` that leaves them open, so
    that reports can show spatial sizes; the modules built do not depend on it."""
    bound = bind_arguments(program, args or {}, overrides)
    env = network_args(program, bound)
    env.update(fixed_values(program))
    net = _Elaborator(program, env, image_size, weights_branches(program)).run_guarded()
    net.params = [Param(p.name, type_name(p.type), p.default is not None,
                        Evaluator(program, {}).eval(p.default) if p.default is not None else None,
                        bound[p.name]) for p in class_params(program)]
    net.scheme_options = options(program)
    net.weights_branches = weights_branches(program)
    return net


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


def _check_network_in(program: Program) -> None:
    """At network level `in` is the shape entering the element it is written in. It may size
    layers (arguments, repetitions), which the constructor computes; the parts the forward also
    evaluates (conditions, loops, module-list indices, computed names, the arguments of a layer
    without a module such as pad_channels) cannot read it there: the
    generated forward does not track shapes."""
    todo = list(program.network.body)
    while todo:
        st = todo.pop()
        found = []
        if isinstance(st, A.ForLoop):
            todo.extend(st.body)
            found.append(("a loop's list", st.iterable))
        elif isinstance(st, (A.Chain, A.Branch)):
            for el in A.flat_elements(st.elements):
                if el.cond is not None:
                    found.append(("a condition", el.cond))
                path = getattr(el, "path", None)
                if path is not None and path.index is not None:
                    found.append(("a module-list index", path.index))
                if path is not None and path.parts is not None:
                    found += [("a computed name", x) for x in path.parts if not isinstance(x, str)]
                for op in getattr(el, "ops", ()):
                    if op.name in OPS and OPS[op.name].torch_class is None:  # computed by the forward
                        found += [(f"the arguments of {op.name}", a) for a in list(op.args) + [v for _, v in op.kwargs]]
        for what, e in found:
            ref = A.input_ref_in(e)
            if ref is not None:
                raise SpecError(f"at network level, `in` cannot be used in {what}: the forward evaluates it too, "
                                "and does not track shapes", ref.pos,
                                hint="use `in` in layer arguments here, or move this part into a block (whose "
                                     "`in` is the block's input)", source=program.sources.get(ref.pos.file))


_JOIN = {"add": "add", "concat": "concat", "gate": "mul"}


def branch_roles(program: Program, stmts) -> dict[str, str]:
    """How each branch of a scope is joined: "add" (a shortcut), "concat" (a parallel path) or
    "gate" (`mul`: the branch reads the stream where it is used, once), from the scope's text. A branch is
    joined one way; one joined by `concat` is declared before the
    statement that joins it (its modules are built, and its weighted layers listed, before the
    layers that read the concatenation)."""
    roles: dict[str, str] = {}
    gated: set[str] = set()
    declared = {s.name: i for i, s in enumerate(stmts) if isinstance(s, A.Branch)}
    for i, st in enumerate(stmts):
        todo = [st]
        while todo:
            s = todo.pop()
            if isinstance(s, A.ForLoop):
                todo.extend(s.body)
                continue
            if not isinstance(s, (A.Chain, A.Branch)):
                continue
            for el in A.flat_elements(s.elements):
                if isinstance(el, A.Add):
                    uses = [(el.branch, "add", el.pos)]
                elif isinstance(el, A.Concat):
                    uses = [(name, "concat", el.pos) for name in el.branches]
                elif isinstance(el, A.Mul):
                    uses = [(el.branch, "gate", el.pos)]
                else:
                    continue
                for name, role, pos in uses:
                    other = roles.setdefault(name, role)
                    if other != role:
                        first, second = sorted((_JOIN[other], _JOIN[role]))
                        raise SpecError(f"branch '{name}' is joined both by {first} and by {second}", pos,
                                        hint="a branch is a shortcut (add), a parallel path (concat) or a gate "
                                             "(mul): declare one for each",
                                        source=program.sources.get(pos.file))
                    if role == "gate" and name in gated:
                        raise SpecError(f"the gate branch '{name}' is used by mul twice", pos,
                                        hint="a gate branch builds its modules where mul uses it: declare "
                                             "a second branch for a second gate",
                                        source=program.sources.get(pos.file))
                    if role == "gate":
                        gated.add(name)
                    if role == "concat" and name in declared and declared[name] > i:
                        raise SpecError(f"branch '{name}' is concatenated before it is declared", pos,
                                        hint=f"declare `branch {name} = ...` before this statement",
                                        source=program.sources.get(pos.file))
    return roles


@dataclass
class _Scope:
    """Where statements are being elaborated: a network body or one block instance."""

    prefix: tuple[str, ...]
    key: tuple  # order key prefix
    input: int  # node id of the scope's input (`in`)
    env: dict
    branches: dict = field(default_factory=dict)  # name -> (ast.Branch, key)
    branch_values: dict = field(default_factory=dict)  # name -> node id
    block: str | None = None
    evaluator: Evaluator | None = None  # made once per scope: its env (and in a block `in`) does not change
    branch_roles: dict = field(default_factory=dict)  # branch name -> "add" | "concat": how it is joined
    loops: int = 0  # loops entered and not yet left in this scope


class Evaluator:
    """Evaluates spec expressions over an environment of values. Specs are data: only the
    language's own operators and the functions in _FUNCS exist."""

    def __init__(self, program: Program, env: dict, in_shape: Shape | None = None, budget: Budget | None = None):
        self.program = program
        self.env = env
        self.in_shape = in_shape
        # Elaboration steps left (shared by every evaluator of one elaboration); see limits.STEPS.
        self.budget = budget if budget is not None else new_budget(program)

    def err(self, msg: str, pos: Pos, hint: str | None = None):
        return SpecError(msg, pos, hint=hint, source=self.program.sources.get(pos.file))

    def eval(self, e: A.Expr):
        # The parser bounds expression nesting (limits.NESTING), so this recursion stays shallow.
        budget = self.budget
        budget.left -= 1
        if budget.left < 0:
            budget.charge(0, e.pos)
        t = type(e)
        if t is A.Lit:
            return e.value
        return _DISPATCH[t](self, e)

    def _list(self, items: list, pos: Pos) -> list:
        """A list value the spec made: its length is bounded, its elements are paid for."""
        if len(items) > LIST_LENGTH:
            raise self.err(f"list too long: {len(items):,} elements (limit {LIST_LENGTH:,})", pos)
        self.budget.charge(len(items), pos)
        return items

    def _number(self, v, pos: Pos):
        """An arithmetic result: ints below 2**63 in magnitude, floats finite."""
        if isinstance(v, int):
            if not int_in_range(v):
                raise self.err(f"integer too large (limit: below 2**{INT_BITS})", pos)
        elif not math.isfinite(v):
            raise self.err("number too large: the result is not a finite float", pos)
        return v

    def _Lit(self, e):
        return e.value

    def _Name(self, e):
        if e.id in self.env:
            return self.env[e.id]
        if e.id in ACTIVATIONS:
            return Activation(e.id)
        close = difflib.get_close_matches(e.id, list(self.env), n=1)
        raise self.err(f"unknown name '{e.id}'", e.pos, f"did you mean '{close[0]}'?" if close else None)

    def _InputRef(self, e):
        if self.in_shape is None:
            raise self.err("`in` (the shape of the data coming in) is not available here", e.pos,
                           "`in` is available in a block's or network's body, not in defaults or bound values")
        return self.in_shape

    def _Attr(self, e):
        obj = self.eval(e.obj)
        if isinstance(obj, Shape):
            fields = SHAPE_FIELDS[obj.kind]
            if e.name in fields:
                return obj.dims[fields[e.name]]
            raise self.err(f"`in` has no '{e.name}' here (shape {obj})", e.pos,
                           f"available: {', '.join(fields)}")
        raise self.err(f"'{e.name}' is not an attribute of {_show(obj)}", e.pos)

    def _Index(self, e):
        obj, idx = self.eval(e.obj), self.eval(e.index)
        if not isinstance(obj, list):
            raise self.err(f"cannot index {_show(obj)}", e.pos)
        if not _is_int(idx):
            raise self.err(f"a list index must be an int, not {_show(idx)}", e.index.pos)
        if not -len(obj) <= idx < len(obj):
            raise self.err(f"index {idx} is out of range for a list of length {len(obj)}", e.index.pos)
        return obj[idx]

    def _FunCall(self, e):
        if e.func not in _FUNCS:
            raise self.err(f"unknown function '{e.func}'", e.pos, f"functions: {', '.join(_FUNCS)}")
        if e.kwargs:
            raise self.err(f"{e.func}() takes no keyword arguments", e.pos)
        args = []
        for a in e.args:  # a loop, not a comprehension: one frame less per level of nesting
            args.append(self.eval(a))
        if e.func == "len":
            if len(args) != 1 or not isinstance(args[0], list):
                raise self.err("len() takes one list", e.pos)
            return len(args[0])
        if e.func == "range":
            if not 1 <= len(args) <= 3 or not all(_is_int(a) for a in args):
                raise self.err("range() takes one to three ints", e.pos)
            if len(args) == 3 and args[2] == 0:
                raise self.err("range() step must not be zero", e.args[2].pos)
            r = range(*args)
            # Sized before it is made: range(10**9) must not take the memory of a billion ints.
            try:
                length = len(r)
            except OverflowError:  # more than sys.maxsize elements
                length = None
            if length is None or length > LIST_LENGTH:
                raise self.err(f"range() too long: more than {LIST_LENGTH:,} elements (the limit of a list)",
                               e.pos)
            return self._list(list(r), e.pos)
        if not args or (len(args) == 1 and not isinstance(args[0], list)):
            raise self.err(f"{e.func}() takes a list or several numbers", e.pos)
        items = args[0] if len(args) == 1 else args
        self.budget.charge(len(items), e.pos)
        if not items or not all(_is_num(a) for a in items):
            raise self.err(f"{e.func}() needs numbers", e.pos)
        return min(items) if e.func == "min" else max(items)

    def _BinOp(self, e):
        a, b = self.eval(e.left), self.eval(e.right)
        if e.op == "+" and isinstance(a, list) and isinstance(b, list):
            if len(a) + len(b) > LIST_LENGTH:
                raise self.err(f"list too long: {len(a) + len(b):,} elements (limit {LIST_LENGTH:,})", e.pos)
            return self._list(a + b, e.pos)
        if not (_is_num(a) and _is_num(b)):
            raise self.err(f"'{e.op}' needs numbers, not {_show(a)} and {_show(b)}", e.pos)
        if e.op in ("//", "%") and b == 0:
            raise self.err("division by zero", e.pos)
        if e.op == "+":
            v = a + b
        elif e.op == "-":
            v = a - b
        elif e.op == "*":
            v = a * b
        elif e.op == "//":
            v = a // b
        else:
            v = a % b
        return self._number(v, e.pos)

    def _Compare(self, e):
        a, b = self.eval(e.left), self.eval(e.right)
        if isinstance(a, list) or isinstance(b, list):
            self.budget.charge(max(len(a) if isinstance(a, list) else 0, len(b) if isinstance(b, list) else 0),
                               e.pos)
        if e.op == "==":
            return a == b
        if e.op == "!=":
            return a != b
        if not (_is_num(a) and _is_num(b)):
            raise self.err(f"'{e.op}' needs numbers, not {_show(a)} and {_show(b)}", e.pos)
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[e.op]

    def _BoolOp(self, e):
        a = self._truth(e.left)
        if e.op == "and":
            return a and self._truth(e.right)
        return a or self._truth(e.right)

    def _Not(self, e):
        return not self._truth(e.operand)

    def _Neg(self, e):
        v = self.eval(e.operand)
        if not _is_num(v):
            raise self.err(f"cannot negate {_show(v)}", e.pos)
        return self._number(-v, e.pos)

    def _Ternary(self, e):
        return self.eval(e.then) if self._truth(e.cond) else self.eval(e.otherwise)

    def _ListLit(self, e):
        out = []
        for x in e.items:  # a loop, not a comprehension: one frame less per level of nesting
            out.append(self.eval(x))
        return self._list(out, e.pos)

    def _truth(self, e) -> bool:
        v = self.eval(e)
        if not isinstance(v, bool):
            raise self.err(f"a condition must be true or false, not {_show(v)}", e.pos,
                           "compare explicitly, e.g. `dropout != none`")
        return v


# Expression type -> Evaluator method (a dict lookup, not a getattr of a built name, per node).
_DISPATCH = {getattr(A, name[1:]): method for name, method in vars(Evaluator).items()
             if name[:1] == "_" and name[1:2].isupper() and isinstance(getattr(A, name[1:], None), type)}


def _element_ops(stmts):
    """Every (op, element) of `stmts`, loops and branches included, without recursion into blocks."""
    for el in A.layer_elements(stmts):
        for op in el.ops:
            yield op, el


def check_loop_names(program: Program) -> None:
    """Refuse a module with a plain name in a loop, in the network and in every block (used or not
    for the given arguments): it would be declared once per iteration, and even when a guard lets
    only one iteration declare it the emitter cannot write it."""
    for body in [program.network.body] + [b.body for b in program.blocks.values()]:
        # the loops' statements, in source order: the first such module is the one reported
        todo = [st for st in reversed(body) if isinstance(st, A.ForLoop)]
        while todo:
            st = todo.pop()
            if isinstance(st, A.ForLoop):
                todo.extend(reversed(st.body))
            elif isinstance(st, A.Chain):
                for el in A.flat_elements(st.elements):
                    p = el.path if isinstance(el, A.Layer) else None
                    if p is not None and p.parts is None and p.index is None:
                        raise SpecError(f"module '{p.name}' is declared in a loop without an index", p.pos,
                                        hint=f"write `{p.name}[i]: ...` to make a module list, or compute its "
                                             f"name: `{p.name}{{i}}: ...`", source=program.sources.get(p.pos.file))


def check_no_recursive_blocks(program: Program) -> None:
    """A block may not instantiate itself, directly or through others: its expansion would only end
    through a condition on its arguments, which the compiler cannot check before elaborating. So
    every block's instantiation graph must be a DAG, whatever the arguments."""
    calls: dict[str, list[tuple[str, A.Op]]] = {}
    via = {name: block for name, block in block_parameters(program).items() if block in program.blocks}
    for name, block in program.blocks.items():
        calls[name] = sorted(((via.get(op.name, op.name), op) for op, _ in _element_ops(block.body)
                              if (op.name in program.blocks or op.name in via) and op.name not in ACTIVATIONS
                              and op.name not in OPS),
                             key=lambda c: (c[1].pos.file, c[1].pos.line, c[1].pos.column))
    done: set[str] = set()
    for root in calls:
        if root in done:
            continue
        # Depth-first with an explicit stack: (block, index of its next call).
        path, on_path, stack = [root], {root}, [(root, 0)]
        while stack:
            name, i = stack[-1]
            if i == len(calls[name]):
                stack.pop()
                path.pop()
                on_path.discard(name)
                done.add(name)
                continue
            stack[-1] = (name, i + 1)
            callee, op = calls[name][i]
            if callee in on_path:
                chain = " -> ".join(path[path.index(callee):] + [callee])
                raise SpecError(f"recursive block: {chain}", op.pos,
                                hint="a block cannot instantiate itself, directly or through other blocks; "
                                     "write the levels out as separate blocks or use a loop",
                                source=program.sources.get(op.pos.file))
            if callee not in done:
                path.append(callee)
                on_path.add(callee)
                stack.append((callee, 0))


_TYPE_REFS: dict[str, A.TypeRef] = {}
# The argument names of the catalogue's layers and activations (their tuples live as long as it).
_NAMES = {id(params): [n for n, _, _ in params]
          for params in [spec.params for spec in OPS.values()] + list(ACTIVATIONS.values())}


def _type_ref(typ: str) -> A.TypeRef:
    """The TypeRef of a type written as text ("int?", "list[int]"), shared (they are only read)."""
    t = _TYPE_REFS.get(typ)
    if t is None:
        base, optional = typ.rstrip("?"), typ.endswith("?")
        name, _, arg = base.partition("[")
        t = _TYPE_REFS[typ] = A.TypeRef(name, arg.rstrip("]") or None, optional, Pos("<builtin>", 1, 1))
    return t


def new_budget(program: Program) -> Budget:
    """A fresh budget of elaboration steps whose errors are positioned in `program`'s files."""
    return Budget(lambda msg, pos: SpecError(msg, pos, source=program.sources.get(pos.file) if pos else None))


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _show(v) -> str:
    if v is None:
        return "none"
    if isinstance(v, Shape):
        return f"a shape {v}"
    if isinstance(v, list) and len(v) > 8:
        return f"a list of {len(v):,} elements"
    text = repr(v)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{type(v).__name__} {text}"


class _Elaborator:
    def __init__(self, program: Program, bound: dict, image_size: int | None = None,
                 weight_branches: bool = False):
        self.image_size = image_size
        self.weight_branches = weight_branches
        self.program = program
        self.net = program.network
        self.bound = bound
        self.nodes: list[Node] = []
        self.modules: dict[tuple, ModuleDecl] = {}
        self.parameters = 0  # of the layers declared so far (limits.PARAMETERS)
        self.records: dict[str, int] = {}
        self.budget = new_budget(program)
        self.list_lengths: dict[tuple, int] = {}  # ModuleList path -> entries so far
        self.names_ok: set[str] = set()  # module names already checked
        self.skipped: set[tuple] = set()  # paths of named modules whose element was skipped (see _use)
        self.module_ops: dict[tuple, tuple] = {}  # path of a single module -> (op name, kind, bound arguments)
        self.depth = 0  # loops and block instances entered and not yet left
        self.where: Pos = self.net.pos  # the statement being elaborated, for a last-resort error

    def err(self, msg: str, pos: Pos, hint: str | None = None) -> SpecError:
        return SpecError(msg, pos, hint=hint, source=self.program.sources.get(pos.file))

    # -- entry
    def run_guarded(self) -> Network:
        check_no_recursive_blocks(self.program)
        check_scheme_names(self.program)
        try:
            return self.run()
        except RecursionError:
            # Not expected within the limits (NESTING, BLOCK_DEPTH); a caller deep in its own stack
            # still gets a positioned error, not a traceback.
            raise self.err("nested too deeply for this Python stack", self.where,
                           f"nest fewer blocks, loops and expressions (limits: {BLOCK_DEPTH} blocks and loops, "
                           f"{NESTING} levels in one expression)") from None

    def run(self) -> Network:
        _check_network_in(self.program)
        ev = Evaluator(self.program, dict(self.bound), budget=self.budget)
        shape = self._input_shape(ev)
        inp = self._node("input", None, [], shape, self.net.input.pos, (-1,))
        scope = _Scope((), (), inp, dict(self.bound))
        out = self._body(self.net.body, scope, inp)
        self._check_inplace(out)
        base = "CLBackbone" if (self.program.continual or self.program.mask) else "Backbone"
        modules = sorted(self.modules.values(), key=lambda m: (m.order, len(m.path)))
        return Network(self.program.path, self.program.class_name, self.net.name, base,
                       self.program.mask.scheme if self.program.mask else None, [], modules,
                       self.nodes, out, self.records)

    def _check_inplace(self, output: int) -> None:
        """An activation (or dropout) with `inplace=true` overwrites its input: allowed only where
        nothing else reads that value (no other layer, branch, record or the caller's input
        tensor), so that it changes no result."""
        users: dict[int, int] = {}
        for n in self.nodes:
            for i in set(n.inputs):
                users[i] = users.get(i, 0) + 1
        recorded = set(self.records.values()) | {output}
        for n in self.nodes:
            if n.op != "call_module" or not self.modules[n.module].kwargs.get("inplace"):
                continue
            src = self.nodes[n.inputs[0]]
            reason = None
            if src.op == "input":
                reason = "the network's input, which belongs to the caller"
            elif users.get(src.id, 0) > 1:
                reason = "a value that other layers or branches read too"
            elif src.id in recorded:
                reason = "a value recorded as an activation"
            if reason is not None:
                raise self.err(f"'{n.name}' has inplace=true but its input is {reason}: overwriting it would "
                               "change results", n.pos, "drop `inplace=true` here")

    def _input_shape(self, ev: Evaluator) -> Shape:
        d = self.net.input
        dims = [ev.eval(a) for a in d.args]
        expect = {"features": (1,), "signal": (1, 2), "image": (1, 3)}
        if d.kind not in expect:
            raise self.err(f"unknown input kind '{d.kind}'", d.pos,
                           "use `input features(n)`, `input signal(c[, length])` or `input image(c[, h, w])`")
        if len(dims) not in expect[d.kind]:
            raise self.err(f"`input {d.kind}` takes {' or '.join(map(str, expect[d.kind]))} sizes, got {len(dims)}",
                           d.pos)
        for a, v in zip(d.args, dims):
            if not _is_int(v) or v <= 0:
                raise self.err(f"an input size must be a positive int, got {_show(v)}", a.pos)
        if d.kind == "image" and len(dims) == 1:
            dims += [self.image_size, self.image_size]
        if d.kind == "signal" and len(dims) == 1:
            dims += [None]
        return Shape(tuple(dims))

    def _node(self, op, module, inputs, shape, pos, order, **kw) -> int:
        if "in_branch" in kw:  # the node's flag: on a shortcut (a branch joined by `add`)
            kw["in_branch"] = kw["in_branch"] == "shortcut"
        if len(self.nodes) >= NODES:
            raise self.err(f"the network has too many layers: more than {NODES:,} calls in its graph (the limit)", pos)
        size = math.prod(d for d in shape.dims if d is not None) if shape is not None else 0
        if size > VALUE_SIZE:
            raise self.err(f"this value has {shape} = {size:,} numbers a sample, more than {VALUE_SIZE:,} (the limit)",
                           pos)
        n = Node(len(self.nodes), op, module, list(inputs), shape, pos, order, **kw)
        self.nodes.append(n)
        return n.id

    # -- statements
    def _body(self, stmts, scope: _Scope, stream: int) -> int:
        for i, s in enumerate(stmts):
            if isinstance(s, A.Branch):
                if s.name in scope.branches:
                    raise self.err(f"branch '{s.name}' is declared twice in this scope", s.pos)
                scope.branches[s.name] = (s, scope.key + (i,))
        scope.branch_roles = branch_roles(self.program, stmts)
        for i, s in enumerate(stmts):
            if isinstance(s, A.BlockDef):
                raise self.err("blocks are declared at the top level of a file", s.pos)
            if not isinstance(s, A.Branch):  # branches are elaborated where `add` uses them
                stream = self._statement(s, scope, stream, scope.key + (i,))
        joined = first_joins(stmts)
        for name, (b, _key) in list(scope.branches.items()):
            if name in scope.branch_values:
                continue
            if name not in joined:
                raise self.err(f"branch '{name}' is never used", b.pos,
                               f"use it with `add({name})`, `concat({name})` or `mul({name})`")
            # Its joins were all skipped (false guards). The compiled class builds a shortcut or a
            # parallel branch where it is declared, whatever the guards; a gate is built at its `mul`.
            if scope.branch_roles.get(name) != "gate":
                self._branch_value(name, scope, b.pos)
        return stream

    def _loop(self, s: A.ForLoop, scope: _Scope, stream: int, key) -> int:
        self.where = s.pos
        items = self._evaluator(scope).eval(s.iterable)
        if not isinstance(items, list):
            raise self.err(f"`for` iterates over a list, not {_show(items)}", s.iterable.pos,
                           "use a list parameter, a list literal or range(n)")
        for var in (s.index_var, s.item_var):
            if var is not None and var in self.bound:
                raise self.err(f"loop variable '{var}' hides the parameter of the same name", s.pos)
        self.budget.charge(len(scope.env), s.pos)  # the environment is saved and restored
        saved = dict(scope.env)
        lists = None
        if scope.loops == 0:  # the outermost loop of its scope creates the lists its body fills
            lists = [(name, layer, conds, changes, scope.prefix + (name,) in self.modules)
                     for name, layer, conds, changes in A.loop_lists(s)]
        scope.loops += 1
        self._enter(s.pos, "loops and blocks nested")
        for it, item in enumerate(items):
            self.budget.charge(1, s.pos)
            if s.index_var is not None:
                scope.env[s.index_var] = it
            scope.env[s.item_var] = item
            for j, st in enumerate(s.body):
                if not isinstance(st, (A.Chain, A.ForLoop)):
                    raise self.err("only chains and loops may appear inside a `for` body", st.pos)
                stream = self._statement(st, scope, stream, key + (it, j))
        self.depth -= 1
        scope.loops -= 1
        scope.env.clear()
        scope.env.update(saved)
        if lists:
            self._loop_lists(lists, scope, key)
        return stream

    def _loop_lists(self, lists, scope: _Scope, key) -> None:
        """The module lists of a loop (ast.loop_lists) exist from before its first iteration, as the
        generated constructor creates them: under their guards when those do not change from
        iteration to iteration, always otherwise; even when no iteration fills them."""
        ev = self._evaluator(scope)
        for i, (name, layer, conds, changes, existed) in enumerate(lists):
            if existed:  # declared before the loop: not this loop's
                continue
            path, order = scope.prefix + (name,), key + (-1, i)
            decl = self.modules.get(path)
            if decl is not None:
                decl.order = order  # registered before the loop's modules
                continue
            if not changes and not all(ev._truth(c) for c in conds):
                continue
            if len(layer.ops) == 1 and self._op_kind(layer.ops[0], ev)[0] == "skip":
                continue  # an activation parameter set to none
            self._declare(path, "ModuleList", {}, layer.pos, order)

    def _evaluator(self, scope: _Scope) -> Evaluator:
        if scope.evaluator is None:
            scope.evaluator = Evaluator(self.program, scope.env, self.nodes[scope.input].shape if scope.block else None,
                                        budget=self.budget)
        return scope.evaluator

    def _enter(self, pos: Pos, what: str) -> None:
        self.depth += 1
        if self.depth > BLOCK_DEPTH:
            raise self.err(f"{what} too deeply while elaborating (limit {BLOCK_DEPTH} levels)", pos)

    def _statement(self, s: A.Chain | A.ForLoop, scope: _Scope, stream: int, key) -> int:
        if isinstance(s, A.Chain):
            return self._chain(s.elements, scope, stream, key, in_branch=False)
        return self._loop(s, scope, stream, key)

    def _branch_value(self, name: str, scope: _Scope, pos: Pos) -> int:
        if name in scope.branch_values:
            return scope.branch_values[name]
        if name not in scope.branches:
            raise self.err(f"unknown branch '{name}'", pos,
                           f"declare it in this scope: `branch {name} = ...`")
        b, key = scope.branches[name]
        # A branch starts from the scope's input, whatever the main path did before the `add`. A
        # branch joined by `add` is a shortcut; one joined by `concat` is a parallel path of the
        # main computation (its projections are weighted layers, its activations may be recorded).
        role = "parallel" if scope.branch_roles.get(name) == "concat" else "shortcut"
        value = self._chain(b.elements, scope, scope.input, key, in_branch=role)
        scope.branch_values[name] = value
        return value

    # -- chains
    def _chain(self, elements, scope: _Scope, stream: int, key, in_branch) -> int:
        """Elaborate a chain's elements from `stream`; `in_branch` is False on the main path, else
        the role of the branch ("shortcut" or "parallel")."""
        check_records(self.program, elements)
        return self._elements(elements, scope, stream, key, in_branch, None)[0]

    def _elements(self, elements, scope: _Scope, stream: int, key, in_branch, current_layer):
        """(stream, current weighted layer) after `elements` (of a chain or a group)."""
        ev = self._evaluator(scope)
        for e_idx, el in enumerate(elements):
            budget = self.budget  # an element is the costliest step: two
            budget.left -= 2
            if budget.left < 0:
                budget.charge(0, el.pos)
            k = key + (e_idx,)
            if scope.block is None:
                ev.in_shape = self.nodes[stream].shape  # at network level, `in` is the current shape
            if el.cond is not None and not isinstance(el, A.Layer):
                self.where = el.pos
                if not ev._truth(el.cond):
                    if isinstance(el, A.Group):
                        self._skipped(scope, el.elements)
                    continue
            if isinstance(el, A.Record):
                if in_branch == "shortcut":
                    raise self.err("`record` is not allowed in a branch joined by `add` (a shortcut)", el.pos)
                if current_layer is None:
                    raise self.err("`record` needs a weighted layer (linear or conv2d) earlier in its chain", el.pos)
                if current_layer in self.records:
                    raise self.err(f"the activation of '{current_layer}' is recorded twice", el.pos)
                self.records[current_layer] = stream
            elif isinstance(el, A.Add):
                other = self._branch_value(el.branch, scope, el.pos)
                a, b = self.nodes[stream].shape, self.nodes[other].shape
                if a != b:
                    raise self.err(f"add({el.branch}) joins shapes {a} and {b}", el.pos,
                                   "a branch must produce the main path's shape (a strided or wider main path "
                                   "needs a projection in the branch)")
                stream = self._node("add", None, [stream, other], a, el.pos, k,
                                    in_branch=in_branch, chain_layer=current_layer)
            elif isinstance(el, A.Concat):
                stream = self._concat(el, scope, stream, k, in_branch, current_layer)
            elif isinstance(el, A.Mul):
                stream = self._mul(el, scope, stream, k, in_branch, current_layer)
            elif isinstance(el, A.Use):
                stream = self._use(el, scope, stream, k, in_branch, current_layer)
            elif isinstance(el, A.Group):
                start = stream
                stream, current_layer = self._elements(el.elements, scope, stream, k, in_branch, current_layer)
                if el.residual:  # `(+ ...)`: the group's output plus its input, the input as the shortcut
                    a, b = self.nodes[stream].shape, self.nodes[start].shape
                    if a != b:
                        raise self.err(f"the residual group's output {a} and its input {b} differ", el.pos,
                                       "a residual group `(+ ...)` must keep its input's shape")
                    stream = self._node("add", None, [stream, start], a, el.pos, k + (len(el.elements),),
                                        in_branch=in_branch, chain_layer=current_layer)
            else:
                stream, weighted = self._layer(el, scope, stream, k, in_branch, current_layer)
                if weighted is not None:
                    current_layer = weighted
        return stream, current_layer

    def _skipped(self, scope: _Scope, elements) -> None:
        """The names of the modules of skipped elements (a false guard): a later `use` of one of
        them is skipped too."""
        for el in A.flat_elements(elements):
            if isinstance(el, A.Layer) and el.path is not None and el.path.index is None and el.path.parts is None:
                self.skipped.add(scope.prefix + (el.path.name,))

    def _concat(self, el: A.Concat, scope: _Scope, stream: int, key, in_branch, current_layer) -> int:
        inputs = [stream] + [self._branch_value(name, scope, el.pos) for name in el.branches]
        shapes = [self.nodes[i].shape for i in inputs]
        first = shapes[0]
        if any(s.kind == "tokens" for s in shapes):
            raise self.err("concat joins the channels (features) of images and features, not tokens", el.pos)
        for name, shape in zip(el.branches, shapes[1:]):
            if shape.kind != first.kind or shape.dims[1:] != first.dims[1:]:
                what = "spatial sizes" if first.kind == shape.kind else "kinds"
                raise self.err(f"concat({', '.join(el.branches)}): branch '{name}' has shape {shape}, the stream "
                               f"{first}: their {what} differ", el.pos,
                               "concat joins along the channels (features): every other size must be equal")
        units = None if any(s.units is None for s in shapes) else sum(s.units for s in shapes)
        if units is not None and units >= 1 << 63:
            raise self.err(f"concat makes a shape too large: {units} channels", el.pos)
        out = Shape((units,) + first.dims[1:])
        return self._node("concat", None, inputs, out, el.pos, key, in_branch=in_branch, chain_layer=current_layer)

    def _mul(self, el: A.Mul, scope: _Scope, stream: int, key, in_branch, current_layer) -> int:
        """The gate branch, elaborated from the stream here (its modules are built at this point),
        then the product; the gate's weighted layers are the branch's own, like a concat branch's."""
        if el.branch not in scope.branches:
            raise self.err(f"unknown branch '{el.branch}'", el.pos, f"declare it in this scope: `branch {el.branch} = ...`")
        b, _ = scope.branches[el.branch]
        self._enter(el.pos, "gates nest")
        gate = self._chain(b.elements, scope, stream, key + (0,), in_branch="parallel")
        self.depth -= 1
        scope.branch_values[el.branch] = gate
        a, g = self.nodes[stream].shape, self.nodes[gate].shape
        problem = gate_problem(a, g)
        if problem is not None:
            raise self.err(f"mul({el.branch}): {problem}", el.pos,
                           f"end the branch with a layer of {a.units} units (e.g. `linear({a.units})`)")
        return self._node("mul", None, [stream, gate], a, el.pos, key + (1,), in_branch=in_branch, chain_layer=current_layer)

    def _use(self, el: A.Use, scope: _Scope, stream: int, key, in_branch, current_layer) -> int:
        name = el.path.name
        path = scope.prefix + (name,)
        decl = self.modules.get(path)
        where = "this block" if scope.block else "the network"
        if decl is None:
            if path in self.skipped:
                return stream  # its element was skipped (a false guard, an activation parameter set to none)
            raise self.err(f"`use {name}`: {where} has no module '{name}' declared before this point", el.path.pos,
                           f"`use` calls a module declared earlier in {where} once more")
        op = self.module_ops.get(path)
        if op is None or not (op[1] == "activation" or OPS[op[0]].reusable):
            what = "a block or a container" if op is None else f"'{op[0]}'"
            raise self.err(f"`use {name}`: '{name}' is {what}; only activations, dropout and pooling (modules "
                           "without parameters or state) can be called at several points", el.path.pos,
                           "declare a second module for the second point")
        kind, args = op[1], op[2]
        shape = self.nodes[stream].shape
        out = shape
        if kind == "builtin":
            problem = check(op[0], args, shape)
            if problem:
                raise self.err(problem, el.pos)
            out = out_shape(op[0], args, shape)
        return self._node("call_module", path, [stream], out, el.pos, key, in_branch=in_branch,
                          chain_layer=current_layer)

    def _layer(self, el: A.Layer, scope: _Scope, stream: int, key, in_branch, current_layer):
        self.where = el.pos
        ev = self._evaluator(scope)
        if el.cond is not None and not ev._truth(el.cond):
            self._skipped(scope, [el])
            return stream, None
        if len(el.ops) == 1 and el.ops[0].repeat is None:
            op = el.ops[0]
            kind = self._op_kind(op, ev)
            if kind[0] == "skip":  # an activation parameter that is None
                self._skipped(scope, [el])
                return stream, None
            if kind[0] == "block":
                path = self._path(el, scope, ev, key, needed=True, what=f"block '{op.name}'")
                return self._instantiate(kind[1], op, ev, path, stream, key, el.pos), None
            path = self._path(el, scope, ev, key, needed=kind[0] != "function", what=op.name)
            return self._builtin(kind, op, ev, path, stream, key, in_branch, current_layer)
        # A sequence `a(...), b(...) * n`: an nn.Sequential whose children are numbered. The
        # generated constructor cannot append one to a module list: refused here, so that `check`
        # says what `compile` would.
        if el.path is not None and el.path.index is not None:
            raise self.err("a sequence cannot be an element of a module list", el.path.pos,
                           f"compute its name instead: `{el.path.name}{{i}}: ...`")
        path = self._path(el, scope, ev, key, needed=True, what="a sequence")
        self._declare(path, "Sequential", {}, el.pos, key)
        index = 0
        for op in el.ops:
            times = 1
            if op.repeat is not None:
                times = ev.eval(op.repeat)
                if not _is_int(times) or times < 0:
                    raise self.err(f"a repetition count must be an int >= 0, got {_show(times)}", op.repeat.pos)
                if times > LIST_LENGTH:
                    raise self.err(f"a repetition count of {times:,} is more than the limit of {LIST_LENGTH:,}",
                                   op.repeat.pos)
                self.budget.charge(times, op.repeat.pos)
            kind = self._op_kind(op, ev)
            for _ in range(times):
                child = path + (str(index),)
                ck = key + (index,)
                if kind[0] == "block":
                    stream = self._instantiate(kind[1], op, ev, child, stream, ck, op.pos)
                elif kind[0] in ("builtin", "activation"):
                    stream, _ = self._builtin(kind, op, ev, child, stream, ck, in_branch, current_layer)
                else:
                    raise self.err(f"'{op.name}' cannot be repeated", op.pos)
                index += 1
        return stream, None

    def _op_kind(self, op: A.Op, ev: Evaluator):
        # Builtin layers and activations first, then blocks, then activation parameters: a
        # parameter named like a layer (`dropout: float?`) must not hide the layer.
        if op.name in ACTIVATIONS:
            return ("activation", Activation(op.name))
        if op.name in OPS:
            spec = OPS[op.name]
            return ("function" if spec.torch_class is None else "builtin", spec)
        if op.name in self.program.blocks:
            return ("block", self.program.blocks[op.name])
        if op.name in ev.env:
            v = ev.env[op.name]
            if v is None:
                return ("skip",)
            if isinstance(v, Activation):
                return ("activation", v)
            if isinstance(v, BlockRef) and v.name in self.program.blocks:
                return ("block", self.program.blocks[v.name])
            raise self.err(f"'{op.name}' is {_show(v)}, not a layer", op.pos)
        known = list(OPS) + list(ACTIVATIONS) + list(self.program.blocks)
        close = difflib.get_close_matches(op.name, known, n=1)
        raise self.err(f"unknown layer '{op.name}'", op.pos,
                       f"did you mean '{close[0]}'?" if close else "builtin layers: " + ", ".join(OPS))

    def _path(self, el: A.Layer, scope: _Scope, ev: Evaluator, key, needed: bool, what: str):
        if el.path is None:
            if needed:
                raise self.err(f"{what} needs a module name: write `name: ...`", el.pos)
            return None
        if not needed:
            raise self.err(f"{what} has no module, so it takes no name", el.path.pos)
        p = el.path
        name = self._computed_name(p, ev) if p.parts is not None else p.name
        if name not in self.names_ok:
            check_name(self.program, name, p.pos, "module", MODULE_NAMES)
            if p.parts is not None:
                self._check_computed_name(name, p)
            self.names_ok.add(name)
        if not scope.prefix and name in self.bound:
            raise self.err(f"module '{name}' has the name of a parameter", p.pos,
                           "parameters become attributes of the backbone: rename one of them")
        if p.index is None:
            path = scope.prefix + (name,)
            if path in self.modules:
                raise self.err(f"module '{'/'.join(path)}' is declared twice", p.pos,
                               "rename one of them (an activation, dropout or pooling may be called again with `use NAME`)")
            return path
        idx = ev.eval(p.index)
        if not _is_int(idx):
            raise self.err(f"a module index must be an int, got {_show(idx)}", p.index.pos)
        container = scope.prefix + (p.name,)
        existing = self.modules.get(container)
        if existing is not None and existing.cls != "ModuleList":
            raise self.err(f"'{p.name}' is already a single module, not a list", p.pos)
        count = self.list_lengths.get(container, 0)
        if idx != count:
            raise self.err(f"'{p.name}[{idx}]' must follow '{p.name}[{count - 1}]'" if count else
                           f"'{p.name}' must start at index 0, not {idx}", p.index.pos,
                           "module lists are filled in order, like nn.ModuleList.append")
        if existing is None:
            self._declare(container, "ModuleList", {}, p.pos, key)
        self.list_lengths[container] = count + 1
        return container + (str(idx),)

    def _computed_name(self, p: A.PathRef, ev: Evaluator) -> str:
        """The name `fc{i + 1}` stands for: its pieces, each interpolation an int >= 0."""
        out = []
        for part in p.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            v = ev.eval(part)
            if not _is_int(v) or v < 0:
                raise self.err(f"a computed module name puts ints >= 0 in its braces, got {_show(v)}", part.pos,
                               "e.g. `fc{i + 1}` with `i` a loop index")
            out.append(str(v))
        return "".join(out)

    def _check_computed_name(self, name: str, p: A.PathRef) -> None:
        """What check_name cannot see in a computed name (what the masking scheme takes is checked on
        the name's text: static_rules.check_scheme_computed_name)."""
        if name.startswith("block_") and name[len("block_"):] in self.program.blocks:
            raise self.err(f"module name '{name}' is taken by the generated class (the factory of block "
                           f"'{name[len('block_'):]}')", p.pos, "choose another name")

    def _declare(self, path, cls, kwargs, pos, key, block=None) -> None:
        if path in self.modules:
            raise self.err(f"module '{'/'.join(path)}' is declared twice", pos)
        if len(self.modules) >= MODULES:
            raise self.err(f"the network has too many modules: more than {MODULES:,} (the limit)", pos)
        if isinstance(cls, str):
            self.parameters += parameter_count(cls, kwargs)
            if self.parameters > PARAMETERS:
                raise self.err(f"the network has too many parameters: more than {PARAMETERS:,} in its layers "
                               "(the limit)", pos)
        self.modules[path] = ModuleDecl(path, cls, kwargs, pos, key, block)

    def _bind_op_args(self, spec_params, op: A.Op, ev: Evaluator, what: str, declared: bool = False) -> dict:
        if not op.args and not op.kwargs:  # the common case (`ReLU()`, `batchnorm1d()`), kept cheap
            for name, _, default in spec_params:
                if default is REQUIRED:
                    raise self.err(f"{what} needs argument '{name}'", op.pos)
            return {name: default for name, _, default in spec_params}
        names = _NAMES.get(id(spec_params))  # ids of live catalogue tuples: never another's
        if names is None:
            names = [n for n, _, _ in spec_params]
        out = {}
        for name, a in given_arguments(self.program, op, names, what).items():
            out[name] = (ev.eval(a), a.pos)
        bound = {}
        for name, typ, default in spec_params:
            if name in out:
                value, pos = out[name]
                tref = _type_ref(typ)
                try:
                    bound[name] = coerce(value, tref, f"argument '{name}' of {what}", declared)
                except TypeError as e:
                    raise self.err(str(e), pos) from None
            elif default is REQUIRED:
                raise self.err(f"{what} needs argument '{name}'", op.pos)
            else:
                bound[name] = default
        return bound

    def _builtin(self, kind, op: A.Op, ev, path, stream, key, in_branch, current_layer):
        shape = self.nodes[stream].shape
        if kind[0] == "activation":
            act: Activation = kind[1]
            params = ACTIVATIONS.get(act.name, ()) if act.cls is None else ()
            a = self._bind_op_args(params, op, ev, act.name)
            problem = check_activation(act.name, a) if act.cls is None else None
            if problem:
                raise self.err(problem, op.pos)
            self._declare(path, act.cls if act.cls is not None else act.name, a, op.pos, key)
            self.module_ops[path] = (act.name, "activation", a)
            n = self._node("call_module", path, [stream], shape, op.pos, key,
                           in_branch=in_branch, chain_layer=current_layer)
            return n, None
        spec = kind[1]
        a = self._bind_op_args(spec.params, op, ev, spec.name)
        problem = check(spec.name, a, shape)
        if problem:
            raise self.err(problem, op.pos)
        out = out_shape(spec.name, a, shape)
        if spec.torch_class is None:
            if spec.name == "identity":
                return stream, None
            n = self._node(spec.name, None, [stream], out, op.pos, key, in_branch=in_branch,
                           chain_layer=current_layer)
            self.nodes[n].meta["args"] = a
            return n, None
        self._declare(path, spec.torch_class, torch_kwargs(spec.name, a, shape), op.pos, key)
        self.module_ops[path] = (spec.name, "builtin", a)
        weighted = spec.weighted and (self.weight_branches or in_branch != "shortcut")
        name = "/".join(path)
        n = self._node("call_module", path, [stream], out, op.pos, key, weighted=weighted,
                       in_branch=in_branch, chain_layer=name if weighted else current_layer)
        return n, (name if weighted else None)

    def _instantiate(self, block: A.BlockDef, op: A.Op, ev: Evaluator, path, stream, key, pos) -> int:
        for p in block.params:
            if p.type.name == "block":
                raise self.err(f"block '{block.name}' has a parameter of type block, which only a network may have",
                               p.pos, "give the network the block parameter: its blocks see it")
        defaults = Evaluator(self.program, {}, budget=self.budget)
        params = tuple((p.name, type_name(p.type), REQUIRED if p.default is None else
                        defaults.eval(p.default)) for p in block.params)
        args = self._bind_op_args(params, op, ev, f"block '{block.name}'", declared=True)
        self._declare(path, "Block", {}, pos, key, block=block.name)
        # Blocks see the network's parameters, then their own (which take precedence).
        self.budget.charge(len(self.bound) + len(args), pos)
        env = {**self.bound, **args}
        scope = _Scope(path, key, stream, env, block=block.name)
        self._enter(pos, "blocks and loops nested")
        out = self._body(block.body, scope, stream)
        self.depth -= 1
        return out
