"""Resolve a spec file and its includes into one `Program`: the named blocks and networks in scope,
the backbone to emit and its masking declaration."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import ast as A
from .errors import Pos, SpecError
from .parse import parse_text


@dataclass
class Program:
    path: str  # the spec file the user named
    class_name: str
    network: A.NetworkDef
    continual: bool
    mask: A.MaskDecl | None
    blocks: dict[str, A.BlockDef]
    networks: dict[str, A.NetworkDef]
    # Every file read, in the order first read: path -> text. Generated modules embed these.
    sources: dict[str, str] = field(default_factory=dict)
    backbone_pos: Pos | None = None  # where the class is named (`backbone NAME = ...`), if it is


def load_program(path: str | Path, sources: dict[str, str] | None = None) -> Program:
    """Load `path` and everything it includes.

    `sources`, when given, maps paths to texts and is read instead of the disk (generated modules
    carry their spec this way, so they need no spec files at run time).
    """
    path = str(path)
    files: dict[str, A.SpecFile] = {}
    order: list[str] = []
    _read(path, None, files, order, sources, stack=[])
    blocks: dict[str, A.BlockDef] = {}
    networks: dict[str, A.NetworkDef] = {}
    for p in order:  # included files first, so a file's own definitions come last
        f = files[p]
        for b in f.blocks:
            _define(blocks, b.name, b, "block", f.source)
        for n in f.networks:
            _define(networks, n.name, n, "network", f.source)
    top = files[path]
    if top.backbone is not None:
        decl = top.backbone
        if decl.network not in networks:
            known = ", ".join(sorted(networks)) or "none"
            raise SpecError(f"backbone '{decl.name}' names unknown network '{decl.network}'", decl.pos,
                            hint=f"networks in scope: {known}", source=top.source)
        network, class_name, continual = networks[decl.network], decl.name, decl.continual
    elif top.networks:
        network = top.networks[-1]
        class_name, continual = network.name, False
    else:
        raise SpecError("this spec defines no network and no backbone to compile", Pos(path, 1, 1),
                        hint="add `network NAME(...) { ... }` or `backbone NAME = NETWORK`", source=top.source)
    return Program(path, class_name, network, continual, top.mask, blocks, networks,
                   {p: files[p].source for p in order}, top.backbone.pos if top.backbone else None)


def _define(table: dict, name: str, node, what: str, source: str) -> None:
    if name in table and table[name] is not node:
        prev = table[name].pos
        raise SpecError(f"{what} '{name}' is defined twice (first at {prev})", node.pos, source=source)
    table[name] = node


def _read(path: str, at, files, order, sources, stack) -> None:
    if path in stack:
        chain = " -> ".join(stack + [path])
        raise SpecError(f"include cycle: {chain}", at)
    if path in files:
        return
    if sources is not None:
        if path not in sources:
            raise SpecError(f"included file {path} is not embedded", at)
        spec = parse_text(sources[path], path)
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SpecError(f"no such spec file: {path}", at) from None
        except (OSError, UnicodeDecodeError) as e:
            raise SpecError(f"cannot read spec file {path}: {e}", at) from None
        spec = parse_text(text, path)
    files[path] = spec
    for inc in spec.includes:
        target = _include_path(path, inc.path)
        _read(target, inc.pos, files, order, sources, stack + [path])
    order.append(path)


def _include_path(including: str, name: str) -> str:
    """Includes are relative to the including file; paths are kept in POSIX form so that embedded
    sources and error messages are the same on every machine."""
    base = Path(including).parent
    return (base / name).as_posix() if str(base) != "." else Path(name).as_posix()
