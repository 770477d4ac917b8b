"""The writer's statements: a scope's chains, loops, branches, joins, guards and layers, written as
the constructor's lines (init) and the forward's lines (fwd) side by side."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.layers import OPS, REQUIRED
from ..frontend import ast as A
from ..frontend.errors import Pos
from ..frontend.load import Program
from ..frontend.lower.guards import Present, element_guard, list_before_guard, loop_list_guard, optional_activation
from ..frontend.lower.joins import deferred_adds
from ..frontend.lower.uses import flat_layers, use_targets
from ..frontend.lower.weighted import weighted_layer
from ..frontend.scope_rules import branch_roles
from ..frontend.static_rules import factories_spelled_by, first_joins, layer_kind
from . import escape
from .lines import Lines
from .names import ComputedName, name_source, op_names_in
from .op_forms import FORWARD_FORM, activation_check, construct, construction_check, shape_update
from .pyexpr import ExprWriter
from .scope import Scope, WrittenBranch


class Statements:
    """Mixin of the writer (specc.emit.writer): the methods that write statements. The writer's
    state and naming methods it uses are declared here for the type checker."""

    program: Program
    block_params: dict[str, str]
    block_net_params: dict[str, list[str]]
    class_names: dict[str, str]
    taken: set[str]

    if TYPE_CHECKING:
        def where(self, pos: Pos | None) -> str | None: ...
        def local(self, name: str) -> str: ...
        def expr_writer(self, scope: Scope, forward: bool) -> ExprWriter: ...

    def body(self, scope: Scope, stmts: list, init: Lines, fwd: Lines) -> None:
        roles = branch_roles(self.program, stmts)
        for i, s in enumerate(stmts):
            if isinstance(s, A.Branch):
                scope.branches[s.name] = WrittenBranch(s, i, role=roles.get(s.name, "add"))
        scope.use_targets.update(use_targets(stmts))
        for name, i in first_joins(stmts).items():
            b = scope.branches.get(name)
            if b is not None:
                b.first_use = i
        for b in scope.branches.values():
            b.var = self.local(b.decl.name)
            b.shape = f"{b.var}_shape"
        for i, s in enumerate(stmts):
            if isinstance(s, A.Branch):
                b = scope.branches[s.name]
                if b.role == "gate":
                    continue  # built and computed where `mul` uses it (specc.frontend.ast.Mul)
                self.branch_init(scope, b, init)
                if b.first_use is None or b.first_use > i:
                    self.branch_forward(scope, b, fwd)
            elif isinstance(s, A.ForLoop):
                self.loop(scope, s, init, fwd)
            elif isinstance(s, A.Chain):
                self.chain(scope, s.elements, init, fwd, "x", "shape", branch=False)

    def loop(self, scope: Scope, s: A.ForLoop, init: Lines, fwd: Lines) -> None:
        simple = self.hoist_containers(scope, s, init)
        where = self.where(s.pos)
        frame = {}
        for v in s.names():
            frame[v] = self.local(v)
        if s.unpack is not None:
            target = "(" + ", ".join(frame[v] for v in s.unpack) + ("," if len(s.unpack) == 1 else "") + ")"
        else:
            target = frame[s.names()[-1]]
        for lines, forward in ((init, False), (fwd, True)):
            items = self.expr_writer(scope, forward)(s.iterable)
            if s.index_var is not None:
                lines.add(f"for {frame[s.index_var]}, {target} in enumerate({items}):", where)
            else:
                lines.add(f"for {target} in {items}:", where)
        scope.loop_vars.append(frame)
        start = (len(init.lines), len(fwd.lines))
        with init.indent(), fwd.indent():
            for st in s.body:
                if isinstance(st, A.ForLoop):
                    self.loop(scope, st, init, fwd)
                else:
                    self.chain(scope, st.elements, init, fwd, "x", "shape", branch=False)
            if len(init.lines) == start[0]:
                init.add("pass")
            if len(fwd.lines) == start[1]:
                fwd.add("pass")
        scope.loop_vars.pop()
        # Past its loop a list is no longer filled in step with that loop's counter.
        scope.simple_append.difference_update(simple)

    def hoist_containers(self, scope: Scope, loop: A.ForLoop, init: Lines) -> list[str]:
        """Module lists filled in a loop are created before it, in order of first use, under the
        element's condition (and its groups') when that does not depend on the loop (as CLArena's
        MLP creates `fc_bn` only with batch norm)."""
        loop_body_layers = [el for st in loop.body if isinstance(st, A.Chain)
                            for el, _ in flat_layers(st.elements)]
        # which lists, under which guards: the lowering the elaborator evaluates (specc.lower.guards)
        lists = {id(layer): (conds, changes) for _, layer, conds, changes in A.loop_lists(loop)}
        hoisted: list[str] = []
        for layer, _ in A.guarded_layers(loop.body):
            p = layer.path
            # computed names are modules of their own; plain names in a loop were refused by the
            # probe (elaborate.check_loop_names), so the rest name module lists
            if p is None or p.parts is not None:
                continue
            if p.name in scope.declared:
                scope.simple_append.discard(p.name)
                continue
            scope.declared.add(p.name)
            if isinstance(p.index, A.Name) and p.index.id == loop.index_var \
                    and any(layer is other for other in loop_body_layers):
                scope.simple_append.add(p.name)
                hoisted.append(p.name)
            conds, changes = lists[id(layer)]
            guard = self.print_guard(scope, loop_list_guard(layer, conds, changes, self.optional_activation(scope, layer)),
                                     forward=False)
            if guard is not None:
                init.add(f"if {guard}:")
                with init.indent():
                    init.add(f"self.{p.name} = nn.ModuleList()", self.where(p.pos))
            else:
                init.add(f"self.{p.name} = nn.ModuleList()", self.where(p.pos))
        return hoisted

    def branch_init(self, scope: Scope, b: WrittenBranch, init: Lines) -> None:
        init.add(f"# branch {escape.identifier(b.decl.name)}", self.where(b.decl.pos))
        # A branch starts from its scope's input: the block's, or the network's.
        init.add(f"{b.shape} = in_shape" if scope.kind == "block" else f"{b.shape} = input_shape")
        self.chain(scope, b.decl.elements, init, None, b.var, b.shape, branch=b.kind)
        b.declared = True
        for pending, where, may_be_unset in b.pending_checks:
            check = f"shapes.check_add({pending}, {b.shape}, {escape.string(where or 'add')})"
            if may_be_unset:  # its add's guard may have been false: nothing to check then
                init.add(f"if {pending} is not None:")
                with init.indent():
                    init.add(check)
            else:
                init.add(check)

    def branch_forward(self, scope: Scope, b: WrittenBranch, fwd: Lines) -> None:
        fwd.add(f"{b.var} = input", self.where(b.decl.pos))
        self.chain(scope, b.decl.elements, None, fwd, b.var, b.shape, branch=b.kind)
        b.computed = True

    def chain(self, scope: Scope, elements: list, init: Lines | None, fwd: Lines | None, var: str,
              shape: str, branch, current: list | None = None) -> None:
        """Write a chain's elements (or a group's): `branch` is False on the main path, else the
        branch's kind ("shortcut": joined by add; "parallel": joined by concat); `current` holds the
        source of the name of the chain's last weighted layer (for `record`)."""
        if current is None:
            current = [None]
        for el in elements:
            if init is not None and scope.kind == "network" and A.input_ref_in(el) is not None:
                # `in` at network level: the shape entering this element
                init.add(f"in_shape = {shape}  # `in` below: the shape here")
            self.element(scope, el, init, fwd, var, shape, branch, current)

    def element(self, scope: Scope, el, init, fwd, var, shape, branch, current) -> None:
        where = self.where(el.pos)
        lowered = self.element_guard(scope, el)
        guards = [(lines, self.print_guard(scope, lowered, lines is fwd)) for lines in (init, fwd) if lines is not None]
        listed = list_before_guard(el, lowered)
        if init is not None:
            self.defer_checks(scope, el, init, bool(guards) and guards[0][1] is not None)
        if init is not None and listed is not None and listed not in scope.declared:
            scope.declared.add(listed)
            init.add(f"self.{listed} = nn.ModuleList()", where)
        opened = {}  # lines -> index of its `if` line
        for lines, g in guards:
            if g is not None:
                opened[id(lines)] = len(lines.lines)
                lines.add(f"if {g}:", where)
                lines.depth += 1
                lines.guard_where[lines.depth] = where
        try:
            if isinstance(el, A.Record):
                if fwd is not None and current[0] is not None:
                    fwd.add(f"activations[{current[0]}] = {var}", where)
            elif isinstance(el, A.Add):
                self.add(scope, el, init, fwd, var, shape, where)
            elif isinstance(el, A.Concat):
                self.concat(scope, el, init, fwd, var, shape, where)
            elif isinstance(el, A.Mul):
                self.mul(scope, el, init, fwd, var, shape, where)
            elif isinstance(el, A.Use):
                self.use(scope, el, init, fwd, var, shape, where)
            elif isinstance(el, A.Group) and el.residual:
                self.residual(scope, el, init, fwd, var, shape, branch, current, where)
            elif isinstance(el, A.Group):
                self.chain(scope, el.elements, init, fwd, var, shape, branch, current)
            elif len(el.ops) == 1 and el.ops[0].repeat is None:
                self.single(scope, el, el.ops[0], init, fwd, var, shape, branch, current)
            else:
                self.sequence(scope, el, init, fwd, var, shape, branch, current)
        finally:
            for lines, g in guards:
                if g is not None:
                    if len(lines.lines) == opened[id(lines)] + 1:  # nothing to do here (a record's __init__)
                        del lines.lines[-1]
                    lines.guard_where.pop(lines.depth, None)
                    lines.depth -= 1

    def residual(self, scope: Scope, el: A.Group, init, fwd, var, shape, branch, current, where) -> None:
        """`(+ a -> b)`: the group's output plus its input (kept in a local of its own)."""
        kept = f"residual{scope.residuals}"
        scope.residuals += 1
        while kept in self.taken or kept != self.local(kept):
            kept += "_"
        if fwd is not None:
            fwd.add(f"{kept} = {var}", where)
        if init is not None:
            init.add(f"{kept}_shape = {shape}", where)
        self.chain(scope, el.elements, init, fwd, var, shape, branch, current)
        if fwd is not None:
            fwd.add(f"{var} = {var} + {kept}", where)
        if init is not None:
            init.add(f"shapes.check_add({shape}, {kept}_shape, {escape.string(where or 'residual')})")

    def add(self, scope: Scope, el: A.Add, init, fwd, var, shape, where) -> None:
        b = scope.branches[el.branch]
        if fwd is not None:
            if not b.computed:
                self.branch_forward(scope, b, fwd)
            fwd.add(f"{var} = {var} + {b.var}", where)
        if init is not None:
            if b.declared:
                init.add(f"shapes.check_add({shape}, {b.shape}, {escape.string(where or 'add')})")
            else:
                pending = scope.deferred.get(id(el)) or b.pending_local()
                b.pending_checks.append((pending, where, id(el) in scope.deferred))
                init.add(f"{pending} = {shape}  # checked against branch "
                         f"{escape.identifier(b.decl.name)} below")

    def defer_checks(self, scope: Scope, el, init: Lines, guarded: bool) -> None:
        """Start as None, before `el`'s guard, the main-path shape of each add in `el` whose branch
        comes later (specc.frontend.lower.joins): its check runs only if the add did."""
        for a in deferred_adds(el, lambda name: scope.branches[name].declared, guarded):
            if id(a) not in scope.deferred:
                b = scope.branches[a.branch]
                scope.deferred[id(a)] = b.pending_local()
                init.add(f"{scope.deferred[id(a)]} = None  # set if the add below runs")

    def concat(self, scope: Scope, el: A.Concat, init, fwd, var, shape, where) -> None:
        branches = [scope.branches[name] for name in el.branches]
        if fwd is not None:
            for b in branches:
                if not b.computed:
                    self.branch_forward(scope, b, fwd)
            fwd.add(f"{var} = torch.cat([{', '.join([var] + [b.var for b in branches])}], dim=1)", where)
        if init is not None:  # the branches are declared before (specc.frontend.scope_rules.branch_roles)
            parts = ", ".join([shape] + [b.shape for b in branches])
            init.add(f"{shape} = shapes.concat({parts}, where={escape.string(where or 'concat')})")

    def mul(self, scope: Scope, el: A.Mul, init, fwd, var, shape, where) -> None:
        """The gate branch from the stream here, then the channel-wise product."""
        b = scope.branches[el.branch]
        if init is not None:
            init.add(f"# gate branch {escape.identifier(b.decl.name)}", self.where(b.decl.pos))
            init.add(f"{b.shape} = {shape}")
            self.chain(scope, b.decl.elements, init, None, b.var, b.shape, branch=b.kind)
            init.add(f"{shape} = shapes.gate({shape}, {b.shape}, {escape.string(where or 'mul')})")
        if fwd is not None:
            fwd.add(f"{b.var} = {var}", self.where(b.decl.pos))
            self.chain(scope, b.decl.elements, None, fwd, b.var, b.shape, branch=b.kind)
            fwd.add(f"{var} = products.channel_gate({var}, {b.var})", where)

    def use(self, scope: Scope, el: A.Use, init, fwd, var, shape, where) -> None:
        decl, _ = scope.use_targets[el.path.name]
        op = decl.ops[0]
        if fwd is not None:
            fwd.add(f"{var} = self.{escape.identifier(el.path.name)}({var})", where)
        if init is not None and self.op_kind(scope, op) == "builtin":
            init.add(construction_check(self.expr_writer(scope, False), op, shape, None))

    def element_guard(self, scope: Scope, el) -> tuple:
        """The lowered guard of `el` (specc.lower.guards); a `use` runs where the module it calls exists:
        under its element's guard, its groups' included, then its own."""
        if isinstance(el, A.Use):
            decl, groups = scope.use_targets[el.path.name]
            return element_guard(decl, self.optional_activation(scope, decl), groups) + element_guard(el, None)
        return element_guard(el, self.optional_activation(scope, el))

    def optional_activation(self, scope: Scope, el) -> str | None:
        params = scope.params
        if scope.loop_vars:  # loop variables are not parameters
            params = {n: p for n, p in params.items() if not any(n in frame for frame in scope.loop_vars)}
        return optional_activation(self.program, el, params, self.block_params)

    def print_guard(self, scope: Scope, guard: tuple, forward: bool) -> str | None:
        """A lowered guard as a Python condition (None: always)."""
        ex = self.expr_writer(scope, forward)
        parts = []
        for cond in guard:
            if isinstance(cond, Present):
                parts.append(f"{'self.' if forward else ''}{cond.name} is not None")
            else:
                parts.append(ex(cond))
        parts = list(dict.fromkeys(parts))
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return " and ".join(f"({p})" if " or " in p or " if " in p else p for p in parts)

    def path_source(self, scope: Scope, el: A.Layer, forward: bool):
        """(attribute, index source or None, layer-name source) of an element's module; for a
        computed name, the attribute is a ComputedName."""
        p = el.path
        if p is None:
            return None
        prefix = ("self.path" if forward else "path") if scope.kind == "block" else None
        if p.parts is not None:
            computed = self.computed_name(scope, p, forward)
            return computed, None, computed.name(prefix)
        idx = self.expr_writer(scope, forward)(p.index) if p.index is not None else None
        return p.name, idx, name_source(prefix, p.name, idx)

    def computed_name(self, scope: Scope, p: A.PathRef, forward: bool) -> ComputedName:
        ex = self.expr_writer(scope, forward)
        pieces = [escape.identifier(x) if isinstance(x, str) and not x.isdigit() else
                  (x if isinstance(x, str) else ex(x)) for x in p.parts]
        return ComputedName([(x, isinstance(part, str)) for x, part in zip(pieces, p.parts)],
                            factories_spelled_by(self.program, p.parts))

    def module_access(self, attr, idx: str | None) -> str:
        if isinstance(attr, ComputedName):
            return f"getattr(self, {attr.name()})"
        return f"self.{attr}" if idx is None else f"self.{attr}[{idx}]"

    def assign_module(self, scope: Scope, init: Lines, attr, idx: str | None, value: str, where) -> None:
        if isinstance(attr, ComputedName):
            init.add(f"self.add_module({attr.checked()}, {value})", where)
            return
        if idx is not None and attr not in scope.declared:
            scope.declared.add(attr)
            init.add(f"self.{attr} = nn.ModuleList()")
        if idx is None:
            init.add(f"self.{attr} = {value}", where)
        elif attr in scope.simple_append:
            init.add(f"self.{attr}.append({value})", where)
        else:
            # the index is checked: module lists are filled in order, like ModuleList.append
            init.add(f"indexed(self.{attr}, {idx}).append({value})", where)

    def single(self, scope, el, op: A.Op, init, fwd, var, shape, branch, current) -> None:
        where = self.where(op.pos)
        kind = self.op_kind(scope, op)
        if kind == "function":
            self.function(scope, op, init, fwd, var, shape, where)
            return
        init_path = self.path_source(scope, el, forward=False)
        fwd_path = self.path_source(scope, el, forward=True)
        attr, idx, name_src = init_path
        fattr, fidx, fname_src = fwd_path
        if kind == "block":
            block = self.block_def(op.name)
            if init is not None:
                args = self.block_args(scope, block, op)
                init.add(f"block = self.block_{block.name}({name_src}, {shape}{args})", where)
                self.assign_module(scope, init, attr, idx, "block", None)
                init.add("self.weighted_layer_names += block.weighted_layer_names")
                init.add(f"{shape} = block.out_shape")
            if fwd is not None:
                fwd.add(f"{var}, block_activations = {self.module_access(fattr, fidx)}({var})", where)
                fwd.add("activations.update(block_activations)")
            return
        weighted = kind == "builtin" and weighted_layer(op.name, branch)
        if init is not None:
            self.assign_module(scope, init, attr, idx, construct(self.expr_writer(scope, False), op, kind, shape), where)
            if kind == "builtin":
                init.add(construction_check(self.expr_writer(scope, False), op, shape, name_src), where)
            self.check_activation(scope, init, op, kind, name_src)
            if weighted:
                init.add(f"self.weighted_layer_names.append({name_src})")
        if fwd is not None:
            form = OPS[op.name].forward if kind == "builtin" else None
            module = self.module_access(fattr, fidx)
            call = f"{module}({var})" if form is None else FORWARD_FORM.format(form, x=var, module=module)
            fwd.add(f"{var} = {call}", where)
        if weighted:
            current[0] = fname_src

    def check_activation(self, scope: Scope, init: Lines, op: A.Op, kind: str, name_src: str) -> None:
        line = activation_check(self.expr_writer(scope, False), op, name_src) if kind == "activation" else None
        if line is not None:
            init.add(line, self.where(op.pos))

    def function(self, scope, op: A.Op, init, fwd, var, shape, where) -> None:
        """A builtin without a module (flatten, subsample, pad_channels): its catalogue entry's shape
        helper and forward form (identity writes nothing)."""
        entry = OPS[op.name]
        if entry.forward is None:
            return
        names = [n for n, _, _ in entry.params]
        for lines, forward in ((init, False), (fwd, True)):
            if lines is None:
                continue
            ex = self.expr_writer(scope, forward)
            given = {n: ex(a) for n, a in zip(names, op.args)}
            given.update({k: ex(v) for k, v in op.kwargs})
            for n, _, default in entry.params:  # a default the forward form names
                if n not in given and default is not REQUIRED and forward:
                    given[n] = escape.literal(default)
            if not forward and entry.shape_helper is None:  # a newer kind: the generic shapes.layer
                lines.add(f"{shape} = {shape_update(self.expr_writer(scope, False), op, shape, None)}", where)
            elif not forward:
                args = "".join(f", {given[n]}" for n in names if n in given)
                lines.add(f"{shape} = {entry.shape_helper}({shape}{args})", where)
            else:
                lines.add(f"{var} = {FORWARD_FORM.format(entry.forward, x=var, **given)}", where)

    def sequence(self, scope, el, init, fwd, var, shape, branch, current) -> None:
        attr, idx, name_src = self.path_source(scope, el, forward=False)
        fattr, fidx, _ = self.path_source(scope, el, forward=True)
        where = self.where(el.pos)
        kinds = [self.op_kind(scope, op) for op in el.ops]
        computed = isinstance(attr, ComputedName)
        # the container, as the constructor fills it and as the forward reads it
        holder = "sequence" if computed else f"self.{attr}"
        read = self.module_access(fattr, None)
        if init is not None:
            if computed:
                init.add("sequence = nn.Sequential()", where)
                init.add(f"self.add_module({attr.checked()}, sequence)")
            else:
                init.add(f"self.{attr} = nn.Sequential()", where)
            for op, kind in zip(el.ops, kinds):
                count = self.expr_writer(scope, False)(op.repeat) if op.repeat is not None else None
                if count == "1":
                    count = None
                if count is not None:
                    init.add(f"for _ in range({count}):", self.where(op.pos))
                    init.depth += 1
                if computed:
                    child_name = attr.name("path" if scope.kind == "block" else None, "len(sequence)")
                else:
                    child_name = name_source("path" if scope.kind == "block" else None, attr, f"len(self.{attr})")
                if kind == "block":
                    block = self.block_def(op.name)
                    args = self.block_args(scope, block, op)
                    init.add(f"block = self.block_{block.name}({child_name}, {shape}{args})", self.where(op.pos))
                    init.add(f"{holder}.append(block)")
                    init.add("self.weighted_layer_names += block.weighted_layer_names")
                    init.add(f"{shape} = block.out_shape")
                else:  # a builtin or an activation (static_rules.check_sequence_op)
                    if kind == "builtin" and weighted_layer(op.name, branch):
                        init.add(f"self.weighted_layer_names.append({child_name})")
                    init.add(f"{holder}.append({construct(self.expr_writer(scope, False), op, kind, shape)})", self.where(op.pos))
                    if kind == "builtin":
                        init.add(construction_check(self.expr_writer(scope, False), op, shape, child_name))
                    self.check_activation(scope, init, op, kind, child_name)
                if count is not None:
                    init.depth -= 1
        if fwd is not None:
            if all(k == "block" for k in kinds):
                fwd.add(f"for block in {read}:", where)
                with fwd.indent():
                    fwd.add(f"{var}, block_activations = block({var})")
                    fwd.add("activations.update(block_activations)")
            elif all(k != "block" for k in kinds):
                fwd.add(f"{var} = {read}({var})", where)
            else:
                classes = tuple(self.class_names[self.block_def(o.name).name] for o, k in zip(el.ops, kinds)
                                if k == "block")
                fwd.add(f"for child in {read}:", where)
                with fwd.indent():
                    fwd.add(f"if isinstance(child, ({', '.join(classes)}{',' if len(classes) == 1 else ''})):")
                    with fwd.indent():
                        fwd.add(f"{var}, block_activations = child({var})")
                        fwd.add("activations.update(block_activations)")
                    fwd.add("else:")
                    with fwd.indent():
                        fwd.add(f"{var} = child({var})")

    def block_def(self, name: str) -> A.BlockDef | None:
        """The block an operation name instantiates: a block, or a block-typed parameter's block."""
        return self.program.blocks.get(self.block_params.get(name, name))

    def ops_in(self, body) -> list[str]:
        """The operation names of `body` (see op_names_in), block-typed parameters resolved."""
        return [self.block_params.get(n, n) for n in op_names_in(body)]

    def op_kind(self, scope: Scope, op: A.Op) -> str:
        params = {} if any(op.name in frame for frame in scope.loop_vars) else scope.params
        kind = layer_kind(self.program, op.name, params, self.block_params)
        assert kind is not None, op.name  # refused, positioned, by the static rules the probe runs
        return kind

    def block_args(self, scope: Scope, block: A.BlockDef, op: A.Op) -> str:
        ex = self.expr_writer(scope, forward=False)
        parts = [ex(a) for a in op.args]
        parts += [f"{escape.identifier(k)}={ex(v)}" for k, v in op.kwargs]
        for name in self.block_net_params[block.name]:
            parts.append(f"{name}={ex(A.Name(op.pos, name))}")
        return "".join(f", {p}" for p in parts)

