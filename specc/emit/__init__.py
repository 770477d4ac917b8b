"""Emission: a Program -> the Python source of its class, through Jinja2 templates.

All decisions are made here; the template only lays out prepared, validated text: identifiers
checked by specc.classdef, literals printed by `repr` of plain values. The output is
deterministic (no time, no absolute paths), so recompiling anywhere gives identical bytes."""
from __future__ import annotations

from functools import lru_cache
from pathlib import PurePosixPath

import jinja2

from .. import __version__
from . import escape
from ..frontend.facts import analyse
from ..frontend.classdef import NO_DEFAULT, class_def
from ..frontend.elaborate import elaborate
from ..frontend.load import Program, load_program


_KIND = {"CompiledBackbone": "Backbone", "CompiledCLBackbone": "Continual-learning backbone",
         "CompiledHATBackbone": "HAT-masked continual-learning backbone",
         "CompiledWSNBackbone": "WSN-masked continual-learning backbone",
         "CompiledAmnesiacHATBackbone": "AmnesiacHAT continual-learning backbone"}


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("specc.emit", "templates"),
                              autoescape=False, keep_trailing_newline=True,
                              undefined=jinja2.StrictUndefined)


def emit(program: Program, overrides: dict | None = None) -> str:
    """The source of the module defining `program`'s class."""
    cdef = class_def(program, overrides)
    spec_name = PurePosixPath(program.path).name
    # Re-key the embedded files relative to the compiled spec's folder, so the output does not
    # depend on where the compiler ran.
    root = PurePosixPath(program.path).parent
    embedded = {_relative(p, root): text for p, text in program.sources.items()}
    load_program(spec_name, sources=embedded)  # the embedded copy must load as the file did
    summary = _summary(program, cdef, overrides)
    decls = [f"{d.name}: {d.annotation}" + ("" if d.default is NO_DEFAULT else f" = {d.default_src}")
             for d in cdef.params]
    text = _env().get_template("backbone.py.jinja").render(
        version=__version__,
        docstring=escape.docstring(f"{cdef.name}, compiled by specc from {escape.display_path(spec_name)}.\n\n{summary}\n"),
        base=cdef.base,
        sources=[(escape.string(p), [escape.string(line) for line in text.splitlines(keepends=True)] or ["''"])
                 for p, text in embedded.items()],
        top=escape.string(spec_name),
        class_name=escape.identifier(cdef.name),
        class_doc=escape.docstring(f"{_KIND[cdef.base]} {cdef.name} (network {program.network.name})."),
        param_decls=decls,
        param_names=[d.name for d in cdef.params],
        base_args=", ".join(f"{k}={v}" for k, v in cdef.base_args),
    )
    compile(text, f"<generated {spec_name}>", "exec")  # a generated module that does not parse is our bug
    return text


def _relative(path: str, root: PurePosixPath) -> str:
    p = PurePosixPath(path)
    try:
        return p.relative_to(root).as_posix() if str(root) != "." else p.as_posix()
    except ValueError:
        return p.name


def _summary(program: Program, cdef, overrides) -> str:
    """The weighted layers with the default arguments, when every parameter has one."""
    if any(d.default is NO_DEFAULT for d in cdef.params):
        missing = ", ".join(d.name for d in cdef.params if d.default is NO_DEFAULT)
        return (f"Its layers depend on constructor arguments without defaults ({missing});\n"
                f"`specc show {escape.display_path(PurePosixPath(program.path).name)} -D name=value` lists them for given values.")
    net = analyse(elaborate(program, {}, overrides))
    lines = [f"Weighted layers with the default arguments ({len(net.weighted_layer_names)}):"]
    lines += [f"    {name}" for name in net.weighted_layer_names]
    return "\n".join(lines)
