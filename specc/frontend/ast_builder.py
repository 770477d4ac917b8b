"""The lark parse tree of a spec file -> its AST (specc/frontend/ast.py), with source positions:
literals checked against the limits, includes checked for their names, nesting counted. Called by
specc/frontend/parse.py, which parses the text and reports syntax errors."""
from __future__ import annotations

import math
import re

from lark import Token, Tree

from ..core.limits import INT_BITS, NESTING, int_in_range
from . import ast as A
from .errors import Pos, SpecError

# Rules that nest: expressions, lists, loops and groups. NESTING bounds how many enclose one another, so
# that the evaluator's and elaborator's recursion stays far below Python's limit.
_NESTING_RULES = frozenset({"ternary", "or_", "and_", "not_", "compare", "binop", "neg", "index", "attr",
                            "funcall", "list_lit", "tuple_lit", "for_loop", "group"})


class _Builder:
    """Lark tree -> AST dataclasses. One method per `-> alias` in the grammar, called as
    method(meta, children) in post-order by `transform`, which walks the tree with an explicit
    stack (a deep expression must not exhaust Python's recursion)."""

    def __init__(self, path: str, text: str):
        self.file = path
        self.text = text
        self._spans: dict[int, tuple[int, int, int, int]] = {}  # id(element) -> offsets (see _span)
        self._guards: dict[int, tuple[int, int]] = {}  # id(condition) -> offsets of its `if`

    def transform(self, root: Tree):
        # Frames: [tree, index of the next child, results of the children so far, nesting].
        stack = [[root, 0, [], 0]]
        while True:
            frame = stack[-1]
            tree, i, done, nest = frame
            children = tree.children
            if i < len(children):
                frame[1] = i + 1
                child = children[i]
                if isinstance(child, Tree):
                    inner = nest + (child.data in _NESTING_RULES)
                    if inner > NESTING:
                        raise SpecError(f"nested too deeply (limit {NESTING} levels of expressions, lists "
                                        "and loops)", self._pos(child.meta),
                                        hint="each operator of a long chain like `a + b + c + ...` is one "
                                             "level: use a list parameter or fewer terms", source=self.text)
                    stack.append([child, 0, [], inner])
                else:
                    done.append(child)
                continue
            stack.pop()
            value = getattr(self, tree.data)(tree.meta, done)
            if not stack:
                return value
            stack[-1][2].append(value)

    def _pos(self, meta) -> Pos:
        return Pos(self.file, getattr(meta, "line", 1), getattr(meta, "column", 1))

    def _tpos(self, tok: Token) -> Pos:
        return Pos(self.file, tok.line, tok.column)

    # -- file level
    def start(self, meta, items):
        spec = A.SpecFile(self.file, self.text)
        for item in items:
            if isinstance(item, A.Include):
                spec.includes.append(item)
            elif isinstance(item, A.BlockDef):
                spec.blocks.append(item)
            elif isinstance(item, A.NetworkDef):
                spec.networks.append(item)
            elif isinstance(item, A.BackboneDecl):
                if spec.backbone is not None:
                    raise SpecError("a spec file declares at most one backbone", item.pos, source=self.text)
                spec.backbone = item
            elif isinstance(item, A.MaskDecl):
                if spec.mask is not None:
                    raise SpecError("a spec file declares at most one mask", item.pos, source=self.text)
                spec.mask = item
            elif isinstance(item, A.PrepareDecl):
                spec.prepares.append(item)
        return spec

    def include(self, meta, c):
        name, pos = _unquote(c[0]), self._tpos(c[0])
        problem = _include_problem(name)
        if problem:
            raise SpecError(problem[0], pos, hint=problem[1], source=self.text)
        return A.Include(name, self._pos(meta))

    def network(self, meta, c):
        name, params, inp, *body = c
        pretrained = body.pop() if body and (body[-1] is None or isinstance(body[-1], A.Pretrained)) else None
        return A.NetworkDef(str(name), params or [], inp, body, self._pos(meta), pretrained)

    def pretrained(self, meta, c):
        param, model, *renames = c
        return A.Pretrained(str(param), _unquote(model), renames, self._pos(meta))

    def rename(self, meta, c):
        old, new = c
        return (_unquote(old), None if new.type == "NONE" else _unquote(new))

    def block(self, meta, c):
        name, params, *body = c
        return A.BlockDef(str(name), params or [], body, self._pos(meta))

    def backbone(self, meta, c):
        name, continual, net, binding = c
        return A.BackboneDecl(str(name), continual is not None, str(net), self._pos(meta), binding)

    def binding(self, meta, c):
        return c[0] if c[0] else ([], [])

    def mask(self, meta, c):
        name, args = c
        pos_args, kwargs = args if args else ([], [])
        return A.MaskDecl(str(name), pos_args, kwargs, self._pos(meta))

    def prepare(self, meta, c):
        pos_args, kwargs = c[0] if c[0] else ([], [])
        if pos_args:
            raise SpecError("prepare names its arguments", pos_args[0].pos,
                            hint="e.g. `prepare(input_channels=3, output_dim=512, gate=\"sigmoid\")`", source=self.text)
        return A.PrepareDecl(kwargs, self._pos(meta))

    def params(self, meta, c):
        return [p for p in c if p is not None]

    def param(self, meta, c):
        name, typ, default = c
        return A.Param(str(name), typ, default, self._tpos(name))

    def type(self, meta, c):
        name, arg, q = c
        return A.TypeRef(str(name), str(arg) if arg is not None else None, q is not None, self._tpos(name))

    def input_decl(self, meta, c):
        kind, args = c
        pos_args, kwargs = args if args else ([], [])
        if kwargs:
            raise SpecError("`input` takes positional sizes only", kwargs[0][1].pos, source=self.text)
        return A.InputDecl(str(kind), pos_args, self._tpos(kind))

    # -- statements
    def chain(self, meta, c):
        self._check_last_guard(list(c), "chain", meta)
        return A.Chain(list(c), self._pos(meta))

    def branch(self, meta, c):
        name, *elements = c
        self._check_last_guard(elements, "branch", meta)
        return A.Branch(str(name), elements, self._tpos(name))

    def _check_last_guard(self, elements, what: str, meta) -> None:
        """A guard on the last element of a chain (branch, group) of several elements reads as
        guarding the whole chain, but would guard that element only: refused, with both spellings
        that say which is meant."""
        if len(elements) < 2 or elements[-1].cond is None:
            return
        last = elements[-1]
        start, end, if_at, cond_at = self._spans[id(last)]
        element = _snippet(self.text[start:if_at])
        cond = _snippet(self.text[cond_at:end])
        head = _snippet(self.text[self._spans[id(elements[0])][0]:if_at], 70)
        only = f"`-> ({element} if {cond})`"
        whole = f"`({head}) if {cond}`"
        if what == "branch":
            whole = f"`branch ... = ({head}) if {cond}`"
        raise SpecError(f"this `if` guards only the last element of the {what}, {element}, but reads as "
                        f"guarding the whole {what}", last.cond_pos,
                        hint=f"to guard only that element write {only}; to guard the whole {what} write {whole}",
                        source=self.text)

    def for_loop(self, meta, c):
        first, second, iterable, *body = c
        index, item = (None, first) if second is None else (first, second)
        if isinstance(index, list):
            raise SpecError("a loop's index is one name: `for i, (a, b) in ...` unpacks the item, not the index",
                            self._pos(meta), source=self.text)
        if isinstance(item, list):
            names = [str(n) for n in item]
            for k, n in enumerate(names):
                if n in names[:k] or n == index:
                    raise SpecError(f"loop variable '{n}' is named twice", self._pos(meta), source=self.text)
            return A.ForLoop(None if index is None else str(index), None, iterable, body, self._pos(meta), names)
        if item == index:
            raise SpecError(f"loop variable '{item}' is named twice", self._pos(meta), source=self.text)
        return A.ForLoop(None if index is None else str(index), str(item), iterable, body, self._pos(meta))

    def unpack(self, meta, c):
        return [x for x in c if x is not None]

    def group(self, meta, c):
        items, guard = c
        cond, cond_pos = guard if guard is not None else (None, None)
        el = A.Group(items, self._pos(meta), cond, cond_pos)
        self._span(el, meta, guard)
        return el

    def residual(self, meta, c):
        sign, items, guard = c
        if str(sign) != "+":
            raise SpecError("a residual group is written `(+ ...)`: its output is added to its input", self._pos(meta),
                            source=self.text)
        el = self.group(meta, [items, guard])
        el.residual = True
        return el

    def group_items(self, meta, c):
        items = list(c)
        self._check_last_guard(items, "group", meta)
        return items

    def guard(self, meta, c):
        tok, expr = c
        self._guards[id(expr)] = (tok.start_pos, tok.end_pos)
        return expr, self._tpos(tok)

    def _span(self, el, meta, guard) -> None:
        """Record where the element's text starts and ends, where its `if` is and where its
        condition starts (both its end when it has no guard), for the hint of _check_last_guard."""
        start, end = getattr(meta, "start_pos", 0), getattr(meta, "end_pos", 0)
        if_at, cond_at = self._guards.get(id(guard[0]), (end, end)) if guard is not None else (end, end)
        self._spans[id(el)] = (start, end, if_at, cond_at)

    def layer(self, meta, c):
        path, ops, guard = c
        cond, cond_pos = guard if guard is not None else (None, None)
        if len(ops) == 1 and ops[0].name == "concat" and ops[0].repeat is None:
            el = self._concat(path, ops[0], cond, cond_pos, meta)
        elif len(ops) == 1 and ops[0].name == "mul" and ops[0].repeat is None:
            el = self._mul(path, ops[0], cond, cond_pos, meta)
        else:
            el = A.Layer(path, ops, cond, self._pos(meta), cond_pos)
        self._span(el, meta, guard)
        return el

    def _concat(self, path, op: A.Op, cond, cond_pos, meta) -> A.Concat:
        if path is not None:
            raise SpecError("concat(...) builds no module, so it takes no name", path.pos,
                            hint="write `concat(b1, b2)`", source=self.text)
        if op.kwargs or not op.args or not all(isinstance(a, A.Name) for a in op.args):
            raise SpecError("concat takes the names of one or more branches, e.g. `concat(b1, b2)`", op.pos,
                            hint="the stream comes first, then the branches in the order named", source=self.text)
        names = [a.id for a in op.args]
        for i, n in enumerate(names):
            if n in names[:i]:
                raise SpecError(f"branch '{n}' is named twice in concat", op.args[i].pos, source=self.text)
        return A.Concat(names, self._pos(meta), cond, cond_pos)

    def _mul(self, path, op: A.Op, cond, cond_pos, meta) -> A.Mul:
        if path is not None:
            raise SpecError("mul(...) builds no module, so it takes no name", path.pos,
                            hint="write `mul(b)`", source=self.text)
        if op.kwargs or len(op.args) != 1 or not isinstance(op.args[0], A.Name):
            raise SpecError("mul takes the name of one branch, the gate, e.g. `mul(se)`", op.pos,
                            hint="the gate branch starts from the stream here; its output scales each channel",
                            source=self.text)
        return A.Mul(op.args[0].id, self._pos(meta), cond, cond_pos)

    def record(self, meta, c):
        guard = c[0] if c else None
        cond, cond_pos = guard if guard is not None else (None, None)
        el = A.Record(self._pos(meta), cond, cond_pos)
        self._span(el, meta, guard)
        return el

    def add(self, meta, c):
        name, guard = c
        cond, cond_pos = guard if guard is not None else (None, None)
        el = A.Add(str(name), self._pos(meta), cond, cond_pos)
        self._span(el, meta, guard)
        return el

    def use(self, meta, c):
        name, guard = c
        cond, cond_pos = guard if guard is not None else (None, None)
        el = A.Use(A.PathRef(str(name), None, self._tpos(name)), self._pos(meta), cond, cond_pos)
        self._span(el, meta, guard)
        return el

    def path(self, meta, c):
        name, *interps, index = c
        if not interps:
            return A.PathRef(str(name), index, self._tpos(name))
        parts: list = [str(name)]
        at = name.end_pos  # where the next piece must start: the name is written without spaces
        for expr, pieces, start, end in interps:
            closing = pieces[0].start_pos - 1 if pieces else end - 1  # the `}`
            if start != at or self.text[closing] != "}":
                raise SpecError("a computed module name is written without spaces, e.g. `fc{i + 1}`",
                                self._offset_pos(start if start != at else closing), source=self.text)
            parts.append(expr)
            at = closing + 1
            for piece in pieces:
                if piece.start_pos != at:
                    raise SpecError("a computed module name is written without spaces, e.g. `fc{i + 1}_bn`",
                                    self._offset_pos(piece.start_pos), source=self.text)
                parts.append(str(piece))
                at = piece.end_pos
        if index is not None:
            raise SpecError("a computed module name cannot also be indexed", index.pos,
                            hint="put the index in the name, e.g. `fc{i}: ...`", source=self.text)
        return A.PathRef(self.text[name.start_pos:at], None, self._tpos(name), parts)

    def interp(self, meta, c):
        expr, *pieces = c
        return expr, pieces, meta.start_pos, meta.end_pos

    def _offset_pos(self, offset: int) -> Pos:
        line = self.text.count("\n", 0, offset) + 1
        return Pos(self.file, line, offset - (self.text.rfind("\n", 0, offset) + 1) + 1)

    def op_seq(self, meta, c):
        return list(c)

    def op(self, meta, c):
        name, args, repeat = c
        pos_args, kwargs = args if args else ([], [])
        return A.Op(str(name), pos_args, kwargs, repeat, self._tpos(name))

    def args(self, meta, c):
        pos_args, kwargs = [], []
        for kind, value in (x for x in c if x is not None):
            if kind == "pos":
                if kwargs:
                    raise SpecError("positional argument after keyword argument", value.pos, source=self.text)
                pos_args.append(value)
            else:
                name, expr = value
                if any(k == name for k, _ in kwargs):
                    raise SpecError(f"argument '{name}' given twice", expr.pos, source=self.text)
                kwargs.append(value)
        return pos_args, kwargs

    def posarg(self, meta, c):
        return ("pos", c[0])

    def kwarg(self, meta, c):
        return ("kw", (str(c[0]), c[1]))

    # -- expressions
    def ternary(self, meta, c):
        then, cond, otherwise = c
        return A.Ternary(self._pos(meta), cond, then, otherwise)

    def or_(self, meta, c):
        return A.BoolOp(self._pos(meta), "or", c[0], c[1])

    def and_(self, meta, c):
        return A.BoolOp(self._pos(meta), "and", c[0], c[1])

    def not_(self, meta, c):
        return A.Not(self._pos(meta), c[0])

    def compare(self, meta, c):
        return A.Compare(self._pos(meta), str(c[1]), c[0], c[2])

    def binop(self, meta, c):
        return A.BinOp(self._pos(meta), str(c[1]), c[0], c[2])

    def neg(self, meta, c):
        return A.Neg(self._pos(meta), c[0])

    def index(self, meta, c):
        return A.Index(self._pos(meta), c[0], c[1])

    def attr(self, meta, c):
        return A.Attr(self._pos(meta), c[0], str(c[1]))

    def funcall(self, meta, c):
        name, args = c
        pos_args, kwargs = args if args else ([], [])
        return A.FunCall(self._pos(meta), str(name), pos_args, kwargs)

    def int_lit(self, meta, c):
        digits = str(c[0]).lstrip("0") or "0"
        # Checked before int(): Python refuses to convert more than 4300 digits.
        if len(digits) > 19 or not int_in_range(int(digits)):
            raise SpecError(f"integer too large (limit: below 2**{INT_BITS})", self._pos(meta), source=self.text)
        return A.Lit(self._pos(meta), int(digits))

    def float_lit(self, meta, c):
        value = float(c[0])
        if not math.isfinite(value):
            raise SpecError(f"number too large: {_short(c[0])} is not a finite float", self._pos(meta),
                            source=self.text)
        return A.Lit(self._pos(meta), value)

    def str_lit(self, meta, c):
        return A.Lit(self._pos(meta), _unquote(c[0]))

    def true_lit(self, meta, c):
        return A.Lit(self._pos(meta), True)

    def false_lit(self, meta, c):
        return A.Lit(self._pos(meta), False)

    def none_lit(self, meta, c):
        return A.Lit(self._pos(meta), None)

    def input_ref(self, meta, c):
        return A.InputRef(self._pos(meta))

    def name(self, meta, c):
        return A.Name(self._pos(meta), str(c[0]))

    def list_lit(self, meta, c):
        return A.ListLit(self._pos(meta), [x for x in c if x is not None])

    def tuple_lit(self, meta, c):
        return A.TupleLit(self._pos(meta), [x for x in c if x is not None])


def _include_problem(name: str) -> tuple[str, str] | None:
    """Why `include "name"` cannot name a spec file, or None."""
    if not name.endswith(".cl") or name.endswith("/.cl"):
        return ("an include names a spec file, ending in .cl", 'e.g. `include "lib/blocks.cl"`')
    if not name.isprintable():
        return ("an include path cannot contain control characters", "rename the file")
    return None


def _snippet(text: str, limit: int = 50) -> str:
    """Spec text for a hint: whitespace (line breaks, indentation) collapsed, comments dropped, cut
    in the middle beyond `limit` characters."""
    text = " ".join(re.sub(r"#[^\n]*", " ", text).split())
    if len(text) > limit:
        half = (limit - 5) // 2
        text = f"{text[:half].rstrip()} ... {text[-half:].lstrip()}"
    return text


def _unquote(tok: Token) -> str:
    return str(tok)[1:-1]


def _short(text, limit: int = 40) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."
