"""The writer of one program's classes: naming (classes, locals, spec positions), the blocks used
and the network parameters each reads, and the block and network classes themselves."""
from __future__ import annotations

import keyword
import posixpath
from pathlib import PurePosixPath

from ..core.layers import OPS
from ..core.values import type_name
from ..frontend import ast as A
from ..frontend import masking
from ..frontend.binding import block_parameters, fixed_values
from ..frontend.classdef import annotation, literal
from ..frontend.errors import Pos, SpecError
from ..frontend.load import Program
from ..frontend.reserved import GENERATED_NAMES
from ..frontend.scope_rules import branch_roles
from . import escape
from .class_templates import DISABLE_UNLEARNING, IGNORE_UNKNOWN, UNKNOWN_KWARGS
from .lines import Lines, doc_lines, wrap
from .names import chain_ops
from .pyexpr import ExprWriter, free_names
from .scope import Scope
from .statements import Statements

# Names the generated module binds at module level (imports); a spec name equal to one of them is
# renamed where it would shadow it (loop variables, branches).
_MODULE_NAMES = GENERATED_NAMES
# Locals the generated methods use.
_LOCALS = ("self", "x", "input", "shape", "activations", "block", "block_activations", "child", "path",
           "in_shape", "input_shape", "stage")



class Writer(Statements):
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
        # a Python keyword (`for lambda in ...`) is a spec name but not a Python one
        while out in _MODULE_NAMES or out in _LOCALS or out in self.class_names.values() or keyword.iskeyword(out):
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
                      for op in chain_ops([s]))
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
    def expr_writer(self, scope: Scope, forward: bool) -> ExprWriter:
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

    # -- classes --------------------------------------------------------------------------------
    def block_class(self, b: A.BlockDef) -> list[str]:
        cls = self.class_names[b.name]
        net_names = self.block_net_params[b.name]
        scope = Scope("block", {**{n: self.net_params[n] for n in net_names}, **{p.name: p for p in b.params}},
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
                *doc_lines(self.block_doc(b)),
                "",
                *[f"    block_{x.name} = {self.class_names[x.name]}" for x in inner],
                *([""] if inner else []),
                *wrap("    ", f"def __init__({', '.join(sig)}) -> None:")]
        return head + init.lines + ["", "    def forward(self, input: Tensor) -> tuple[Tensor, dict[str, Tensor]]:"] + fwd.lines

    def block_doc(self, b: A.BlockDef) -> str:
        return (f"`block {b.name}` ({self.where(b.pos)}): a building block. `path` is its module path "
                "('/'-separated), which prefixes the names of its weighted layers; `in_shape` the shape "
                "of its input, without the batch dimension.")

    def _value(self, e: A.Expr):
        from ..frontend.evaluator import Evaluator

        return Evaluator(self.program, {}).eval(e)

    def network_class(self, name: str) -> list[str]:
        net = self.network
        params = self.plain_params()
        scope = Scope("network", dict(self.net_params))
        init, fwd = Lines(), Lines()
        init.depth = fwd.depth = 2
        if self.base == "clarena":
            init.add(IGNORE_UNKNOWN)
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
        sig.append(DISABLE_UNLEARNING)
        if self.base == "clarena":
            sig.append(UNKNOWN_KWARGS)
        head = [f"class {name}(Backbone):",
                *doc_lines(self.network_doc(name)),
                ""]
        for b in self.blocks_used:
            head.append(f"    block_{b.name} = {self.class_names[b.name]}")
        if net.pretrained is not None:
            renames = ", ".join(f"({escape.string(a)}, {escape.literal(b)})" for a, b in net.pretrained.renames)
            head += wrap("    ", f"pretrained_from = pretrained.Source({escape.string(net.pretrained.model)}, "
                                  f"({renames}{',' if len(net.pretrained.renames) == 1 else ''}))  "
                                  f"# {self.where(net.pretrained.pos)}")
        if self.blocks_used or net.pretrained is not None:
            head.append("")
        head += wrap("    ", f"def __init__({', '.join(sig)}) -> None:")
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

    def input_shape(self, scope: Scope) -> str:
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


