"""AST of the spec language: plain dataclasses, each carrying its source position.

The parser (specc/frontend/parse.py) produces these; the elaborator reads them. Nothing here imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import Pos


# ---- expressions -------------------------------------------------------------------------------
@dataclass
class Expr:
    pos: Pos


@dataclass
class Lit(Expr):
    value: object  # int | float | str | bool | None


@dataclass
class Name(Expr):
    id: str


@dataclass
class InputRef(Expr):
    """`in`: the shape of the tensor entering the enclosing block."""


@dataclass
class Attr(Expr):
    obj: Expr
    name: str


@dataclass
class Index(Expr):
    obj: Expr
    index: Expr


@dataclass
class FunCall(Expr):
    func: str
    args: list[Expr]
    kwargs: list[tuple[str, Expr]]


@dataclass
class BinOp(Expr):
    op: str  # + - * // %
    left: Expr
    right: Expr


@dataclass
class Compare(Expr):
    op: str  # == != < <= > >=
    left: Expr
    right: Expr


@dataclass
class BoolOp(Expr):
    op: str  # and | or
    left: Expr
    right: Expr


@dataclass
class Not(Expr):
    operand: Expr


@dataclass
class Neg(Expr):
    operand: Expr


@dataclass
class Ternary(Expr):
    cond: Expr
    then: Expr
    otherwise: Expr


@dataclass
class ListLit(Expr):
    items: list[Expr]


@dataclass
class TupleLit(Expr):
    """`(a, b, c)`: a fixed-length row of values, e.g. one line of a loop's config table."""
    items: list[Expr]


# ---- declarations ------------------------------------------------------------------------------
@dataclass
class TypeRef:
    name: str  # int | float | bool | str | list | activation | block
    arg: str | None  # element type of list[...]
    optional: bool  # `T?`: None is also accepted
    pos: Pos

    def __str__(self) -> str:
        inner = f"[{self.arg}]" if self.arg else ""
        return f"{self.name}{inner}{'?' if self.optional else ''}"


@dataclass
class Param:
    name: str
    type: TypeRef
    default: Expr | None
    pos: Pos


@dataclass
class Op:
    """An operation in a chain element: a builtin layer, an activation, or a block instantiation."""

    name: str
    args: list[Expr]
    kwargs: list[tuple[str, Expr]]
    repeat: Expr | None  # `block(...) * n`
    pos: Pos


@dataclass
class PathRef:
    """The module path an element is stored under: `name`, `name[index]`, or a computed name such as
    `fc{i + 1}` (`parts`: its pieces in order, literal text and interpolated expressions; `name` is
    then its source text, for messages)."""

    name: str
    index: Expr | None
    pos: Pos
    parts: list | None = None  # computed names only: [str | Expr, ...]


@dataclass
class Layer:
    path: PathRef | None
    ops: list[Op]  # more than one only for a sequence of blocks: `a(...), b(...) * 2`
    cond: Expr | None  # present only when this holds; otherwise the element is skipped
    pos: Pos
    cond_pos: Pos | None = None  # where its `if` is


@dataclass
class Record:
    pos: Pos
    cond: Expr | None = None  # `record if c`
    cond_pos: Pos | None = None


@dataclass
class Add:
    branch: str
    pos: Pos
    cond: Expr | None = None  # `add(b) if c`
    cond_pos: Pos | None = None


@dataclass
class Concat:
    """`concat(b1, b2, ...)`: the stream and the named branches, concatenated along the channels (or
    features), in that order."""

    branches: list[str]
    pos: Pos
    cond: Expr | None = None
    cond_pos: Pos | None = None


@dataclass
class Mul:
    """`mul(b)`: the stream times the gate branch `b` applied to the stream (squeeze-excitation): `b`
    starts from the stream at this point, not from the scope's input, and its output (one value per
    unit) is broadcast over the stream's other sizes (specc.core.shape.gate_problem)."""

    branch: str
    pos: Pos
    cond: Expr | None = None
    cond_pos: Pos | None = None


@dataclass
class Use:
    """`use NAME` / `use NAME[index]`: call a module declared earlier in the same block or network
    once more (one module, several call sites: its parameters and state are shared)."""

    path: PathRef
    pos: Pos
    cond: Expr | None = None
    cond_pos: Pos | None = None


@dataclass
class Group:
    """`(a -> b -> ...) if c`: a sub-chain, present only when its guard holds. `residual`: written
    `(+ a -> b)`, its output is added to its input (a residual block's main path and identity)."""

    elements: list[Element]
    pos: Pos
    cond: Expr | None = None
    cond_pos: Pos | None = None
    residual: bool = False


Element = Layer | Record | Add | Concat | Mul | Use | Group


def flat_elements(elements):
    """The elements of a chain with the elements of its groups (nested ones too) in their place,
    groups themselves included (before their elements)."""
    todo = list(reversed(elements))
    while todo:
        el = todo.pop()
        yield el
        if isinstance(el, Group):
            todo.extend(reversed(el.elements))


def layer_elements(stmts):
    """Every layer element of the statements `stmts`: in loops, branches and groups too, not inside
    the blocks they instantiate; in no particular order."""
    todo = list(stmts)
    while todo:
        st = todo.pop()
        if isinstance(st, ForLoop):
            todo.extend(st.body)
        elif isinstance(st, (Chain, Branch)):
            for el in flat_elements(st.elements):
                if isinstance(el, Layer):
                    yield el


def input_ref_in(node) -> InputRef | None:
    """The first `in` that `node` (an expression, an element, a list of them) reads, if any; the
    elements of a group are not the group's own (each is asked on its own)."""
    todo = [node]
    while todo:
        x = todo.pop()
        if isinstance(x, InputRef):
            return x
        if isinstance(x, (list, tuple)):
            todo.extend(x)
        elif hasattr(x, "__dataclass_fields__") and not isinstance(x, Group):
            todo.extend(getattr(x, f) for f in x.__dataclass_fields__ if f != "pos")
    return None


@dataclass
class Chain:
    elements: list[Element]
    pos: Pos


@dataclass
class Branch:
    """`branch NAME = chain`: a side path from the scope's input, used by `add(NAME)`."""

    name: str
    elements: list[Element]
    pos: Pos


@dataclass
class ForLoop:
    index_var: str | None
    item_var: str | None  # None when the item is unpacked
    iterable: Expr
    body: list[Stmt]
    pos: Pos
    unpack: list[str] | None = None  # `for (t, c, n) in cfg`: the names each item is unpacked into

    def names(self) -> list[str]:
        """The names the loop binds, index first."""
        out = [self.index_var] if self.index_var is not None else []
        if self.unpack is not None:
            return out + list(self.unpack)
        assert self.item_var is not None  # one of the two is set (ast_builder.for_loop)
        return out + [self.item_var]


@dataclass
class BlockDef:
    name: str
    params: list[Param]
    body: list[Stmt]
    pos: Pos


Stmt = Chain | Branch | ForLoop | BlockDef


@dataclass
class InputDecl:
    kind: str  # features | image
    args: list[Expr]
    pos: Pos


@dataclass
class NetworkDef:
    name: str
    params: list[Param]
    input: InputDecl
    body: list[Stmt]
    pos: Pos
    pretrained: Pretrained | None = None
    # Parameters fixed when the spec is compiled (not constructor parameters): bound by a backbone
    # (`backbone ResNet18 = ResNet(blocks=[2, 2, 2, 2])`) or block-typed: (parameter, value, where
    # the value is written). A NetworkDef with fixed parameters is a view made by specc.frontend.load.
    fixed: list[tuple[Param, Expr, Pos]] = field(default_factory=list)
    origin: NetworkDef | None = None  # the network as written, for a view
    bound_in: BackboneDecl | None = None  # the backbone declaration binding it, for a view


@dataclass
class Pretrained:
    """`pretrained PARAM from "MODEL" { "old" -> "new" ... }`: when the network's `str?` parameter
    PARAM is not none, load torchvision's MODEL with those weights, its state-dict keys renamed
    (runs of whole dotted segments, first matching rule; `-> none` drops the key)."""

    param: str
    model: str
    renames: list[tuple[str, str | None]]
    pos: Pos


@dataclass
class Include:
    path: str
    pos: Pos


@dataclass
class BackboneDecl:
    name: str
    continual: bool
    network: str
    pos: Pos
    # `backbone NAME = NETWORK(args)`: the arguments bound (fixed) in the class; None without `(...)`
    binding: tuple[list[Expr], list[tuple[str, Expr]]] | None = None


@dataclass
class MaskDecl:
    scheme: str
    args: list[Expr]
    kwargs: list[tuple[str, Expr]]
    pos: Pos


@dataclass
class PrepareDecl:
    """`prepare(name=value, ...)`: constructor arguments whose structure `specc compile` runs the
    masking pass on, writing its output into the generated file."""

    kwargs: list[tuple[str, Expr]]
    pos: Pos


@dataclass
class SpecFile:
    path: str
    source: str
    includes: list[Include] = field(default_factory=list)
    blocks: list[BlockDef] = field(default_factory=list)
    networks: list[NetworkDef] = field(default_factory=list)
    backbone: BackboneDecl | None = None
    mask: MaskDecl | None = None
    prepares: list[PrepareDecl] = field(default_factory=list)
    tokens: int = 0  # tokens of the text (limits.TOKENS)


def guarded_layers(stmts, groups: tuple = ()) -> list[tuple[Layer, tuple]]:
    """The layers of the chains of `stmts` (in loops too, not in branches), in source order, each with
    the guards of the groups around it."""
    out = []
    for s in stmts:
        if isinstance(s, ForLoop):
            out += guarded_layers(s.body)
        elif isinstance(s, Chain):
            todo = [(el, groups) for el in reversed(s.elements)]
            while todo:
                el, gs = todo.pop()
                if isinstance(el, Layer):
                    out.append((el, gs))
                elif isinstance(el, Group):
                    inner = gs + ((el.cond,) if el.cond is not None else ())
                    todo.extend((x, inner) for x in reversed(el.elements))
    return out


def loop_lists(loop: ForLoop) -> list[tuple[str, Layer, tuple, bool]]:
    """The module lists a loop fills (`name[i]: ...` in its body, nested loops included), in order of
    first use: (name, that first layer, its guards (its groups' and its own), whether a guard reads a
    loop variable). Both sides create a list before the loop's first iteration, under its guards
    when they do not change from iteration to iteration (always otherwise), so that the lists are
    registered, and exist, the same way whatever the number of iterations."""
    loop_vars: set[str] = set()
    todo = [loop]
    while todo:
        x = todo.pop()
        loop_vars |= set(x.names())
        todo.extend(s for s in x.body if isinstance(s, ForLoop))
    out, seen = [], set()
    for layer, groups in guarded_layers(loop.body):
        p = layer.path
        if p is None or p.parts is not None or p.index is None or p.name in seen:
            continue
        seen.add(p.name)
        conds = tuple(groups) + ((layer.cond,) if layer.cond is not None else ())
        out.append((p.name, layer, conds, any(_reads(c, loop_vars) for c in conds)))
    return out


def _reads(e, names: set) -> bool:
    """Whether expression `e` reads one of `names`."""
    todo = [e]
    while todo:
        x = todo.pop()
        if isinstance(x, Name) and x.id in names:
            return True
        if isinstance(x, (list, tuple)):
            todo.extend(x)
        elif hasattr(x, "__dataclass_fields__"):
            todo.extend(getattr(x, f) for f in x.__dataclass_fields__ if f != "pos")
    return False
