"""`specc.build`: a spec's class made in memory, from exactly the source `specc compile` writes
(emitted, then executed by specc.runtime.loader), so the runtime and generated forms cannot
disagree."""
from __future__ import annotations

from pathlib import Path

from .emit import emit
from .frontend.load import Program, load_program


def runtime_class(program: Program, overrides: dict | None = None, base: str = "specc") -> type:
    from .runtime.loader import load_source

    # Without the `prepare(...)` section: it only carries what the runtime makes anyway.
    return getattr(load_source(emit(program, overrides, base, prepare=False)), program.class_name)


def build(spec_path: str | Path, /, **constructor_args):
    """Compile the spec at `spec_path` in memory and construct its class with `constructor_args`."""
    return runtime_class(load_program(spec_path))(**constructor_args)
