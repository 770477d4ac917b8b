"""A Program -> the Python source of its classes: plain, generic PyTorch, written the way one
would write them by hand.

One `nn.Module` class per spec block and one for the network: `__init__` builds the modules with
the spec's own loops and conditionals (module lists, sequentials, shapes threaded as a plain
`shape` variable), `forward` is written out as Python, and every statement carries a comment
naming the spec line it comes from. A continual or masked backbone is a subclass of the plain
network; its masking is done at construction by the runtime's scheme (specc.runtime.schemes),
which traces the plain forward and rewrites it.

The writer follows the elaborator's semantics exactly (specc/frontend/elaborate.py): registration
order, module names, shapes, which projections are weighted layers, records; tests build both
and compare. Identifiers come from the spec's NAME token (checked by escape.identifier) and every
literal goes through escape.literal: no spec text reaches the output any other way.
"""
from __future__ import annotations

import posixpath
import string
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from ..core.layers import ACTIVATIONS, IN, LENGTH, OPS, REQUIRED
from ..core.values import type_name
from ..frontend import ast as A
from ..frontend import masking
from ..frontend.classdef import NO_DEFAULT, annotation, class_def, literal
from ..frontend.elaborate import block_parameters, branch_roles, fixed_values
from ..frontend.errors import Pos, SpecError
from ..frontend.load import Program
from ..frontend.reserved import GENERATED_NAMES
from ..frontend.static_rules import first_joins, layer_kind
from . import escape
from .pyexpr import ExprWriter, free_names

# How each builtin becomes a torch.nn constructor call and changes the shape: its catalogue entry
# (specc/core/layers.py). The shape helpers generated constructors call, with the spec arguments
# they take, for the kinds that have their own (any other calls the generic `shapes.layer`).
_SHAPE = {
    "shapes.linear": ("out_features",),
    "shapes.conv2d": ("out_channels", "kernel", "stride", "padding", "dilation", "groups"),
    "shapes.pool2d": ("kernel", "stride", "padding", "dilation", "ceil_mode"),
    "shapes.adaptive_pool2d": ("size",),
}

# Names the generated module binds at module level (imports); a spec name equal to one of them is
# renamed where it would shadow it (loop variables, branches).
_MODULE_NAMES = GENERATED_NAMES
# Locals the generated methods use.
_LOCALS = ("self", "x", "input", "shape", "activations", "block", "block_activations", "child", "path",
           "in_shape", "input_shape", "stage")


def _error(program: Program, msg: str, pos: Pos, hint: str | None = None) -> SpecError:
    return SpecError(msg, pos, hint=hint, source=program.sources.get(pos.file) if pos else None)


class Lines:
    def __init__(self):
        self.lines: list[str] = []
        self.depth = 0
        self.guard_where: dict[int, str | None] = {}  # depth -> position named by the `if` opening it

    def add(self, text: str, where: str | None = None) -> None:
        pad = "    " * self.depth
        if where is not None and where == self.guard_where.get(self.depth):
            where = None  # the enclosing `if` already names this line
        if where is not None:
            text = f"{text}  # {where}"
        self.lines.extend(_wrap(pad, text))

    guard_where: dict

    def indent(self):
        lines = self

        class _Block:
            def __enter__(self):
                lines.depth += 1

            def __exit__(self, *exc):
                lines.depth -= 1

        return _Block()


@dataclass
class _Branch:
    decl: A.Branch
    index: int  # statement index in its scope
    role: str = "add"  # how it is joined: "add" (a shortcut) or "concat" (a parallel path)
    var: str = ""  # forward: the local holding its value
    shape: str = ""  # __init__: the local holding its shape
    first_use: int | None = None  # statement index of the first add using it (a loop comes after the
    # branch's declaration: specc.frontend.static_rules)
    computed: bool = False  # forward: already written
    declared: bool = False  # __init__: modules already written
    pending_check: str | None = None  # __init__: main-path shape to check against, once declared

    @property
    def kind(self) -> str:
        return "parallel" if self.role in ("concat", "gate") else "shortcut"


@dataclass
class _Scope:
    kind: str  # "network" | "block"
    params: dict[str, A.Param]  # names visible as constructor arguments (network's and block's own)
    block: A.BlockDef | None = None
    loop_vars: list[dict[str, str]] = field(default_factory=list)  # spec name -> Python local
    branches: dict[str, _Branch] = field(default_factory=dict)
    declared: set = field(default_factory=set)  # module attribute names already created
    simple_append: set = field(default_factory=set)  # lists filled by one element, indexed by its loop
    use_targets: dict = field(default_factory=dict)  # module name -> (its element, its groups' guards)
    residuals: int = 0  # residual groups `(+ ...)` written so far (their locals are numbered)


@dataclass
class _Computed:
    """A computed module name (`fc{i + 1}`) as source: its pieces, each (source, is literal text);
    literal pieces are the spec's NAME and INT tokens (identifier characters only)."""

    pieces: list

    def name(self, prefix: str | None = None, child: str | None = None) -> str:
        """A string expression of the name, e.g. `f"fc{i + 1}"`; with the source of a block's path
        `prefix`, `f"{path}/fc{i + 1}"`; with the source of a child's index, `.../{index}`."""
        parts = ([(prefix, False), ("/", True)] if prefix else []) + list(self.pieces)
        if child is not None:
            parts += [("/", True), (child, False)]
        return _join_source(parts)

    def checked(self) -> str:
        """The name, checked by the runtime (an identifier; its interpolations ints >= 0)."""
        args = ", ".join(escape.string(s) if lit else s for s, lit in self.pieces)
        return f"module_name({args})"


def _join_source(parts: list[tuple[str, bool]]) -> str:
    """An f-string of `parts` (literal text, or the source of a value), or a concatenation of
    str() calls where a source holds quotes, braces or backslashes (which an f-string cannot hold
    before Python 3.12)."""
    if not any(c in s for s, lit in parts if not lit for c in "'\"{}\\"):
        return 'f"' + "".join(s if lit else "{" + s + "}" for s, lit in parts) + '"'
    return " + ".join(escape.string(s) if lit else f"str({s})" for s, lit in parts)


class _Writer:
    """Writes the classes of one program."""

    def __init__(self, program: Program, overrides: dict | None, base: str):
        self.program = program
        self.overrides = overrides or {}
        self.base = base
        self.spec_root = PurePosixPath(program.path).parent
        self.network = program.network
        # Block-typed parameters are resolved here (name -> block); the others that are fixed
        # (bound by the backbone) are locals of the constructor and attributes, like parameters.
        self.block_params = block_parameters(program)
        self.fixed = {p.name: (p, value) for (p, _, _), value in zip(self.network.fixed, fixed_values(program).values())
                      if p.type.name != "block"}
        self.net_params = {p.name: p for p in self.network.params}
        self.net_params.update({name: p for name, (p, _) in self.fixed.items()})
        self.blocks_used = self._blocks_used()
        names = self._spec_names()
        self.taken = set(names)
        self.class_names = self._class_names()
        # Network parameters each block reads (transitively through the blocks it instantiates).
        self.block_net_params = self._block_params()

    # -- naming ---------------------------------------------------------------------------------
    def where(self, pos: Pos | None) -> str | None:
        if pos is None:
            return None
        p = PurePosixPath(pos.file)
        if pos.file not in self.program.absolute_includes and p.is_absolute() == self.spec_root.is_absolute():
            # relative to the compiled spec (an include outside its folder: `../common/b.cl`)
            rel = posixpath.relpath(p.as_posix(), self.spec_root.as_posix())
        else:
            rel = p.name  # an absolute include of a relative spec: not the build machine's path
        return f"{escape.display_path(rel)}:{pos.line}"

    def _spec_names(self) -> list[str]:
        names = list(self.net_params)
        for b in self.blocks_used:
            names += [p.name for p in b.params]
        return names

    def local(self, name: str) -> str:
        """A Python local for a spec-level name (loop variable, branch): renamed when it would
        shadow a module-level name or a local the generated code uses."""
        out = name
        while out in _MODULE_NAMES or out in _LOCALS or out in self.class_names.values():
            out += "_"
        return out

    def _class_names(self) -> dict[str, str]:
        used = {self.program.class_name, self.network.name} | _MODULE_NAMES
        out = {}
        for b in self.blocks_used:
            base = "".join(part[:1].upper() + part[1:] for part in b.name.split("_") if part) or "Block"
            name = base
            while name in used or name in self.taken:
                name += "Block"
            used.add(name)
            out[b.name] = name
        return out

    def _blocks_used(self) -> list[A.BlockDef]:
        """Blocks the network instantiates, dependencies first, otherwise in declaration order."""
        blocks = self.program.blocks
        order: list[A.BlockDef] = []
        seen: set[str] = set()

        def visit_body(body):
            for name in self.ops_in(body):
                if name in blocks and name not in seen:
                    seen.add(name)
                    visit_body(blocks[name].body)
                    order.append(blocks[name])

        visit_body(self.network.body)
        return order

    def weighted_blocks(self) -> list[A.BlockDef]:
        """The blocks used that build weighted layers (main-path linear/conv), directly or through
        the blocks they instantiate; dependencies first."""
        out: list[A.BlockDef] = []
        for b in self.blocks_used:
            parallel = {name for name, role in branch_roles(self.program, b.body).items() if role in ("concat", "gate")}
            own = any(op.name in OPS and OPS[op.name].weighted for s in b.body
                      if isinstance(s, (A.Chain, A.ForLoop)) or (isinstance(s, A.Branch) and s.name in parallel)
                      for op in _chain_ops([s]))
            if own or any(x.name in set(self.ops_in(b.body)) for x in out):
                out.append(b)
        return out

    def _block_params(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for b in self.blocks_used:  # dependencies come first
            own = {p.name for p in b.params}
            names = [n for n in free_names(b.body) if n in self.net_params and n not in own]
            for name in self.ops_in(b.body):
                if name in out:
                    names += [n for n in out[name] if n not in own]
            out[b.name] = list(dict.fromkeys(n for n in self.net_params if n in names))
        return out

    # -- expressions ----------------------------------------------------------------------------
    def expr_writer(self, scope: _Scope, forward: bool) -> ExprWriter:
        def name(n: str) -> str | None:
            for frame in reversed(scope.loop_vars):
                if n in frame:
                    return frame[n]
            if n in scope.params:
                return f"self.{n}" if forward else n
            return None

        in_shape = None
        if scope.kind == "block":
            in_shape = "self.in_shape" if forward else "in_shape"
        elif not forward:
            in_shape = "in_shape"  # at network level: the shape entering the element (see chain)
        return ExprWriter(name, in_shape)

    def param_type(self, scope: _Scope, name: str) -> A.TypeRef | None:
        for frame in reversed(scope.loop_vars):
            if name in frame:
                return None
        p = scope.params.get(name)
        return p.type if p is not None else None

    # -- statements -----------------------------------------------------------------------------
    def body(self, scope: _Scope, stmts: list, init: Lines, fwd: Lines) -> None:
        roles = branch_roles(self.program, stmts)
        for i, s in enumerate(stmts):
            if isinstance(s, A.Branch):
                scope.branches[s.name] = _Branch(s, i, role=roles.get(s.name, "add"))
        scope.use_targets.update(_use_targets(stmts))
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

    def loop(self, scope: _Scope, s: A.ForLoop, init: Lines, fwd: Lines) -> None:
        simple = self.hoist_containers(scope, s, init)
        where = self.where(s.pos)
        frame = {}
        for v in (s.index_var, s.item_var):
            if v is not None:
                frame[v] = self.local(v)
        for lines, forward in ((init, False), (fwd, True)):
            items = self.expr_writer(scope, forward)(s.iterable)
            if s.index_var is not None:
                lines.add(f"for {frame[s.index_var]}, {frame[s.item_var]} in enumerate({items}):", where)
            else:
                lines.add(f"for {frame[s.item_var]} in {items}:", where)
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

    def hoist_containers(self, scope: _Scope, loop: A.ForLoop, init: Lines) -> None:
        """Module lists filled in a loop are created before it, in order of first use, under the
        element's condition (and its groups') when that does not depend on the loop (as CLArena's
        MLP creates `fc_bn` only with batch norm)."""
        loop_body_layers = [el for st in loop.body if isinstance(st, A.Chain)
                            for el, _ in _flat_layers(st.elements)]
        # which lists, under which guards: the rule the elaborator follows too (ast.loop_lists)
        varying = {id(layer): changes for _, layer, _, changes in A.loop_lists(loop)}
        hoisted: list[str] = []
        for layer, groups in A.guarded_layers(loop.body):
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
            if varying[id(layer)]:
                # The condition changes from iteration to iteration: the list always exists.
                guard = self.implicit_guard(scope, layer, forward=False)
            else:
                guard = self.guard(scope, layer, forward=False, extra=groups)
            if guard is not None:
                init.add(f"if {guard}:")
                with init.indent():
                    init.add(f"self.{p.name} = nn.ModuleList()", self.where(p.pos))
            else:
                init.add(f"self.{p.name} = nn.ModuleList()", self.where(p.pos))
        return hoisted

    def branch_init(self, scope: _Scope, b: _Branch, init: Lines) -> None:
        init.add(f"# branch {escape.identifier(b.decl.name)}", self.where(b.decl.pos))
        # A branch starts from its scope's input: the block's, or the network's.
        init.add(f"{b.shape} = in_shape" if scope.kind == "block" else f"{b.shape} = input_shape")
        self.chain(scope, b.decl.elements, init, None, b.var, b.shape, branch=b.kind)
        b.declared = True
        if b.pending_check is not None:
            init.add(f"shapes.check_add({b.pending_check}, {b.shape}, "
                     f"{escape.string(self.where(b.decl.pos) or 'add')})")

    def branch_forward(self, scope: _Scope, b: _Branch, fwd: Lines) -> None:
        fwd.add(f"{b.var} = input", self.where(b.decl.pos))
        self.chain(scope, b.decl.elements, None, fwd, b.var, b.shape, branch=b.kind)
        b.computed = True

    def chain(self, scope: _Scope, elements: list, init: Lines | None, fwd: Lines | None, var: str,
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

    def element(self, scope: _Scope, el, init, fwd, var, shape, branch, current) -> None:
        where = self.where(el.pos)
        extra = self.use_guard(scope, el) if isinstance(el, A.Use) else []
        guards = [(lines, self.guard(scope, el, lines is fwd, extra)) for lines in (init, fwd) if lines is not None]
        p = el.path if isinstance(el, A.Layer) else None
        if init is not None and guards[0][1] is not None and p is not None and p.index is not None \
                and p.name not in scope.declared:
            # A module list's guarded first element: the list exists whatever the guard, so that a
            # later element finds it (and `indexed` refuses it, positioned, out of order).
            scope.declared.add(p.name)
            init.add(f"self.{p.name} = nn.ModuleList()", where)
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

    def residual(self, scope: _Scope, el: A.Group, init, fwd, var, shape, branch, current, where) -> None:
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

    def add(self, scope: _Scope, el: A.Add, init, fwd, var, shape, where) -> None:
        b = scope.branches[el.branch]
        if fwd is not None:
            if not b.computed:
                self.branch_forward(scope, b, fwd)
            fwd.add(f"{var} = {var} + {b.var}", where)
        if init is not None:
            if b.declared:
                init.add(f"shapes.check_add({shape}, {b.shape}, {escape.string(where or 'add')})")
            else:
                b.pending_check = f"{b.var}_main_shape"
                init.add(f"{b.pending_check} = {shape}  # checked against branch "
                         f"{escape.identifier(b.decl.name)} below")

    def concat(self, scope: _Scope, el: A.Concat, init, fwd, var, shape, where) -> None:
        branches = [scope.branches[name] for name in el.branches]
        if fwd is not None:
            for b in branches:
                if not b.computed:
                    self.branch_forward(scope, b, fwd)
            fwd.add(f"{var} = torch.cat([{', '.join([var] + [b.var for b in branches])}], dim=1)", where)
        if init is not None:  # the branches are declared before (specc.frontend.elaborate.branch_roles)
            parts = ", ".join([shape] + [b.shape for b in branches])
            init.add(f"{shape} = shapes.concat({parts}, where={escape.string(where or 'concat')})")

    def mul(self, scope: _Scope, el: A.Mul, init, fwd, var, shape, where) -> None:
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

    def use(self, scope: _Scope, el: A.Use, init, fwd, var, shape, where) -> None:
        decl, _ = scope.use_targets[el.path.name]
        op = decl.ops[0]
        if fwd is not None:
            fwd.add(f"{var} = self.{escape.identifier(el.path.name)}({var})", where)
        if init is not None and self.op_kind(scope, op) == "builtin" and OPS[op.name].shape is not None:
            init.add(f"{shape} = {self.shape_update(scope, op, shape, None)}")

    def use_guard(self, scope: _Scope, el: A.Use) -> list:
        """The conditions under which the module `el` calls exists: its element's and groups'."""
        decl, groups = scope.use_targets[el.path.name]
        return list(groups) + ([decl.cond] if decl.cond is not None else []) + [("implicit", decl)]

    def guard(self, scope: _Scope, el, forward: bool, extra=()) -> str | None:
        parts = []
        ex = self.expr_writer(scope, forward)
        for cond in extra:
            if isinstance(cond, tuple):  # ("implicit", element): an activation parameter's guard
                implicit = self.implicit_guard(scope, cond[1], forward)
                if implicit is not None:
                    parts.append(implicit)
            else:
                parts.append(ex(cond))
        if el.cond is not None:
            parts.append(ex(el.cond))
        implicit = self.implicit_guard(scope, el, forward) if isinstance(el, A.Layer) else None
        if implicit is not None:
            parts.append(implicit)
        parts = list(dict.fromkeys(parts))
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return " and ".join(f"({p})" if " or " in p or " if " in p else p for p in parts)

    def implicit_guard(self, scope: _Scope, el: A.Layer, forward: bool) -> str | None:
        """An activation parameter that may be None makes its element conditional."""
        if len(el.ops) != 1:
            return None
        op = el.ops[0]
        if op.name in ACTIVATIONS or op.name in OPS or self.block_def(op.name) is not None:
            return None
        t = self.param_type(scope, op.name)
        if t is not None and t.name == "activation" and t.optional:
            src = f"self.{op.name}" if forward else op.name
            return f"{src} is not None"
        return None

    def path_source(self, scope: _Scope, el: A.Layer, forward: bool):
        """(attribute, index source or None, layer-name source) of an element's module; for a
        computed name, the attribute is a _Computed."""
        p = el.path
        if p is None:
            return None
        prefix = ("self.path" if forward else "path") if scope.kind == "block" else None
        if p.parts is not None:
            computed = self.computed_name(scope, p, forward)
            return computed, None, computed.name(prefix)
        idx = self.expr_writer(scope, forward)(p.index) if p.index is not None else None
        return p.name, idx, _name_source(prefix, p.name, idx)

    def computed_name(self, scope: _Scope, p: A.PathRef, forward: bool) -> _Computed:
        ex = self.expr_writer(scope, forward)
        pieces = [escape.identifier(x) if isinstance(x, str) and not x.isdigit() else
                  (x if isinstance(x, str) else ex(x)) for x in p.parts]
        return _Computed([(x, isinstance(part, str)) for x, part in zip(pieces, p.parts)])

    def module_access(self, attr, idx: str | None) -> str:
        if isinstance(attr, _Computed):
            return f"getattr(self, {attr.name()})"
        return f"self.{attr}" if idx is None else f"self.{attr}[{idx}]"

    def assign_module(self, scope: _Scope, init: Lines, attr, idx: str | None, value: str, where) -> None:
        if isinstance(attr, _Computed):
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
        weighted = kind == "builtin" and OPS[op.name].weighted and branch != "shortcut"
        if init is not None:
            self.assign_module(scope, init, attr, idx, self.construct(scope, op, kind, shape), where)
            if kind == "builtin" and OPS[op.name].shape is not None:
                init.add(f"{shape} = {self.shape_update(scope, op, shape, name_src)}", where)
            if weighted:
                init.add(f"self.weighted_layer_names.append({name_src})")
        if fwd is not None:
            form = OPS[op.name].forward if kind == "builtin" else None
            module = self.module_access(fattr, fidx)
            call = f"{module}({var})" if form is None else _FORWARD.format(form, x=var, module=module)
            fwd.add(f"{var} = {call}", where)
        if weighted:
            current[0] = fname_src

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
                lines.add(f"{shape} = {self.shape_update(scope, op, shape, None)}", where)
            elif not forward:
                args = "".join(f", {given[n]}" for n in names if n in given)
                lines.add(f"{shape} = {entry.shape_helper}({shape}{args})", where)
            else:
                lines.add(f"{var} = {_FORWARD.format(entry.forward, x=var, **given)}", where)

    def sequence(self, scope, el, init, fwd, var, shape, branch, current) -> None:
        attr, idx, name_src = self.path_source(scope, el, forward=False)
        fattr, fidx, _ = self.path_source(scope, el, forward=True)
        where = self.where(el.pos)
        kinds = [self.op_kind(scope, op) for op in el.ops]
        computed = isinstance(attr, _Computed)
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
                    child_name = _name_source("path" if scope.kind == "block" else None, attr, f"len(self.{attr})")
                if kind == "block":
                    block = self.block_def(op.name)
                    args = self.block_args(scope, block, op)
                    init.add(f"block = self.block_{block.name}({child_name}, {shape}{args})", self.where(op.pos))
                    init.add(f"{holder}.append(block)")
                    init.add("self.weighted_layer_names += block.weighted_layer_names")
                    init.add(f"{shape} = block.out_shape")
                elif kind in ("builtin", "activation"):
                    if kind == "builtin" and OPS[op.name].weighted and branch != "shortcut":
                        init.add(f"self.weighted_layer_names.append({child_name})")
                    init.add(f"{holder}.append({self.construct(scope, op, kind, shape)})", self.where(op.pos))
                    if kind == "builtin" and OPS[op.name].shape is not None:
                        init.add(f"{shape} = {self.shape_update(scope, op, shape, child_name)}")
                else:
                    raise _error(self.program, f"'{op.name}' cannot be repeated", op.pos)
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
        """The operation names of `body` (see _ops_in), block-typed parameters resolved."""
        return [self.block_params.get(n, n) for n in _ops_in(body)]

    def op_kind(self, scope: _Scope, op: A.Op) -> str:
        params = {} if any(op.name in frame for frame in scope.loop_vars) else scope.params
        kind = layer_kind(self.program, op.name, params, self.block_params)
        assert kind is not None, op.name  # refused, positioned, by the static rules the probe runs
        return kind

    def construct(self, scope: _Scope, op: A.Op, kind: str, shape: str) -> str:
        ex = self.expr_writer(scope, forward=False)
        if kind == "activation-param":  # without arguments (specc.frontend.static_rules)
            return f"{op.name}()"
        if kind == "activation":
            names = [n for n, _, _ in ACTIVATIONS[op.name]]
            given = dict(zip(names, op.args))
            given.update(dict(op.kwargs))
            args = ", ".join(f"{escape.identifier(k)}={ex(v)}" for k, v in given.items())
            return f"nn.{escape.identifier(op.name)}({args})"
        entry = OPS[op.name]
        names = [n for n, _, _ in entry.params]
        given = dict(zip(names, op.args))
        given.update(dict(op.kwargs))
        args = []
        positional = True
        for i, (torch_kw, source) in enumerate(entry.torch_args):
            if source == IN:
                # tokens keep their units on the last axis (shapes.units); a kind that takes only
                # features or tokens reads it there, the others at the first axis
                value = f"{shape}[-1]" if set(entry.accepts) <= {"features", "tokens"} else f"{shape}[0]"
            elif source == LENGTH:
                value = f"{shape}[0]"
            elif isinstance(source, tuple):
                if source[1] not in given:
                    continue
                v = ex(given[source[1]])
                value = f"({v}, {v})"
            else:
                if source not in given:
                    positional = False
                    continue
                value = ex(given[source])
            if positional and i < entry.positional:
                args.append(value)
            else:
                positional = False
                args.append(f"{torch_kw}={value}")
        return f"{entry.torch_module}.{entry.torch_class}({', '.join(args)})"

    def shape_update(self, scope: _Scope, op: A.Op, shape: str, name_src: str | None) -> str:
        ex = self.expr_writer(scope, forward=False)
        fn = OPS[op.name].shape_helper
        names = [n for n, _, _ in OPS[op.name].params]
        given = dict(zip(names, op.args))
        given.update(dict(op.kwargs))
        args = [shape]
        if fn is None:  # the generic helper, which takes every argument by name
            fn, args = "shapes.layer", [escape.literal(op.name), shape]
            args += [f"{name}={ex(given[name])}" for name in names if name in given]
        for i, name in enumerate(_SHAPE.get(fn, ())):
            if name in given:
                args.append(ex(given[name]) if i == 0 else f"{name}={ex(given[name])}")
        if name_src is not None:
            args.append(f"where={name_src}")
        return f"{fn}({', '.join(args)})"

    def block_args(self, scope: _Scope, block: A.BlockDef, op: A.Op) -> str:
        ex = self.expr_writer(scope, forward=False)
        parts = [ex(a) for a in op.args]
        parts += [f"{escape.identifier(k)}={ex(v)}" for k, v in op.kwargs]
        for name in self.block_net_params[block.name]:
            parts.append(f"{name}={ex(A.Name(op.pos, name))}")
        return "".join(f", {p}" for p in parts)

    # -- classes --------------------------------------------------------------------------------
    def block_class(self, b: A.BlockDef) -> list[str]:
        cls = self.class_names[b.name]
        net_names = self.block_net_params[b.name]
        scope = _Scope("block", {**{n: self.net_params[n] for n in net_names}, **{p.name: p for p in b.params}},
                       block=b)
        init, fwd = Lines(), Lines()
        init.depth = fwd.depth = 2
        init.add("super().__init__(output_dim=None)")
        init.add("self.path = path")
        init.add("self.in_shape = in_shape")
        for name in [p.name for p in b.params] + [n for n in net_names if n not in {p.name for p in b.params}]:
            init.add(f"self.{escape.identifier(name)} = {name}")
        init.add("shape = in_shape")
        fwd.add("activations = {}")
        fwd.add("x = input")
        self.body(scope, b.body, init, fwd)
        init.add("self.out_shape = shape")
        fwd.add("return x, activations")
        sig = ["self", "path: str", "in_shape: tuple"]
        for p in b.params:
            default = "" if p.default is None else f" = {literal(self._value(p.default))}"
            sig.append(f"{escape.identifier(p.name)}: {annotation(p.type)}{default}")
        sig.append("*")
        for n in net_names:
            sig.append(f"{n}: {annotation(self.net_params[n].type)}")
        sig.append("output_dim: int | None = None")
        used = set(self.ops_in(b.body))
        inner = [x for x in self.blocks_used if x.name in used]  # defined above: dependencies come first
        head = [f"class {cls}(Backbone):",
                *_doc(self.block_doc(b)),
                "",
                *[f"    block_{x.name} = {self.class_names[x.name]}" for x in inner],
                *([""] if inner else []),
                *_wrap("    ", f"def __init__({', '.join(sig)}) -> None:")]
        return head + init.lines + ["", "    def forward(self, input: Tensor) -> tuple[Tensor, dict[str, Tensor]]:"] + fwd.lines

    def block_doc(self, b: A.BlockDef) -> str:
        return (f"`block {b.name}` ({self.where(b.pos)}): a building block. `path` is its module path "
                "('/'-separated), which prefixes the names of its weighted layers; `in_shape` the shape "
                "of its input, without the batch dimension.")

    def _value(self, e: A.Expr):
        from ..frontend.elaborate import Evaluator

        return Evaluator(self.program, {}).eval(e)

    def network_class(self, name: str) -> list[str]:
        net = self.network
        params = self.plain_params()
        scope = _Scope("network", dict(self.net_params))
        init, fwd = Lines(), Lines()
        init.depth = fwd.depth = 2
        if self.base == "clarena":
            init.add(_IGNORE_UNKNOWN)
        for p in net.params:
            init.add(f"{p.name} = check_argument({escape.string(p.name)}, {p.name}, {escape.string(type_name(p.type))})",
                     self.where(p.pos))
        for fixed, (_, value) in self.fixed.items():  # fixed by the backbone: not constructor arguments
            init.add(f"{escape.identifier(fixed)} = {literal(value)}", self.where(self.fixed_pos(fixed)))
        init.add("super().__init__(output_dim=output_dim)")
        for p in list(net.params) + [p for p, _ in self.fixed.values()]:
            if p.name != "output_dim":
                init.add(f"self.{p.name} = {p.name}")
        shape_src = self.input_shape(scope)
        init.add(f"shape = {shape_src}", self.where(net.input.pos))
        if any(isinstance(st, A.Branch) for st in net.body):
            init.add("input_shape = shape")
        fwd.add("activations = {}")
        fwd.add("x = input")
        self.body(scope, net.body, init, fwd)
        decl = net.pretrained
        if decl is not None:
            init.add(f"if {decl.param} is not None:", self.where(decl.pos))
            init.add(f"    pretrained.load(self, self.pretrained_from, {decl.param})")
        fwd.add("return x, activations")
        sig = ["self"] + params + ["*"]
        if "output_dim" not in self.net_params:
            sig.append("output_dim: int | None = None")
        sig.append(_DISABLE_UNLEARNING)
        if self.base == "clarena":
            sig.append(_UNKNOWN_KWARGS)
        head = [f"class {name}(Backbone):",
                *_doc(self.network_doc(name)),
                ""]
        for b in self.blocks_used:
            head.append(f"    block_{b.name} = {self.class_names[b.name]}")
        if net.pretrained is not None:
            renames = ", ".join(f"({escape.string(a)}, {escape.literal(b)})" for a, b in net.pretrained.renames)
            head += _wrap("    ", f"pretrained_from = pretrained.Source({escape.string(net.pretrained.model)}, "
                                  f"({renames}{',' if len(net.pretrained.renames) == 1 else ''}))  "
                                  f"# {self.where(net.pretrained.pos)}")
        if self.blocks_used or net.pretrained is not None:
            head.append("")
        head += _wrap("    ", f"def __init__({', '.join(sig)}) -> None:")
        return (head + init.lines + ["", "    def forward(self, input: Tensor, stage: str | None = None) "
                                         "-> tuple[Tensor, dict[str, Tensor]]:"] + fwd.lines)

    def fixed_pos(self, name: str) -> Pos:
        return next(pos for p, _, pos in self.network.fixed if p.name == name)

    def network_doc(self, name: str) -> str:
        net = self.network
        origin = net.origin or net
        doc = f"`network {origin.name}` ({self.where(origin.pos)})"
        if net.fixed:
            values = {p.name: self.fixed[p.name][1] if p.name in self.fixed else self.block_params.get(p.name)
                      for p, _, _ in net.fixed}
            shown = ", ".join(f"{n}={literal(v) if n in self.fixed else v}" for n, v in values.items())
            doc += f", with {shown} fixed"
            if net.bound_in is not None:
                doc += f" (`backbone {net.bound_in.name}`, {self.where(net.bound_in.pos)})"
        return doc + "."

    def input_shape(self, scope: _Scope) -> str:
        d = self.network.input
        ex = self.expr_writer(scope, forward=False)
        dims = [ex(a) for a in d.args]
        if d.kind == "image" and len(dims) == 1:
            dims += ["None", "None"]
        if d.kind == "signal" and len(dims) == 1:
            dims += ["None"]
        return f"({', '.join(dims)},)" if len(dims) == 1 else f"({', '.join(dims)})"

    def plain_params(self) -> list[str]:
        # A `-D` value sets the plain network's default too, unless the masking scheme changed
        # that parameter (HAT's batch_normalization: a mode for the masked class, a bool here).
        same = {p.name for p in masking.class_params(self.program)
                if p.name in self.net_params and type_name(p.type) == type_name(self.net_params[p.name].type)}
        out = []
        for p in self.network.params:
            if p.name in self.overrides and p.name in same:
                default = literal(_coerced(self.program, p, self.overrides[p.name]))
            elif p.default is not None:
                default = literal(_coerced(self.program, p, self._value(p.default)))
            else:
                default = None
            decl = f"{escape.identifier(p.name)}: {annotation(p.type)}"
            out.append(decl if default is None else f"{decl} = {default}")
        return out


def _coerced(program: Program, p: A.Param, value):
    from ..core.values import coerce

    try:
        return coerce(value, p.type, f"default of '{p.name}'")
    except TypeError as e:
        raise SpecError(str(e), p.pos, source=program.sources.get(p.pos.file)) from None


def _name_source(prefix: str | None, name: str, idx: str | None) -> str:
    """Python source of a layer name (its '/'-separated module path) as a string expression:
    `prefix` is the source of the enclosing block's path (None at network level), `idx` the
    source of the module-list index (None for a plain module)."""
    parts = ([f"{{{prefix}}}"] if prefix else []) + [name] + ([f"{{{idx}}}"] if idx is not None else [])
    if not prefix and idx is None:
        return escape.string(name)
    if idx is not None and any(c in idx for c in "'\"{}\\"):
        head = f'f"{{{prefix}}}/{name}/"' if prefix else escape.string(f"{name}/")
        return f"{head} + str({idx})"
    return 'f"' + "/".join(parts) + '"'


def _ops_in(body) -> list[str]:
    out = []
    for s in body:
        if isinstance(s, A.ForLoop):
            out += _ops_in(s.body)
        elif isinstance(s, (A.Chain, A.Branch)):
            for el in A.flat_elements(s.elements):
                if isinstance(el, A.Layer):
                    out += [op.name for op in el.ops]
    return out


def _chain_ops(body) -> list[A.Op]:
    """The ops of the chains of a statement list (loops included; a branch when given itself)."""
    out = []
    for s in body:
        if isinstance(s, A.ForLoop):
            out += _chain_ops(s.body)
        elif isinstance(s, (A.Chain, A.Branch)):
            out += [op for el in A.flat_elements(s.elements) if isinstance(el, A.Layer) for op in el.ops]
    return out


def _flat_layers(elements, groups=()) -> list[tuple[A.Layer, tuple]]:
    """The layers of a chain, each with the guards of the groups around it."""
    out = []
    for el in elements:
        if isinstance(el, A.Layer):
            out.append((el, tuple(groups)))
        elif isinstance(el, A.Group):
            out += _flat_layers(el.elements, tuple(groups) + ((el.cond,) if el.cond is not None else ()))
    return out


def _use_targets(stmts) -> dict:
    """The modules a `use` of this scope may name: those of the scope's own chains (not in a loop
    or a branch), with plain names, each with the guards of the groups around it."""
    out = {}
    for s in stmts:
        if isinstance(s, A.Chain):
            for layer, groups in _flat_layers(s.elements):
                p = layer.path
                if p is not None and p.index is None and p.parts is None and len(layer.ops) == 1 \
                        and layer.ops[0].repeat is None:
                    out.setdefault(p.name, (layer, groups))
    return out


def _is_simple(src: str) -> bool:
    """Whether a source needs no parentheses as a slice's step: a name, attribute or number."""
    return all(c.isalnum() or c in "_." for c in src)


class _ForwardForm(string.Formatter):
    """Fills a catalogue entry's `forward` with sources; `{name:step}` parenthesizes a compound one."""

    def format_field(self, value, format_spec):
        if format_spec == "step":
            return value if _is_simple(value) else f"({value})"
        return super().format_field(value, format_spec)


_FORWARD = _ForwardForm()


# -- the module ------------------------------------------------------------------------------------

_BASE_IMPORT = {"specc": "specc.runtime.bases", "clarena": "clarena.backbones"}


def emit_source(program: Program, overrides: dict | None = None, base: str = "specc") -> str:
    """The source of the module defining `program`'s class (and the classes it is built from)."""
    from .. import __version__
    from ..frontend.probe import probe

    probe(program, overrides)  # the elaborator's checks, positioned, before anything is written
    w = _Writer(program, overrides, base)
    final = program.class_name
    plain = w.network.name
    derived = program.mask is not None or program.continual or final != plain
    if derived and final == plain:
        plain = f"{plain}Network"
    chunks = [w.block_class(b) for b in w.blocks_used]
    chunks.append(w.network_class(plain))
    bases_used = ["Backbone"]
    scheme = masking.scheme(program)
    if scheme is not None:
        # CLArena's HAT ResNets' blocks are HAT backbones of their own
        hat_blocks = w.weighted_blocks() if base == "clarena" and scheme.unit_masks else []
        chunks += [_hat_block_class(w, b, hat_blocks) for b in hat_blocks]
        chunks.append(_masked_class(w, program, overrides, final, plain, hat_blocks))
        bases_used.append(scheme.base)
        if hat_blocks:
            bases_used.append("HATMaskBackbone")
    elif program.continual:
        chunks.append(_continual_class(w, program, overrides, final, plain))
        bases_used.append("CLBackbone")
    elif final != plain:
        chunks.append([f"class {final}({plain}):", *_doc(f"{final}: the network {plain}.")])
    body = "\n\n\n".join("\n".join(c) for c in chunks)
    imports = ["import torch", "from torch import Tensor, nn", ""]
    runtime = [n for n in ("check_argument", "ignore_unknown", "indexed", "module_name", "pretrained", "products",
                           "shapes", "tokens")
               if f"{n}(" in body or f"{n}." in body]
    imports.append("from specc import require_runtime")
    imports.append("")
    imports.append(f"require_runtime({escape.string(__version__)})")
    imports.append("")
    imports.append(f"from {_BASE_IMPORT[base]} import {', '.join(sorted(set(bases_used)))}")
    if runtime:
        imports.append(f"from specc.runtime import {', '.join(runtime)}")
    if scheme is not None:
        modules = sorted({scheme.runtime} | ({"hat"} if "(hat.HATBlock" in body else set()))
        imports.append(f"from specc.runtime.schemes import {', '.join(modules)}")
    spec_name = escape.display_path(PurePosixPath(program.path).name)
    doc = f"{final}, compiled by specc from {spec_name}.\n\n{_summary(program, overrides)}\n"
    header = [escape.CODING_LINE,
              f"# Generated by specc {__version__}. Do not edit: regenerate with `specc compile`.",
              escape.docstring(doc),
              "from __future__ import annotations",
              ""]
    text = "\n".join(header + imports) + "\n\n\n" + body + "\n"
    compile(text, "<generated>", "exec")  # a generated module that does not parse is our bug
    return text


def _summary(program: Program, overrides: dict | None) -> str:
    """The weighted layers with the default arguments, when every parameter has one."""
    from ..frontend.elaborate import elaborate
    from ..frontend.facts import analyse

    cdef = class_def(program, overrides)
    if any(d.default is NO_DEFAULT for d in cdef.params):
        missing = ", ".join(d.name for d in cdef.params if d.default is NO_DEFAULT)
        return (f"Its layers depend on constructor arguments without defaults ({missing});\n"
                f"`specc show {escape.display_path(PurePosixPath(program.path).name)} -D name=value` "
                "lists them for given values.")
    net = analyse(elaborate(program, {}, overrides))
    lines = [f"Weighted layers with the default arguments ({len(net.weighted_layer_names)}):"]
    lines += [f"    {name}" for name in net.weighted_layer_names]
    return "\n".join(lines)


# CLArena's pipelines pass `disable_unlearning` to every backbone they build (its classes take any
# keyword through **kwargs); only AmnesiacHAT uses it, every other class accepts and ignores it.
_DISABLE_UNLEARNING = "disable_unlearning: bool = False"


# CLArena's constructors take any keyword (its Backbone drops what no class reads), so configs
# written for it may carry keys no class reads (`batch_normalisation`, misspelt, in its author's).
# With `--base clarena` the classes users build take them too and warn, naming them; with specc's
# own base an unknown keyword stays a TypeError.
_UNKNOWN_KWARGS = "**unknown_kwargs"
_IGNORE_UNKNOWN = "ignore_unknown(type(self).__name__, unknown_kwargs)"


def _signature(program: Program, overrides: dict | None, base: str) -> list[str]:
    sig = [f"{escape.identifier(d.name)}: {d.annotation}" + ("" if d.default is NO_DEFAULT else f" = {d.default_src}")
           for d in class_def(program, overrides).params]
    if not any(d.startswith("disable_unlearning:") for d in sig):
        sig += ["*", _DISABLE_UNLEARNING]
    if base == "clarena":
        sig.append(_UNKNOWN_KWARGS)
    return sig


def _init_head(w: _Writer) -> list[str]:
    """The first lines of a constructor users call (the network's, the continual and masked classes')."""
    return [f"        {_IGNORE_UNKNOWN}"] if w.base == "clarena" else []


def _continual_class(w: _Writer, program: Program, overrides, final: str, plain: str) -> list[str]:
    names = [p.name for p in w.network.params]
    call = ["output_dim=output_dim" if "output_dim" in w.net_params else "output_dim=None"]
    call += [f"{n}={n}" for n in names if n != "output_dim"]
    doc = f"{final}: the network {plain} as a continual-learning backbone (the forward ignores task_id)."
    return [f"class {final}(CLBackbone, {plain}):",
            *_doc(doc),
            "",
            *_wrap("    ", f"def __init__({', '.join(['self'] + _signature(program, overrides, w.base))}) -> None:"),
            *_init_head(w),
            *_wrap("        ", f"super().__init__({', '.join(call)})"),
            "",
            "    def forward(self, input: Tensor, stage: str | None = None, task_id: int | None = None) "
            "-> tuple[Tensor, dict[str, Tensor]]:",
            f"        return {plain}.forward(self, input, stage)"]


def _hat_block_class(w: _Writer, b: A.BlockDef, hat_blocks: list[A.BlockDef]) -> list[str]:
    """A block as a HAT backbone of its own, as CLArena's HAT ResNet blocks are (`--base clarena`):
    it holds the task embeddings of its layers, drawn right after its layers are built (shared with
    the network's `task_embedding_t`), its gate and stored masks, and its per-task batch norms."""
    plain = w.class_names[b.name]
    name = f"HATMask{plain}"
    net_names = w.block_net_params[b.name]
    sig = ["self", "path: str", "in_shape: tuple"]
    for p in b.params:
        default = "" if p.default is None else f" = {literal(w._value(p.default))}"
        sig.append(f"{escape.identifier(p.name)}: {annotation(p.type)}{default}")
    sig += ["*", "gate: str"]
    call = ["output_dim=None", "gate=gate", "path=path", "in_shape=in_shape"]
    call += [f"{p.name}={p.name}" for p in b.params]
    for n in net_names:
        if n == "batch_normalization":
            sig.append("batch_normalization: str | None")
            call.append("batch_normalization=hat.uses_batch_norm(batch_normalization)")
        else:
            sig.append(f"{n}: {annotation(w.net_params[n].type)}")
            call.append(f"{n}={n}")
    sig.append("output_dim: int | None = None")
    mode = "batch_normalization" if "batch_normalization" in net_names else "None"
    doc = (f"{plain} as a HAT backbone of its own, as the blocks of CLArena's HAT ResNets are: it holds the "
           "task embeddings of its layers (drawn right after its layers are built; the network's "
           "`task_embedding_t` shares them), its gate, its stored masks and its per-task batch norms.")
    lines = [f"class {name}(hat.HATBlock, HATMaskBackbone, {plain}):", *_doc(doc), ""]
    lines += [f"    forward = {plain}.forward  # the network applies the masks; the block's computation is {plain}'s"]
    inner = [x for x in hat_blocks if x.name in set(w.ops_in(b.body))]
    lines += [f"    block_{x.name} = hat.nested(HATMask{w.class_names[x.name]})" for x in inner]
    lines += ["", *_wrap("    ", f"def __init__({', '.join(sig)}) -> None:")]
    if inner:
        lines += ["        self.gate = gate  # its own blocks are built (as HAT backbones) by the constructor below",
                  f"        self.batch_normalization_mode = {mode}"]
    lines += [*_wrap("        ", f"super().__init__({', '.join(call)})"),
              f"        hat.install_block(self, {mode})"]
    return lines


def _masked_class(w: _Writer, program: Program, overrides, final: str, plain: str,
                  hat_blocks: list[A.BlockDef] = ()) -> list[str]:
    scheme = masking.scheme(program)
    runtime_module = scheme.runtime
    opts = masking.options(program)
    class_names = [p.name for p in masking.class_params(program)]
    call = ["output_dim=output_dim" if "output_dim" in class_names else "output_dim=None"]
    if scheme.unit_masks:
        call.append("gate=gate")
    call += [f"{name}={name}" for name, _, _ in scheme.extra_params]
    weights = w.network.pretrained.param if w.network.pretrained is not None else None
    for p in w.network.params:
        if p.name == "output_dim":
            continue
        if p.name == weights:
            call.append(f"{p.name}=None")  # loaded below, once the masking scheme has set up its parameters
            continue
        if p.name == "batch_normalization":
            if "batch_normalization" in class_names:
                call.append(f"batch_normalization={runtime_module}.uses_batch_norm(batch_normalization)")
            else:
                call.append("batch_normalization=False")
        else:
            call.append(f"{p.name}={p.name}")
    install = ["self", plain]
    install.append("batch_normalization=batch_normalization" if "batch_normalization" in class_names
                   else "batch_normalization=None")
    for key in ("protect_shortcuts", "fold_batch_norm", "mask_layer_norms"):
        if opts.get(key):
            install.append(f"{key}=True")
    if opts.get("rank_by", "score") != "score":
        install.append(f"rank_by={escape.string(opts['rank_by'])}")
    if opts.get("point", "earliest") != "earliest":
        install.append(f"point={escape.string(opts['point'])}")
    bases = [f"{runtime_module}.{scheme.mixin}"] + ([plain, scheme.base] if scheme.plain_first else [scheme.base, plain])
    doc = f"{final}: the network {plain} with {scheme.summary} (specc.runtime.schemes.{runtime_module})."
    lines = [f"class {final}({', '.join(bases)}):", *_doc(doc), ""]
    if scheme.backups:
        lines += [f"    original_backbone_class = {plain}"]
    direct = [b for b in hat_blocks if b.name in set(w.ops_in(w.network.body))]
    lines += [f"    block_{b.name} = hat.nested(HATMask{w.class_names[b.name]})  # blocks are HAT backbones, as in CLArena"
              for b in direct]
    if lines[-1] != "":
        lines.append("")
    lines += [*_wrap("    ", f"def __init__({', '.join(['self'] + _signature(program, overrides, w.base))}) -> None:"),
              *_init_head(w)]
    if hat_blocks:
        mode = "batch_normalization" if "batch_normalization" in class_names else "None"
        lines += ["        # The blocks are built as HAT backbones by the plain constructor: they need these first.",
                  "        self.gate = gate",
                  f"        self.batch_normalization_mode = {mode}"]
    lines += [
              *_wrap("        ", f"super().__init__({', '.join(call)})"),
              *_wrap("        ", f"{runtime_module}.install({', '.join(install)})")]
    if weights is not None:
        only = ", projections_only=True" if scheme.unit_masks else ""
        comment = "  # as CLArena's HAT ResNets: linear/conv weights only" if only else ""
        lines += [f"        if {weights} is not None:{comment}",
                  f"            pretrained.load(self, self.pretrained_from, {weights}{only})"]
    return lines


_WIDTH = 110


def _doc(text: str, pad: str = "    ") -> list[str]:
    """A class docstring, its text wrapped at the code's width."""
    import textwrap

    paragraphs = [textwrap.fill(p, _WIDTH - len(pad) - 6) for p in text.split("\n\n")]
    lines = escape.docstring("\n\n".join(paragraphs)).split("\n")
    return [pad + lines[0]] + [(pad + line) if line else "" for line in lines[1:]]


def _wrap(pad: str, text: str) -> list[str]:
    """A long call or signature, one argument per line (as a formatter would write it)."""
    line = pad + text
    code, sep, comment = text.partition("  # ")
    if len(pad + code) <= _WIDTH:
        return [line]
    if code.startswith(("if ", "for ")):
        return [line]
    # the call whose arguments close the line: `f(...)`, `x = f(...)`, `def f(...) -> None:`
    end = code.rstrip()
    close_at = end.rfind(")")
    if close_at < 0 or end[close_at + 1:] not in ("", ":", " -> None:"):
        return [line]
    open_at = next((i for i in range(close_at, -1, -1)
                    if code[i] == "(" and _matching(code, i) == close_at), None)
    if open_at is None:
        return [line]
    args = _split_args(code[open_at + 1:close_at])
    if len(args) < 2:
        return [line]
    head = code[:open_at + 1] + (f"  # {comment}" if sep else "")
    inner = pad + "    "
    return [pad + head] + [f"{inner}{a}," for a in args] + [pad + code[close_at:]]


def _matching(code: str, open_at: int) -> int | None:
    depth, quote = 0, None
    for i in range(open_at, len(code)):
        c = code[i]
        if quote:
            if c == quote and code[i - 1] != "\\":
                quote = None
        elif c in "\"'":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i
    return None


def _split_args(text: str) -> list[str]:
    out, depth, quote, start = [], 0, None, 0
    for i, c in enumerate(text):
        if quote:
            if c == quote and text[i - 1] != "\\":
                quote = None
        elif c in "\"'":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
    if text[start:].strip():
        out.append(text[start:].strip())
    return out
