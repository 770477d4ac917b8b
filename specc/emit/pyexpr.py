"""Spec expressions as Python source.

The spec language's operators are Python's (`+ - * // %`, comparisons, `and or not`, `a if c
else b`, lists, `len range min max`), so an expression translates one to one; only names are
resolved by the caller (a constructor argument is a local in `__init__` and `self.name` in
`forward`) and `in` becomes the block's input shape. Parentheses are added only where Python's
precedence needs them; comparisons are never chained (the spec's grammar does not chain them).
"""
from __future__ import annotations

from collections.abc import Callable

from ..core.layers import ACTIVATIONS
from ..frontend import ast as A
from . import escape

# Python precedence levels, loosest first.
_TERNARY, _OR, _AND, _NOT, _COMPARE, _SUM, _TERM, _UNARY, _POSTFIX, _ATOM = range(10)
# `in.NAME` as an index of the shape tuple (the elaborator has checked that the kind has the field):
# channels, height and width sit at the same index in every kind that has them, features last (of
# features and tokens); units and length depend on the kind (a signal's length is last, tokens' first),
# which the runtime shape tells (shapes.field, after specc.core.shape.FIELDS).
_SHAPE_FIELDS = {"channels": "0", "height": "1", "width": "2", "features": "-1"}
_KIND_FIELDS = ("units", "length")


class ExprWriter:
    """Python source for spec expressions; `name` maps a spec name to Python source (None: not a
    name of this scope), `in_shape` is the source of the enclosing block's input shape."""

    def __init__(self, name: Callable[[str], str | None], in_shape: str | None):
        self.name = name
        self.in_shape = in_shape

    def __call__(self, e: A.Expr) -> str:
        return self._write(e)[0]

    def _wrap(self, e: A.Expr, level: int) -> str:
        src, prec = self._write(e)
        return f"({src})" if prec < level else src

    def _write(self, e: A.Expr) -> tuple[str, int]:
        if isinstance(e, A.Lit):
            return escape.literal(e.value), _ATOM
        if isinstance(e, A.Name):
            src = self.name(e.id)
            if src is not None:
                return src, _POSTFIX
            if e.id in ACTIVATIONS:
                return f"nn.{escape.identifier(e.id)}", _POSTFIX
            raise ValueError(f"unknown name {e.id!r}")  # the elaborator has rejected it already
        if isinstance(e, A.InputRef):
            if self.in_shape is None:
                raise ValueError("`in` outside a block")
            return self.in_shape, _POSTFIX
        if isinstance(e, A.Attr):
            if not isinstance(e.obj, A.InputRef) or e.name not in (*_SHAPE_FIELDS, *_KIND_FIELDS):
                raise ValueError(f"no attribute {e.name!r}")
            if e.name in _KIND_FIELDS:
                return f"shapes.field({self(e.obj)}, {escape.string(e.name)})", _POSTFIX
            return f"{self._wrap(e.obj, _POSTFIX)}[{_SHAPE_FIELDS[e.name]}]", _POSTFIX
        if isinstance(e, A.Index):
            return f"{self._wrap(e.obj, _POSTFIX)}[{self(e.index)}]", _POSTFIX
        if isinstance(e, A.FunCall):
            args = ", ".join(self(a) for a in e.args)
            if e.func == "range":
                return f"list(range({args}))", _POSTFIX
            if e.func in ("len", "min", "max"):
                return f"{e.func}({args})", _POSTFIX
            raise ValueError(f"unknown function {e.func!r}")
        if isinstance(e, A.BinOp):
            level = _SUM if e.op in ("+", "-") else _TERM
            return f"{self._wrap(e.left, level)} {e.op} {self._wrap(e.right, level + 1)}", level
        if isinstance(e, A.Compare):
            op = e.op
            if op in ("==", "!=") and _is_none(e.right):
                op = "is" if op == "==" else "is not"  # Python's idiom for None; same values here
            return f"{self._wrap(e.left, _SUM)} {op} {self._wrap(e.right, _SUM)}", _COMPARE
        if isinstance(e, A.BoolOp):
            level = _AND if e.op == "and" else _OR
            return f"{self._wrap(e.left, level)} {e.op} {self._wrap(e.right, level + 1)}", level
        if isinstance(e, A.Not):
            return f"not {self._wrap(e.operand, _NOT)}", _NOT
        if isinstance(e, A.Neg):
            return f"-{self._wrap(e.operand, _UNARY)}", _UNARY
        if isinstance(e, A.Ternary):
            return (f"{self._wrap(e.then, _OR)} if {self._wrap(e.cond, _OR)} else {self._wrap(e.otherwise, _TERNARY)}",
                    _TERNARY)
        if isinstance(e, A.ListLit):
            return "[" + ", ".join(self(x) for x in e.items) + "]", _ATOM
        if isinstance(e, A.TupleLit):
            return "(" + ", ".join(self(x) for x in e.items) + ("," if len(e.items) == 1 else "") + ")", _ATOM
        raise TypeError(f"cannot write {type(e).__name__}")


def _is_none(e: A.Expr) -> bool:
    return isinstance(e, A.Lit) and e.value is None


def free_names(node, bound: frozenset = frozenset()) -> list[str]:
    """Spec names an expression or statement list reads that it does not bind itself (loop
    variables are bound inside their loop), in order of first use."""
    out: dict[str, None] = {}

    def visit(n, bound):
        if isinstance(n, A.Name):
            if n.id not in bound:
                out[n.id] = None
        elif isinstance(n, A.ForLoop):
            visit(n.iterable, bound)
            inner = bound | set(n.names())
            for s in n.body:
                visit(s, inner)
        elif isinstance(n, A.Op):
            if n.name not in bound:
                out[n.name] = None  # an activation parameter used as a layer
            for a in n.args:
                visit(a, bound)
            for _, a in n.kwargs:
                visit(a, bound)
            if n.repeat is not None:
                visit(n.repeat, bound)
        elif isinstance(n, list):
            for x in n:
                visit(x, bound)
        elif hasattr(n, "__dataclass_fields__"):
            for f in n.__dataclass_fields__:
                if f != "pos":
                    visit(getattr(n, f), bound)

    visit(node, bound)
    return list(out)
