"""The parser, loaded from LALR tables shipped with the package as JSON.

Lark can cache its tables, but its cache is a pickle in the shared temp folder under a predictable
name: whoever creates that file first runs code as the next user. The tables here are plain data
(JSON, no pickle anywhere), written next to the grammar by `python -m specc.frontend.tables` and
keyed by the grammar's SHA-256 and lark's version; when either differs (an edited grammar, another
lark) the parser is built from the grammar instead, which is correct, only slower (a test keeps the
shipped tables fresh).
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import lark
from lark import Lark

HERE = Path(__file__).resolve().parent
GRAMMAR = HERE / "specc.lark"
TABLES = HERE / "specc.lark.json"
_OPTIONS = {"parser": "lalr", "propagate_positions": True, "maybe_placeholders": True}


class _Parentheses:
    """The lexer's post-processing: a "(" is a call's (of an operation, function, block, network
    or `add`) only when it directly follows a name or `add` on the same line; any other "(" opens
    a group `(a -> b) if c` or a parenthesized expression, and becomes _GLPAR. Without this a
    statement starting with a group after one ending in a name (`flatten`, `if batch_norm`) would
    read as that name's call: the grammar alone cannot tell them apart (newlines are not tokens)."""

    always_accept = ("LPAR",)  # the contextual lexer must make "(" wherever _GLPAR may come

    def process(self, stream):
        prev = None
        for tok in stream:
            if tok.type == "LPAR" and not (prev is not None and prev.type in _CALLERS and prev.end_line == tok.line):
                tok = lark.Token.new_borrow_pos("_GLPAR", tok.value, tok)
            prev = tok
            yield tok


_CALLERS = ("NAME", "ADD", "PREPARE")


def grammar_text() -> str:
    return GRAMMAR.read_text(encoding="utf-8")


def build_parser(grammar: str | None = None) -> Lark:
    """The parser built from the grammar (about 0.1 s)."""
    return Lark(grammar if grammar is not None else grammar_text(), postlex=_Parentheses(), **_OPTIONS)


def _key(grammar: str) -> dict:
    return {"grammar_sha256": hashlib.sha256(grammar.encode("utf-8")).hexdigest(), "lark": lark.__version__}


# Lark's serialized form has dicts with int keys and tuples, which JSON cannot hold as such:
# both are tagged so that decoding gives back exactly what was encoded.
def _encode(v):
    if isinstance(v, dict):
        return {"d": [[_encode(k), _encode(x)] for k, x in v.items()]}
    if isinstance(v, tuple):
        return {"t": [_encode(x) for x in v]}
    if isinstance(v, list):
        return [_encode(x) for x in v]
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    raise TypeError(f"cannot store {type(v).__name__} in the parser tables")


def _decode(v):
    if isinstance(v, dict):
        if "d" in v:
            return {_decode(k): _decode(x) for k, x in v["d"]}
        return tuple(_decode(x) for x in v["t"])
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def tables_json(parser: Lark, grammar: str) -> str:
    """The tables of `parser`, built from `grammar` (its post-lexer is not data: `parser()` passes
    it again when loading)."""
    postlex = parser.options.postlex
    parser.options.postlex = None
    try:  # (the serialized options are the parser's own dict: encoded before it is restored)
        data, memo = parser.memo_serialize([lark.lexer.TerminalDef, lark.grammar.Rule])
        return json.dumps({**_key(grammar), "tables": _encode({"data": data, "memo": memo})},
                          separators=(",", ":")) + "\n"
    finally:
        parser.options.postlex = postlex


def _stored_tables(grammar: str):
    """The shipped tables, if they were made from `grammar` by this lark; else None."""
    try:
        stored = json.loads(TABLES.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(stored, dict) and all(stored.get(k) == v for k, v in _key(grammar).items()):
        return stored["tables"]
    return None


@lru_cache(maxsize=1)
def parser() -> Lark:
    """The spec parser: from the shipped tables when they match the grammar, else built."""
    grammar = grammar_text()
    tables = _stored_tables(grammar)
    if tables is None:
        return build_parser(grammar)
    return Lark.__new__(Lark)._load(_decode(tables), postlex=_Parentheses())


def tables_are_fresh() -> bool:
    return _stored_tables(grammar_text()) is not None


if __name__ == "__main__":
    text = grammar_text()
    TABLES.write_text(tables_json(build_parser(text), text), encoding="utf-8")
    print(TABLES)
