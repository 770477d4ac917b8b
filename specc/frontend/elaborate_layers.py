"""The elaborator's layers: one element's modules (a layer, a sequence, a block instance, `use`),
their names (module lists, computed names) and their arguments."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..core.layers import ACTIVATIONS, OPS, REQUIRED, check, check_activation, out_shape, parameter_count, torch_kwargs
from ..core.limits import LIST_LENGTH, MODULES, PARAMETERS, Budget
from ..core.values import Activation, BlockRef, coerce, type_name
from . import ast as A
from .binding import type_ref
from .errors import Pos, SpecError
from .evaluator import Evaluator, describe, is_int
from .ir import ModuleDecl, Node
from .load import Program
from .lower.guards import Present, element_guard, list_before_guard, optional_activation
from .lower.uses import not_declared, resolve_use
from .lower.weighted import weighted_layer
from .static_rules import check_module_name, check_not_parameter, check_sequence_op, given_arguments


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
    params: dict = field(default_factory=dict)  # the scope's parameters by name (A.Param), for the lowering
    loop_names: frozenset = frozenset()  # the loop variables bound here (they hide parameters)
    visible_params: dict | None = None  # in a loop: `params` less those its variables hide
    use_targets: dict = field(default_factory=dict)  # what a `use` here may call (specc.frontend.lower.uses)


# The argument names of the catalogue's layers and activations (their tuples live as long as it).
_NAMES = {id(params): [n for n, _, _ in params]
          for params in [spec.params for spec in OPS.values()] + list(ACTIVATIONS.values())}


class LayerElaboration:
    """Mixin of _Elaborator (specc.frontend.elaborate): the methods that declare modules. The
    elaborator's state and statement methods it uses are declared here for the type checker."""

    program: Program
    bound: dict
    budget: Budget
    nodes: list[Node]
    modules: dict[tuple, ModuleDecl]
    module_ops: dict[tuple, tuple]
    list_lengths: dict[tuple, int]
    names_ok: set[str]
    skipped: set[tuple]
    parameters: int
    depth: int
    where: Pos
    weight_branches: bool
    net_params: dict[str, A.Param]
    block_params: dict[str, str]

    if TYPE_CHECKING:
        def err(self, msg: str, pos: Pos, hint: str | None = None) -> SpecError: ...
        def _node(self, op, module, inputs, shape, pos, order, **kw) -> int: ...
        def _evaluator(self, scope: _Scope) -> Evaluator: ...
        def _enter(self, pos: Pos, what: str) -> None: ...
        def _body(self, stmts, scope: _Scope, stream: int) -> int: ...
        def _skipped(self, scope: _Scope, elements) -> None: ...

    def _use(self, el: A.Use, scope: _Scope, stream: int, key, in_branch, current_layer) -> int:
        name = el.path.name
        path = scope.prefix + (name,)
        where = "this block" if scope.block else "the network"
        resolve_use(self.program, scope.use_targets, el, where, self._params(scope), self.block_params)
        if path not in self.modules:
            if path in self.skipped:
                return stream  # its element was skipped (a false guard, an activation parameter set to none)
            raise not_declared(self.program, el, where)  # declared after this point
        _, kind, args = op = self.module_ops[path]
        shape = self.nodes[stream].shape
        out = shape
        if kind == "builtin":
            problem = check(op[0], args, shape)
            if problem:
                raise self.err(problem, el.pos)
            out = out_shape(op[0], args, shape)
        return self._node("call_module", path, [stream], out, el.pos, key, in_branch=in_branch,
                          chain_layer=current_layer)

    def _params(self, scope: _Scope) -> dict:
        """The scope's parameters by name (loop variables hide them), as the lowering reads them."""
        return scope.params if scope.visible_params is None else scope.visible_params

    def _optional_activation(self, scope: _Scope, el) -> str | None:
        return optional_activation(self.program, el, self._params(scope), self.block_params)

    def _holds(self, guard: tuple, ev: Evaluator) -> bool:
        """Whether every condition of a lowered guard (specc.lower.guards) holds for these values."""
        for cond in guard:
            if isinstance(cond, Present):
                if ev.env[cond.name] is None:
                    return False
            elif not ev._truth(cond):
                return False
        return True

    def _layer(self, el: A.Layer, scope: _Scope, stream: int, key, in_branch, current_layer):
        self.where = el.pos
        ev = self._evaluator(scope)
        guard = element_guard(el, self._optional_activation(scope, el))
        if not self._holds(guard, ev):
            self._skipped(scope, [el])
            listed = list_before_guard(el, guard)
            if listed is not None and scope.loops == 0 and scope.prefix + (listed,) not in self.modules:
                self._declare(scope.prefix + (listed,), "ModuleList", {}, el.path.pos, key)
            return stream, None
        if len(el.ops) == 1 and el.ops[0].repeat is None:
            op = el.ops[0]
            kind = self._op_kind(op, ev)
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
                if not is_int(times) or times < 0:
                    raise self.err(f"a repetition count must be an int >= 0, got {describe(times)}", op.repeat.pos)
                if times > LIST_LENGTH:
                    raise self.err(f"a repetition count of {times:,} is more than the limit of {LIST_LENGTH:,}",
                                   op.repeat.pos)
                self.budget.charge(times, op.repeat.pos)
            check_sequence_op(self.program, el, op, self._params(scope), self.block_params)
            kind = self._op_kind(op, ev)
            for _ in range(times):
                child = path + (str(index),)
                ck = key + (index,)
                if kind[0] == "block":
                    stream = self._instantiate(kind[1], op, ev, child, stream, ck, op.pos)
                else:  # a builtin or an activation (static_rules.check_sequence_op)
                    stream, _ = self._builtin(kind, op, ev, child, stream, ck, in_branch, current_layer)
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
            raise self.err(f"'{op.name}' is {describe(v)}, not a layer", op.pos)
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
            check_module_name(self.program, name, p.pos)
            self.names_ok.add(name)
        if not scope.prefix:
            check_not_parameter(self.program, name, p.pos, self.bound)
        if p.index is None:
            path = scope.prefix + (name,)
            if path in self.modules:
                raise self.err(f"module '{'/'.join(path)}' is declared twice", p.pos,
                               "rename one of them (an activation, dropout or pooling may be called again with `use NAME`)")
            return path
        idx = ev.eval(p.index)
        if not is_int(idx):
            raise self.err(f"a module index must be an int, got {describe(idx)}", p.index.pos)
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
            if not is_int(v) or v < 0:
                raise self.err(f"a computed module name puts ints >= 0 in its braces, got {describe(v)}", part.pos,
                               "e.g. `fc{i + 1}` with `i` a loop index")
            out.append(str(v))
        return "".join(out)

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
                tref = type_ref(typ)
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
        weighted = weighted_layer(spec.name, in_branch, self.weight_branches)
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
        scope = _Scope(path, key, stream, env, block=block.name,
                       params={**self.net_params, **{p.name: p for p in block.params}})
        self._enter(pos, "blocks and loops nested")
        out = self._body(block.body, scope, stream)
        self.depth -= 1
        return out

