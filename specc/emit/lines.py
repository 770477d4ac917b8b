"""The generated source's layout: a line buffer with indentation and spec-position comments, and
the formatter that wraps long calls and class docstrings at the code's width."""
from __future__ import annotations

import textwrap

from . import escape


class Lines:
    """Lines of one method body; `where` comments name the spec line each comes from."""

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
        self.lines.extend(wrap(pad, text))

    guard_where: dict

    def indent(self):
        lines = self

        class _Block:
            def __enter__(self):
                lines.depth += 1

            def __exit__(self, *exc):
                lines.depth -= 1

        return _Block()



WIDTH = 110


def doc_lines(text: str, pad: str = "    ") -> list[str]:
    """A class docstring, its text wrapped at the code's width."""
    paragraphs = [textwrap.fill(p, WIDTH - len(pad) - 6) for p in text.split("\n\n")]
    lines = escape.docstring("\n\n".join(paragraphs)).split("\n")
    return [pad + lines[0]] + [(pad + line) if line else "" for line in lines[1:]]


def wrap(pad: str, text: str) -> list[str]:
    """A long call or signature, one argument per line (as a formatter would write it)."""
    line = pad + text
    code, sep, comment = text.partition("  # ")
    if len(pad + code) <= WIDTH:
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


def _outside_quotes(text: str, start: int = 0):
    """(index, character, bracket depth after it) of each character of `text` from `start` that is
    not inside a string literal: one scanner for matching brackets and splitting arguments."""
    depth, quote = 0, None
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            if c == quote and text[i - 1] != "\\":
                quote = None
            continue
        if c in "\"'":
            quote = c
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        yield i, c, depth


def _matching(code: str, open_at: int) -> int | None:
    return next((i for i, c, depth in _outside_quotes(code, open_at) if c in ")]}" and depth == 0), None)


def _split_args(text: str) -> list[str]:
    out, start = [], 0
    for i, c, depth in _outside_quotes(text):
        if c == "," and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
    if text[start:].strip():
        out.append(text[start:].strip())
    return out

