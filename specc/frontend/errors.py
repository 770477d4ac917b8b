"""The one error family of specc.

Every user-facing problem with a spec is a `SpecError` carrying a source position, so the CLI can
print `file:line:col`, the offending line with a caret, what was expected and a hint, and exit 1
without a traceback.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pos:
    """A position in a spec file (1-based line and column)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class SpecError(Exception):
    """A problem in a spec, reported at a source position."""

    def __init__(self, message: str, pos: Pos | None, hint: str | None = None, source: str | None = None):
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.hint = hint
        # The text of the file, when the raiser has it; `render` reads the file otherwise.
        self.source = source

    def source_line(self) -> str | None:
        if self.pos is None:
            return None
        text = self.source
        if text is None:
            try:
                text = Path(self.pos.file).read_text(encoding="utf-8")
            except OSError:
                return None
        lines = text.splitlines()
        if 1 <= self.pos.line <= len(lines):
            return lines[self.pos.line - 1]
        return None

    def render(self) -> str:
        where = f"{self.pos}: " if self.pos else ""
        out = [f"{where}error: {self.message}"]
        line = self.source_line()
        if line is not None:
            out.append(f"    {line}")
            # Tabs are kept so the caret lines up under the same characters.
            indent = "".join(c if c == "\t" else " " for c in line[: self.pos.column - 1])
            out.append(f"    {indent}^")
        if self.hint:
            out.append(f"hint: {self.hint}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.render()


class UsageError(Exception):
    """A problem with how the CLI or `specc.build` was called (exit status 2)."""
