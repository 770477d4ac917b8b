"""Spec positions in generated code: every statement of a generated module ends with a comment
`# <spec file>:<line>` naming the spec line it comes from. Runtime errors and traced graphs read
those comments to point at the spec."""
from __future__ import annotations

import linecache
import re
import sys

_COMMENT = re.compile(r"#\s*(?P<file>[^#\s][^#]*):(?P<line>\d+)\s*$")


def in_line(code: str) -> tuple[str, int, int] | None:
    """(spec file, spec line, where the comment starts) named by a generated code line, if any."""
    m = _COMMENT.search(code)
    if m is None:
        return None
    return m.group("file"), int(m.group("line")), m.start()


def of_frame(frame, lookback: int = 4) -> tuple[str, int] | None:
    """(spec file, spec line) of the generated statement `frame` is executing: the comment on its
    line, or on the closest line above it in the same function (a statement under an `if` that
    names the same spec line has its comment on the `if`)."""
    filename, line, first = frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_firstlineno
    for n in range(line, max(first, line - lookback) - 1, -1):
        found = in_line(linecache.getline(filename, n))
        if found is not None:
            return found[0], found[1]
    return None


def of_caller(depth: int = 2, lookback: int = 4) -> str | None:
    """`file:line` of the spec statement the generated code calling us comes from."""
    found = of_frame(sys._getframe(depth), lookback)
    return f"{found[0]}:{found[1]}" if found else None
