"""The one error family of specc.

Every user-facing problem with a spec is a `SpecError` carrying a source position, so the CLI can
print `file:line:col`, the offending line with a caret, what was expected and a hint, and exit 1
without a traceback.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from ..core.limits import EXCERPT_CHARS, MESSAGE_CHARS, SPEC_BYTES


def printable(text: str) -> str:
    """`text` with every character that is not printable (control characters, line and paragraph
    separators, lone surrogates from undecodable file names, ...) written as an escape, so that a
    message is one line and cannot drive a terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def clip(text: str, limit: int = MESSAGE_CHARS) -> str:
    """`text`, cut in the middle when longer than `limit` characters."""
    if len(text) <= limit:
        return text
    half = (limit - 5) // 2
    return f"{text[:half]} ... {text[-half:]}"


def display_path(path) -> str:
    """A file name as messages show it: printable, and bounded."""
    return clip(printable(os.fspath(path)))


@dataclass(frozen=True)
class Pos:
    """A position in a spec file (1-based line and column)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{display_path(self.file)}:{self.line}:{self.column}"


class SpecError(Exception):
    """A problem in a spec, reported at a source position."""

    def __init__(self, message: str, pos: Pos | None, hint: str | None = None, source: str | None = None,
                 excerpt: bool = True):
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.hint = hint
        # The text of the file, when the raiser has it; `render` reads the file otherwise.
        self.source = source
        # False for a file that is not a spec (binary, too large): its contents are never printed.
        self.excerpt = excerpt

    def source_line(self) -> str | None:
        """The line the error is on, as the parser counts lines (only "\\n" ends one: form feeds,
        vertical tabs and Unicode line separators are characters of the line)."""
        if self.pos is None or not self.excerpt:
            return None
        text = self.source if self.source is not None else _read_bounded(self.pos.file)
        if text is None or self.pos.line < 1:
            return None
        start = 0
        for _ in range(self.pos.line - 1):
            start = text.find("\n", start) + 1
            if start == 0:
                return None
        end = text.find("\n", start)
        line = text[start:] if end < 0 else text[start:end]
        return line[:-1] if line.endswith("\r") else line

    def render(self) -> str:
        where = f"{self.pos}: " if self.pos else ""
        out = [f"{where}error: {clip(printable(self.message))}"]
        line = self.source_line()
        if line is not None:
            shown, caret = excerpt(line, self.pos.column)
            out.append(f"    {shown}")
            out.append(f"    {caret}^")
        if self.hint:
            out.append(f"hint: {clip(printable(self.hint))}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.render()


def excerpt(line: str, column: int) -> tuple[str, str]:
    """(the line as shown, the indentation of a caret under `column`): at most EXCERPT_CHARS
    characters around the column, "..." where cut; characters that are not printable are shown as
    '?' so that the caret stays under its column; tabs are kept (the caret's indentation keeps them
    too)."""
    col = max(column - 1, 0)
    start, end, head, tail = 0, len(line), "", ""
    if len(line) > EXCERPT_CHARS:
        start = max(0, min(col - EXCERPT_CHARS // 2, len(line) - EXCERPT_CHARS))
        end = start + EXCERPT_CHARS
        head = "..." if start > 0 else ""
        tail = "..." if end < len(line) else ""
    part = "".join(c if c == "\t" or c.isprintable() else "?" for c in line[start:end])
    indent = "".join(c if c == "\t" else " " for c in head + part[: col - start])
    return head + part + tail, indent


def _read_bounded(path: str) -> str | None:
    """The text of a regular file of at most SPEC_BYTES, else None (messages never read devices,
    pipes or huge files)."""
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            data = f.read(SPEC_BYTES + 1)
    except (OSError, ValueError):
        return None
    if len(data) > SPEC_BYTES:
        return None
    return data.decode("utf-8", errors="replace")


class UsageError(Exception):
    """A problem with how the CLI or `specc.build` was called (exit status 2)."""
