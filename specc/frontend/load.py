"""Resolve a spec file and its includes into one `Program`: the named blocks and networks in scope,
the backbone to emit and its masking declaration."""
from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass, field
from pathlib import Path

from . import ast as A
from .errors import Pos, SpecError, display_path
from ..core.limits import FILES, INCLUDE_DEPTH, SPEC_BYTES
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
    # Files a spec includes by an absolute path: where they lie depends on the machine, so generated
    # code names them by their file name only.
    absolute_includes: frozenset = frozenset()


def load_program(path: str | Path, sources: dict[str, str] | None = None) -> Program:
    """Load `path` and everything it includes.

    `sources`, when given, maps paths to texts and is read instead of the disk (generated modules
    carry their spec this way, so they need no spec files at run time).
    """
    path = os.fspath(path)
    files: dict[str, A.SpecFile] = {}
    order: list[str] = []
    _read(path, None, files, order, sources, stack=[], seen={})
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
                   {p: files[p].source for p in order}, top.backbone.pos if top.backbone else None,
                   frozenset(_include_path(p, inc.path) for p in order for inc in files[p].includes
                             if posixpath.isabs(inc.path)))


def _define(table: dict, name: str, node, what: str, source: str) -> None:
    if name in table and table[name] is not node:
        prev = table[name].pos
        raise SpecError(f"{what} '{name}' is defined twice (first at {prev})", node.pos, source=source)
    table[name] = node


def read_spec(path: str, at: Pos | None, include: bool = False) -> str:
    """The text of the spec file at `path`. Raises a SpecError at `at` (the include naming it, or no
    position for a file named on the command line) when it cannot be read, and at the file itself
    when it is not a spec: larger than SPEC_BYTES, not UTF-8, or binary. A spec is read from a
    regular file (a top-level spec may also be a pipe, e.g. `<(...)`); devices are refused, so
    neither /dev/zero nor a tape is ever read, and the contents of what is not a spec are never
    printed."""
    shown = display_path(path)
    what = "included file" if include else "spec file"
    if "\0" in path:
        raise SpecError(f"the name of the {what} contains a NUL byte: {shown}", at)
    try:
        kind = os.stat(path).st_mode
    except FileNotFoundError:
        raise SpecError(f"no such spec file: {shown}", at) from None
    except (OSError, ValueError) as e:
        raise SpecError(f"cannot read {what} {shown}: {_reason(e)}", at) from None
    if stat.S_ISDIR(kind):
        raise SpecError(f"{what} {shown} is a folder, not a spec file", at)
    if not (stat.S_ISREG(kind) or (stat.S_ISFIFO(kind) and not include)):
        raise SpecError(f"{what} {shown} is not a regular file", at,
                        hint="specs are read from files; devices, sockets and (for includes) pipes are refused")
    try:
        with open(path, "rb") as f:
            data = f.read(SPEC_BYTES + 1)
    except (OSError, ValueError) as e:
        raise SpecError(f"cannot read {what} {shown}: {_reason(e)}", at) from None
    here = Pos(path, 1, 1)
    if len(data) > SPEC_BYTES:
        raise SpecError(f"{what} {shown} is larger than the limit of {SPEC_BYTES:,} bytes", here, excerpt=False)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{what} {shown} is not UTF-8 text (byte 0x{data[e.start]:02x})",
                        _byte_pos(path, data, e.start), excerpt=False) from None
    nul = data.find(b"\0")
    if nul >= 0:
        raise SpecError(f"{what} {shown} is not a spec: it contains a NUL byte", _byte_pos(path, data, nul),
                        excerpt=False)
    return text


def _reason(e: Exception) -> str:
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e)


def _byte_pos(path: str, data: bytes, offset: int) -> Pos:
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    return Pos(path, data.count(b"\n", 0, offset) + 1, column)


def _read(path: str, at, files, order, sources, stack, seen) -> None:
    """Read `path` and, depth first, what it includes. `stack` holds the identities of the files
    being read (a device and inode, or an embedded name), `seen` maps identities to the path they
    were first read under: two spellings of one file (`lib/b.cl`, `lib/../lib/b.cl`, a symbolic
    link) are one include."""
    if sources is not None:
        if path not in sources:
            raise SpecError(f"included file {display_path(path)} is not embedded", at)
        identity, text = path, sources[path]
    else:
        text = read_spec(path, at, include=at is not None)
        try:
            st = os.stat(path)
            identity = (st.st_dev, st.st_ino)
        except OSError:
            identity = path
    idents = [i for _, i in stack]
    if identity in idents:
        names = [p for p, _ in stack[idents.index(identity):]]
        chain = " -> ".join(display_path(p) for p in names + [path])
        raise SpecError(f"include cycle: {chain}", at)
    if identity in seen:
        return
    if len(stack) >= INCLUDE_DEPTH:
        raise SpecError(f"includes nested too deeply (limit {INCLUDE_DEPTH} files in one chain)", at)
    if len(seen) >= FILES:
        raise SpecError(f"too many spec files in one program (limit {FILES})", at)
    seen[identity] = path
    spec = parse_text(text, path, tokens_before=sum(f.tokens for f in files.values()))
    files[path] = spec
    stack.append((path, identity))
    for inc in spec.includes:
        _read(_include_path(path, inc.path), inc.pos, files, order, sources, stack, seen)
    stack.pop()
    order.append(path)


def _include_path(including: str, name: str) -> str:
    """Includes are relative to the including file; paths are kept in POSIX form, with `.` and `..`
    folded, so that embedded sources and error messages are the same on every machine."""
    base = posixpath.dirname(Path(including).as_posix())
    return posixpath.normpath(posixpath.join(base, name))
