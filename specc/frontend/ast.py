"""AST of the spec language: plain dataclasses, each carrying its source position.

The parser (specc/parse.py) produces these; the elaborator reads them. Nothing here imports torch.
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


# ---- declarations ------------------------------------------------------------------------------
@dataclass
class TypeRef:
    name: str  # int | float | bool | str | list | activation
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
    """The module path an element is stored under: `name` or `name[index]`."""

    name: str
    index: Expr | None
    pos: Pos


@dataclass
class Layer:
    path: PathRef | None
    ops: list[Op]  # more than one only for a sequence of blocks: `a(...), b(...) * 2`
    cond: Expr | None  # present only when this holds; otherwise the element is skipped
    pos: Pos


@dataclass
class Record:
    pos: Pos


@dataclass
class Add:
    branch: str
    pos: Pos


Element = Layer | Record | Add


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
    item_var: str
    iterable: Expr
    body: list["Stmt"]
    pos: Pos


@dataclass
class BlockDef:
    name: str
    params: list[Param]
    body: list["Stmt"]
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
    pretrained: "Pretrained | None" = None


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


@dataclass
class MaskDecl:
    scheme: str
    args: list[Expr]
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
    tokens: int = 0  # tokens of the text (limits.TOKENS)
