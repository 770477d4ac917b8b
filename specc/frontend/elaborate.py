"""Elaboration: a Program and constructor arguments -> the IR (specc.frontend.ir.Network).

Binds parameters (defaults, `-D` overrides, constructor arguments), expands blocks, repetitions,
loops and conditionals, infers every input size through the graph, and rejects what does not fit
with a source-positioned SpecError. Pure Python: no torch import.
"""
from __future__ import annotations

import math

from ..core.limits import BLOCK_DEPTH, NESTING, NODES, VALUE_SIZE
from ..core.shape import gate_problem
from ..core.values import type_name
from . import ast as A
from .binding import bind_arguments, block_parameters, fixed_values
from .elaborate_layers import LayerElaboration, _Scope
from .errors import Pos, SpecError
from .evaluator import Evaluator, describe, is_int, new_budget
from .ir import ModuleDecl, Network, Node, Param, Shape
from .load import Program
from .lower.guards import loop_list_guard
from .lower.uses import use_targets
from .masking import check_scheme_names, class_params, network_args, options, weights_branches
from .scope_rules import branch_roles, check_network_in, check_no_recursive_blocks
from .static_rules import check_records, first_joins


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




class _Elaborator(LayerElaboration):
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
        # The network's parameters with their declarations (fixed ones too), as the writer's scope has them.
        self.net_params = {p.name: p for p in self.net.params}
        self.net_params.update({p.name: p for p, _, _ in self.net.fixed if p.type.name != "block"})
        self.block_params = block_parameters(program)

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
        check_network_in(self.program)
        ev = Evaluator(self.program, dict(self.bound), budget=self.budget)
        shape = self._input_shape(ev)
        inp = self._node("input", None, [], shape, self.net.input.pos, (-1,))
        scope = _Scope((), (), inp, dict(self.bound), params=self.net_params)
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
            if n.op != "call_module" or n.module is None or not self.modules[n.module].kwargs.get("inplace"):
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
            if not is_int(v) or v <= 0:
                raise self.err(f"an input size must be a positive int, got {describe(v)}", a.pos)
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
        scope.use_targets = use_targets(stmts)
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
            raise self.err(f"`for` iterates over a list, not {describe(items)}", s.iterable.pos,
                           "use a list parameter, a list literal or range(n)")
        for var in s.names():
            if var in self.bound:
                raise self.err(f"loop variable '{var}' hides the parameter of the same name", s.pos)
        self.budget.charge(len(scope.env), s.pos)  # the environment is saved and restored
        saved = dict(scope.env)
        lists = None
        if scope.loops == 0:  # the outermost loop of its scope creates the lists its body fills
            lists = [(name, layer, conds, changes, scope.prefix + (name,) in self.modules)
                     for name, layer, conds, changes in A.loop_lists(s)]
        scope.loops += 1
        outer_names, outer_visible = scope.loop_names, scope.visible_params
        scope.loop_names = outer_names | set(s.names())
        scope.visible_params = {n: p for n, p in scope.params.items() if n not in scope.loop_names}
        self._enter(s.pos, "loops and blocks nested")
        for it, item in enumerate(items):
            self.budget.charge(1, s.pos)
            if s.index_var is not None:
                scope.env[s.index_var] = it
            if s.unpack is None:
                scope.env[s.item_var] = item
            else:
                self._unpack(s, item, it, scope.env)
            for j, st in enumerate(s.body):
                if not isinstance(st, (A.Chain, A.ForLoop)):
                    raise self.err("only chains and loops may appear inside a `for` body", st.pos)
                stream = self._statement(st, scope, stream, key + (it, j))
        self.depth -= 1
        scope.loops -= 1
        scope.loop_names, scope.visible_params = outer_names, outer_visible
        scope.env.clear()
        scope.env.update(saved)
        if lists:
            self._loop_lists(lists, scope, key)
        return stream

    def _unpack(self, s: A.ForLoop, item, it: int, env: dict) -> None:
        """`for (a, b) in rows`: the item's values bound to the names, as Python's unpacking does."""
        names = s.unpack or []
        if not isinstance(item, (tuple, list)):
            raise self.err(f"item {it} of the loop's list is {describe(item)}, which cannot be unpacked into "
                           f"{len(names)} names ({', '.join(names)})", s.pos)
        if len(item) != len(names):
            raise self.err(f"item {it} of the loop's list has {len(item)} values, but the loop unpacks "
                           f"{len(names)} names ({', '.join(names)})", s.pos,
                           "give every row of the table as many values as the loop names")
        for name, value in zip(names, item):
            env[name] = value

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
            if not self._holds(loop_list_guard(layer, conds, changes, self._optional_activation(scope, layer)), ev):
                continue
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

