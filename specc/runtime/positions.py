"""Spec positions in generated code: every statement of a generated module ends with a comment
`# <spec file>:<line>` naming the spec line it comes from. Runtime errors and traced graphs read
those comments to point at the spec."""
from __future__ import annotations

import linecache
import re
import sys
from types import FrameType

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


def nearest(frames: int = 16) -> str | None:
    """`file:line` of the innermost generated statement on the current stack (within `frames`
    frames): where a module that raises in its forward was called from (nn.Module.__call__ and
    containers stand between them)."""
    frame: FrameType | None = sys._getframe(1)
    for _ in range(frames):
        if frame is None:
            return None
        found = in_line(linecache.getline(frame.f_code.co_filename, frame.f_lineno))
        if found is not None:
            return f"{found[0]}:{found[1]}"
        frame = frame.f_back
    return None


def of_traceback(tb, lookback: int = 4) -> tuple[str, int] | None:
    """(spec file, spec line) of the innermost generated statement in traceback `tb`, if any."""
    found = None
    while tb is not None:
        code = tb.tb_frame.f_code
        for n in range(tb.tb_lineno, max(code.co_firstlineno, tb.tb_lineno - lookback) - 1, -1):
            at = in_line(linecache.getline(code.co_filename, n))
            if at is not None:
                found = at[0], at[1]
                break
        tb = tb.tb_next
    return found


def _of_node(e: Exception) -> tuple[str, int] | None:
    """The spec position of the traced node an analysis error names (AnalysisError.node.where, an fx
    node whose meta holds the spec line of the generated statement that made it), if any."""
    fx_node = getattr(getattr(e, "node", None), "where", None)
    meta = getattr(fx_node, "meta", None)
    return meta.get("spec_position") if isinstance(meta, dict) else None


def positioned(init):
    """`init` (a generated constructor), whose errors name the spec line the failing generated
    statement comes from, in a note (torch's own errors, e.g. `groups must be a positive integer`,
    do not say which layer): the spec line of a generated constructor is in every error it raises."""
    import functools

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        try:
            init(self, *args, **kwargs)
        except Exception as e:
            if not getattr(e, "_specc_positioned", False):
                e._specc_positioned = True  # type: ignore[attr-defined]  # once, by the innermost constructor
                at = _of_node(e) or of_traceback(e.__traceback__)
                if at is not None and f"{at[0]}:{at[1]}" not in str(e):
                    e.add_note(f"(at {at[0]}:{at[1]}: the spec line of the generated statement that failed)")
            raise

    return __init__
