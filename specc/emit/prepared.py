"""The section a spec's `prepare(...)` adds to its generated module: for each prepared structure,
what specc.runtime's masking pass makes of it (the masked forward, as source, and the analysis
facts), computed at compile time by building the class on the meta device (no weights drawn). On
import the module registers them (specc.runtime.structure.prepare), so a construction with that
structure skips the trace, the analysis and the rewrite; any other construction does them, and so
does a runtime of another version.

Imports torch (emit imports this module only when a spec prepares something). What is written is
checked here: the forward is fx's code for a graph of the spec's validated module names and must
be a single function definition; keys and facts are written by `_source` (literals, torch.nn classes and the module's
own classes, nothing else); the finished module is loaded and the prepared structure built once
more, which must find its entry.
"""
from __future__ import annotations

import ast
import importlib
from pathlib import PurePosixPath

import torch
from torch import nn

from .. import __version__
from ..analysis import Facts, Segment
from ..core.values import Activation
from ..frontend.classdef import literal, python_value
from ..frontend.errors import SpecError
from ..frontend.load import Program
from ..frontend.prepare import arguments
from ..runtime import structure
from ..runtime.codegen import free_globals
from ..runtime.loader import load_source
from . import escape


def section(program: Program, source: str, overrides: dict | None, base: str) -> str:
    """The text to append to `source` (the generated module) for the spec's `prepare(...)`s; ""
    without any, and with `base="clarena"` (CLArena's classes cannot be built without CLArena)."""
    configs = arguments(program)
    if not configs or base != "specc":
        return ""
    module = load_source(source)
    cls = getattr(module, program.class_name)
    spec = escape.display_path(PurePosixPath(program.path).name)
    entries, imports, seen = [], {}, {}
    for args, decl in configs:
        src = program.sources.get(decl.pos.file)
        try:
            net = _build(cls, args)
        except (TypeError, ValueError) as e:
            raise SpecError(f"{program.class_name}({_arguments_text(args)}) cannot be built: {e}", decl.pos,
                            source=src) from None
        key = net._specc_key
        if key is None:
            raise SpecError("these arguments cannot key a structure", decl.pos, source=src)
        if key in seen:
            raise SpecError(f"this prepares the same structure as the prepare at line {seen[key]}", decl.pos,
                            source=src)
        seen[key] = decl.pos.line
        entries.append(_entry(module, net, key, f"{spec}:{decl.pos.line}", args, imports))
    lines = ["", "", "# Prepared by `specc compile` for the spec's `prepare(...)`: what specc.runtime "
                     f"{__version__}'s masking pass",
             "# makes of each structure below (the masked forward and the analysis facts). Building one of",
             "# these structures uses them instead of tracing the plain forward; another runtime version traces.",
             "# The key is what structure.key reads from a built network (its class, plain class, the plain",
             "# constructor's arguments, the masking options); mask_points and layer_nodes number the traced",
             "# forward's operations in order.",
             "from specc.analysis import Facts, Segment",
             "from specc.runtime import structure"]
    lines += [f"from {module_name} import {name} as {alias}" for alias, (module_name, name) in sorted(imports.items())]
    text = "\n".join(lines) + "\n" + "".join(entries)
    _check_applies(source + text, program, configs)
    return text


def _build(cls: type, args: dict):
    """`cls` built for checked spec `args`, on the meta device: the structure without weights."""
    with torch.device("meta"):
        return cls(**{k: python_value(v) for k, v in args.items()})


def _arguments_text(args: dict) -> str:
    """The arguments as source (pure ASCII: activations by their torch.nn name, the rest escaped)."""
    return ", ".join(f"{escape.identifier(k)}={literal(v) if isinstance(v, Activation) else escape.literal(v)}"
                     for k, v in args.items())


def _entry(module, net, key, where: str, args: dict, imports: dict) -> str:
    forward = _forward_source(net, imports)
    facts = net._specc_facts
    found = "".join(f"    {name}={_source(getattr(facts, name), module, 4)},\n" for name in Facts.FOUND)
    return (f"\n\n# {escape.identifier(type(net).__name__)}({_arguments_text(args)}), prepared at {where}\n"
            f"{forward}\n\n"
            f"structure.prepare(\n"
            f"    {escape.string(__version__)},\n"
            f"    {_source(key, module, 4)},\n"
            f"    Facts.of(\n{_indent(found)}    ),\n"
            f"    forward,\n"
            f")\n"
            f"del forward\n")


def _indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.splitlines())


def _forward_source(net, imports: dict) -> str:
    """The masked forward's source, checked to be one `def forward`, with the imports of the names
    it reads from its globals."""
    src = net._specc_forward_source
    tree = ast.parse(src)
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef) or tree.body[0].name != "forward":
        raise AssertionError("a masked forward is one function named forward")
    for name, value in free_globals(net).items():
        if name == "torch" and value is torch:
            continue  # the generated module imports torch
        owner, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", "")
        if owner and owner.startswith("specc.runtime.") and qualname.isidentifier() \
                and getattr(importlib.import_module(owner), qualname, None) is value:
            imports[escape.identifier(name)] = (owner, qualname)
            continue
        raise AssertionError(f"a masked forward reads {name!r}, which a generated module cannot import")
    return src.rstrip("\n")


def _source(value, module, indent: int) -> str:
    """Python source for a key or facts value: literals, Segments, the module's classes, torch.nn
    classes and structure.MISSING (a value with no such form is our bug, not the spec's)."""
    if value is structure.MISSING:
        return "structure.MISSING"
    if isinstance(value, type):
        name = escape.identifier(value.__name__)
        if getattr(module, name, None) is value:
            return name
        if getattr(nn, name, None) is value:
            return f"nn.{name}"
        raise AssertionError(f"no source form for the class {value!r}")
    if isinstance(value, Segment):
        return f"Segment({', '.join(_source(v, module, indent) for v in value)})"
    if isinstance(value, dict):
        if not value:
            return "{}"
        pad = " " * (indent + 4)
        items = "".join(f"{pad}{escape.string(k)}: {_source(v, module, indent + 4)},\n" for k, v in value.items())
        return "{\n" + items + " " * indent + "}"
    if isinstance(value, (list, tuple)):
        items = [_source(v, module, indent + 4) for v in value]
        close = "," if len(value) == 1 and isinstance(value, tuple) else ""
        left, right = ("[", "]") if isinstance(value, list) else ("(", ")")
        one_line = f"{left}{', '.join(items)}{close}{right}"
        if indent + len(one_line) <= _WIDTH:
            return one_line
        pad = " " * (indent + 4)
        return left + "\n" + "".join(f"{pad}{item},\n" for item in items) + " " * indent + right
    return escape.literal(value)


_WIDTH = 100  # a list or tuple longer than this is written one element per line


def _check_applies(text: str, program: Program, configs) -> None:
    """The finished module, loaded, must build each prepared structure from its entry (a key
    written wrong would silently trace instead)."""
    module = load_source(text)
    final = getattr(module, program.class_name)
    for args, _ in configs:
        if _build(final, args)._specc_forward.__code__.co_filename != module.__file__:
            raise AssertionError(f"the structure prepared for {_arguments_text(args)} is not found on import")
