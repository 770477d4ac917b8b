"""Spec text -> AST (specc.ast), with source positions and friendly syntax errors."""
from __future__ import annotations

from pathlib import Path

import lark
from lark import Token, Transformer, v_args

from . import ast as A
from .errors import Pos, SpecError
from .tables import parser as _parser

# Token names as Lark reports them -> what a user would call them.
_TOKEN_WORDS = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "STRING": "a string",
    "LPAR": "'('", "RPAR": "')'", "LBRACE": "'{'", "RBRACE": "'}'", "LSQB": "'['", "RSQB": "']'",
    "COMMA": "','", "COLON": "':'", "EQUAL": "'='", "__ANON_0": "'->'", "MINUS": "'-'",
    "COMP_OP": "a comparison", "ADD_OP": "'+' or '-'", "MUL_OP": "'*', '//' or '%'",
    "QMARK": "'?'", "DOT": "'.'", "STAR": "'*'", "$END": "the end of the file",
}


def _describe(expected: set[str]) -> str:
    words = sorted({_TOKEN_WORDS.get(t, repr(t.strip('"').lower()) if t.startswith('"') else
                    _TOKEN_WORDS.get(t, t.lower())) for t in expected})
    if len(words) > 8:
        words = words[:8] + ["..."]
    return ", ".join(words)


def parse_text(text: str, path: str) -> A.SpecFile:
    """Parse one spec file's text. Raises SpecError (positioned) on a syntax error."""
    try:
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedCharacters as e:
        raise SpecError(f"unexpected character {text[e.pos_in_stream]!r}", Pos(path, e.line, e.column),
                        hint="names are letters, digits and '_'; strings use double quotes",
                        source=text) from None
    except lark.exceptions.UnexpectedToken as e:
        tok = e.token
        what = "end of file" if tok.type == "$END" else repr(str(tok))
        line = tok.line if tok.line is not None else text.count("\n") + 1
        col = tok.column if tok.column is not None else 1
        raise SpecError(f"unexpected {what}; expected {_describe(set(e.expected))}",
                        Pos(path, line, col), hint=_hint_for(tok, e.expected), source=text) from None
    except lark.exceptions.UnexpectedEOF as e:
        lines = text.splitlines() or [""]
        raise SpecError(f"unexpected end of file; expected {_describe(set(e.expected))}",
                        Pos(path, len(lines), len(lines[-1]) + 1), source=text) from None
    try:
        return _Builder(path, text).transform(tree)
    except lark.exceptions.VisitError as e:
        # Lark wraps what a transformer method raises; ours raise positioned SpecErrors.
        if isinstance(e.orig_exc, SpecError):
            raise e.orig_exc from None
        raise


def _hint_for(tok: Token, expected) -> str | None:
    if tok.type == "$END":
        return "is a '}' missing?"
    if str(tok) in {"in", "record", "add", "if", "else", "for", "branch", "true", "false", "none",
                    "and", "or", "not", "input", "block", "network", "include", "mask", "backbone"}:
        return f"'{tok}' is a keyword and cannot be used as a name"
    return None


def parse_file(path: str | Path) -> A.SpecFile:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"no such spec file: {p}", None) from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"cannot read spec file {p}: {e}", None) from None
    return parse_text(text, str(path))


@v_args(meta=True)
class _Builder(Transformer):
    """Lark tree -> AST dataclasses. One method per `-> alias` in the grammar."""

    def __init__(self, path: str, text: str):
        super().__init__()
        self.file = path
        self.text = text

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
        return spec

    def include(self, meta, c):
        return A.Include(_unquote(c[0]), self._pos(meta))

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
        name, continual, net = c
        return A.BackboneDecl(str(name), continual is not None, str(net), self._pos(meta))

    def mask(self, meta, c):
        name, args = c
        pos_args, kwargs = args if args else ([], [])
        return A.MaskDecl(str(name), pos_args, kwargs, self._pos(meta))

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
        return A.Chain(list(c), self._pos(meta))

    def branch(self, meta, c):
        name, *elements = c
        return A.Branch(str(name), elements, self._tpos(name))

    def for_loop(self, meta, c):
        first, second, iterable, *body = c
        if second is None:
            return A.ForLoop(None, str(first), iterable, body, self._pos(meta))
        return A.ForLoop(str(first), str(second), iterable, body, self._pos(meta))

    def layer(self, meta, c):
        path, ops, cond = c
        return A.Layer(path, ops, cond, self._pos(meta))

    def record(self, meta, c):
        return A.Record(self._pos(meta))

    def add(self, meta, c):
        return A.Add(str(c[0]), self._pos(meta))

    def path(self, meta, c):
        name, index = c
        return A.PathRef(str(name), index, self._tpos(name))

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
        return A.Lit(self._pos(meta), int(c[0]))

    def float_lit(self, meta, c):
        return A.Lit(self._pos(meta), float(c[0]))

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


def _unquote(tok: Token) -> str:
    return str(tok)[1:-1]
