"""The spec language's expression evaluator: an expression and an environment of values -> a
value, every step paid for from the elaboration's budget (specc.core.limits), every refusal a
positioned SpecError. Specs are data: only the language's own operators and the functions in
_FUNCS exist. The source writer's counterpart, which prints the same expressions as Python, is
specc.emit.pyexpr."""
from __future__ import annotations

import difflib
import math

from ..core.layers import ACTIVATIONS
from ..core.limits import INT_BITS, LIST_LENGTH, Budget, int_in_range
from ..core.shape import FIELDS as SHAPE_FIELDS
from ..core.values import Activation
from . import ast as A
from .errors import Pos, SpecError
from .ir import Shape
from .load import Program

_FUNCS = ("len", "range", "min", "max")


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
        if t is A.Lit:  # the commonest node, tested by its exact type (cheaper than isinstance)
            return e.value  # type: ignore[attr-defined]
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
        raise self.err(f"'{e.name}' is not an attribute of {describe(obj)}", e.pos)

    def _Index(self, e):
        obj, idx = self.eval(e.obj), self.eval(e.index)
        if not isinstance(obj, list):
            raise self.err(f"cannot index {describe(obj)}", e.pos)
        if not is_int(idx):
            raise self.err(f"a list index must be an int, not {describe(idx)}", e.index.pos)
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
            if not 1 <= len(args) <= 3 or not all(is_int(a) for a in args):
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
        if not items or not all(is_num(a) for a in items):
            raise self.err(f"{e.func}() needs numbers", e.pos)
        return min(items) if e.func == "min" else max(items)

    def _BinOp(self, e):
        a, b = self.eval(e.left), self.eval(e.right)
        if e.op == "+" and isinstance(a, list) and isinstance(b, list):
            if len(a) + len(b) > LIST_LENGTH:
                raise self.err(f"list too long: {len(a) + len(b):,} elements (limit {LIST_LENGTH:,})", e.pos)
            return self._list(a + b, e.pos)
        if not (is_num(a) and is_num(b)):
            raise self.err(f"'{e.op}' needs numbers, not {describe(a)} and {describe(b)}", e.pos)
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
        if not (is_num(a) and is_num(b)):
            raise self.err(f"'{e.op}' needs numbers, not {describe(a)} and {describe(b)}", e.pos)
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
        if not is_num(v):
            raise self.err(f"cannot negate {describe(v)}", e.pos)
        return self._number(-v, e.pos)

    def _Ternary(self, e):
        return self.eval(e.then) if self._truth(e.cond) else self.eval(e.otherwise)

    def _ListLit(self, e):
        out = []
        for x in e.items:  # a loop, not a comprehension: one frame less per level of nesting
            out.append(self.eval(x))
        return self._list(out, e.pos)

    def _TupleLit(self, e):
        out = []
        for x in e.items:
            out.append(self.eval(x))
        return tuple(self._list(out, e.pos))

    def _truth(self, e) -> bool:
        v = self.eval(e)
        if not isinstance(v, bool):
            raise self.err(f"a condition must be true or false, not {describe(v)}", e.pos,
                           "compare explicitly, e.g. `dropout != none`")
        return v


# Expression type -> Evaluator method (a dict lookup, not a getattr of a built name, per node).
_DISPATCH = {getattr(A, name[1:]): method for name, method in vars(Evaluator).items()
             if name[:1] == "_" and name[1:2].isupper() and isinstance(getattr(A, name[1:], None), type)}


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def describe(v) -> str:
    if v is None:
        return "none"
    if isinstance(v, Shape):
        return f"a shape {v}"
    if isinstance(v, list) and len(v) > 8:
        return f"a list of {len(v):,} elements"
    text = repr(v)
    if len(text) > 80:
        text = text[:77] + "..."
    if isinstance(v, tuple):  # a row of a loop's table: `tuple ((1, 2))` would read badly
        return f"a tuple {text}"
    return f"{type(v).__name__} {text}"


def new_budget(program: Program) -> Budget:
    """A fresh budget of elaboration steps whose errors are positioned in `program`'s files."""
    return Budget(lambda msg, pos: SpecError(msg, pos, source=program.sources.get(pos.file) if pos else None))
