"""Spec text -> AST (specc.ast), with source positions and friendly syntax errors."""
from __future__ import annotations

import re
from pathlib import Path

import lark
from lark import Token

from ..core.limits import SPEC_BYTES, TOKENS
from . import ast as A
from .ast_builder import _Builder, _short
from .errors import Pos, SpecError
from .tables import parser as _parser

# Token names as Lark reports them -> what a user would call them.
_TOKEN_WORDS = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "STRING": "a string",
    "LPAR": "'('", "RPAR": "')'", "LBRACE": "'{'", "RBRACE": "'}'", "LSQB": "'['", "RSQB": "']'",
    "COMMA": "','", "COLON": "':'", "EQUAL": "'='", "__ANON_0": "'->'", "MINUS": "'-'",
    "COMP_OP": "a comparison", "ADD_OP": "'+' or '-'", "MUL_OP": "'*', '//' or '%'",
    "QMARK": "'?'", "DOT": "'.'", "STAR": "'*'", "$END": "the end of the file", "_GLPAR": "'('",
    "IF": "'if'",
}


def _describe(expected: set[str]) -> str:
    words = sorted({_TOKEN_WORDS.get(t, repr(t.strip('"').lower()) if t.startswith('"') else
                    _TOKEN_WORDS.get(t, t.lower())) for t in expected})
    if len(words) > 8:
        words = words[:8] + ["..."]
    return ", ".join(words)


# What the lexer makes a token of, roughly (comments count as one): counted with a regular
# expression, at C speed, before the parser (tens of microseconds a token) sees the text.
_TOKEN = re.compile(r'"[^"\n]*"|#[^\n]*|[A-Za-z0-9_.]+|->|==|!=|<=|>=|//|\S')


def count_tokens(text: str) -> int:
    return _TOKEN.subn("", text)[1]


def parse_text(text: str, path: str, tokens_before: int = 0) -> A.SpecFile:
    """Parse one spec file's text. Raises SpecError (positioned) on a syntax error, and when the
    text, with the `tokens_before` of the files read before it, is past the TOKENS limit."""
    if len(text) > SPEC_BYTES:
        raise SpecError(f"the spec is larger than the limit of {SPEC_BYTES:,} bytes", Pos(path, 1, 1),
                        excerpt=False)
    tokens = count_tokens(text)
    if tokens_before + tokens > TOKENS:
        whose = "this spec and the files read before it have" if tokens_before else "this spec has"
        raise SpecError(f"{whose} {tokens_before + tokens:,} tokens, more than the limit of {TOKENS:,}",
                        Pos(path, 1, 1), hint="a network of many layers is written with a loop", excerpt=False)
    try:
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedCharacters as e:
        if not _shown(path):
            raise _not_shown(path, e.line, e.column, "unexpected character") from None
        raise _bad_character(text, path, e) from None
    except lark.exceptions.UnexpectedToken as e:
        tok = e.token
        line = tok.line if tok.line is not None else text.count("\n") + 1
        col = tok.column if tok.column is not None else 1
        if not _shown(path) and tok.type != "$END":
            raise _not_shown(path, line, col, "unexpected text") from None
        what = "end of file" if tok.type == "$END" else _short(repr(str(tok)))
        raise SpecError(f"unexpected {what}; expected {_describe(set(e.expected))}",
                        Pos(path, line, col), hint=_hint_for(tok, e.expected), source=text) from None
    except lark.exceptions.UnexpectedEOF as e:
        # Lines end at "\n" only, as the parser counts them.
        last = text.rsplit("\n", 1)[-1]
        raise SpecError(f"unexpected end of file; expected {_describe(set(e.expected))}",
                        Pos(path, text.count("\n") + 1, len(last) + 1), source=text) from None
    spec = _Builder(path, text).transform(tree)
    spec.tokens = tokens
    return spec


def _shown(path: str) -> bool:
    """Whether a syntax error quotes the file: only spec files (named *.cl) are quoted, so that a
    file that is not a spec (/etc/passwd, /proc/self/environ) named by mistake is never printed."""
    return path.endswith(".cl")


def _not_shown(path: str, line: int, column: int, what: str) -> SpecError:
    return SpecError(f"{what}: this file does not parse as a spec", Pos(path, line, column),
                     hint="its name does not end in .cl, so its contents are not shown", excerpt=False)


def _bad_character(text: str, path: str, e) -> SpecError:
    at = e.pos_in_stream
    pos = Pos(path, e.line, e.column)
    if text[at] == '"':
        line_end = text.find("\n", at + 1)
        line_end = len(text) if line_end < 0 else line_end
        close = text.find('"', at + 1, line_end)
        if close < 0:
            return SpecError("unterminated string", pos, hint='a string ends with \'"\' on the line it starts on',
                             source=text)
        return SpecError("a string cannot contain a backslash", pos,
                         hint="strings have no escape sequences", source=text)
    return SpecError(f"unexpected character {text[at]!r}", pos,
                     hint="names are letters, digits and '_'; strings use double quotes", source=text)


def _hint_for(tok: Token, expected) -> str | None:
    if tok.type == "$END":
        return "is a '}' missing?"
    if str(tok) in {"in", "record", "add", "if", "else", "for", "branch", "true", "false", "none",
                    "and", "or", "not", "input", "block", "network", "include", "mask", "backbone"}:
        return f"'{tok}' is a keyword and cannot be used as a name"
    return None


def parse_file(path: str | Path) -> A.SpecFile:
    from .load import read_spec

    return parse_text(read_spec(str(path), None), str(path))
