"""Emitters: a Program -> Python source. `emit` writes the generated module of a spec (generic,
readable PyTorch; specc/emit/source.py and the modules it assembles from); every piece of spec text that reaches it goes through
specc/emit/escape.py."""
from __future__ import annotations

from ..frontend.load import Program
from .source import emit_source


def emit(program: Program, overrides: dict | None = None, base: str = "specc", prepare: bool = True) -> str:
    """The source of the module defining `program`'s class, deriving from specc's base classes
    (`base="specc"`) or from CLArena's (`base="clarena"`). `prepare`: with the masking pass's output
    for the spec's `prepare(...)` structures (specc/emit/prepared.py; imports torch if there are any)."""
    source = emit_source(program, overrides, base)
    if not prepare or not program.prepares:
        return source
    from .prepared import section

    return source + section(program, source, overrides, base)
