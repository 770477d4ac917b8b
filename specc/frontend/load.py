"""Resolve a spec file and its includes into one `Program`: the named blocks and networks in scope,
the backbone to emit and its masking declaration."""
from __future__ import annotations

import dataclasses
import difflib
import os
import posixpath
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..core.limits import FILES, INCLUDE_DEPTH, SPEC_BYTES
from . import ast as A
from .errors import Pos, SpecError, display_path
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
    prepares: list[A.PrepareDecl] = field(default_factory=list)  # the spec's `prepare(...)`, in order


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
    # Backbones of included files name networks with arguments bound: `backbone ResNet18 =
    # ResNet(blocks=[2, 2, 2, 2], block=small)` in resnet18.cl makes `ResNet18` a network for
    # the files that include it.
    backbones: dict[str, tuple[A.BackboneDecl, A.SpecFile]] = {}
    for p in order:
        f = files[p]
        if f.backbone is not None and p != path:
            b = f.backbone
            if b.name in networks:
                raise SpecError(f"backbone '{b.name}' has the name of a network (at {networks[b.name].pos})",
                                b.pos, source=f.source)
            if b.name in backbones and backbones[b.name][0] is not b:
                raise SpecError(f"backbone '{b.name}' is defined twice (first at {backbones[b.name][0].pos})",
                                b.pos, source=f.source)
            backbones[b.name] = (b, f)
    if top.backbone is not None:
        decl = top.backbone
        network = _resolve(decl, top, networks, backbones, blocks, [])
        class_name, continual = decl.name, decl.continual
    elif top.networks:
        network = _fix_block_params(top.networks[-1], blocks, top.source)
        class_name, continual = network.name, False
    else:
        raise SpecError("this spec defines no network and no backbone to compile", Pos(path, 1, 1),
                        hint="add `network NAME(...) { ... }` or `backbone NAME = NETWORK`", source=top.source)
    return Program(path, class_name, network, continual, top.mask, blocks, networks,
                   {p: files[p].source for p in order}, top.backbone.pos if top.backbone else None,
                   frozenset(_include_path(p, inc.path) for p in order for inc in files[p].includes
                             if posixpath.isabs(inc.path)), list(top.prepares))


def _resolve(decl: A.BackboneDecl, file: A.SpecFile, networks: dict, backbones: dict, blocks: dict,
             seen: list) -> A.NetworkDef:
    """The network `decl` makes a class of: the network it names (or the one an included backbone
    makes), with the arguments `decl` binds fixed (a view of it)."""
    if decl.network in networks:
        base = networks[decl.network]
    elif decl.network in backbones:
        inner, inner_file = backbones[decl.network]
        if inner_file.mask is not None or inner.continual:
            what = "a masked" if inner_file.mask is not None else "a continual"
            raise SpecError(f"'{decl.network}' is {what} backbone (at {inner.pos}); a backbone is made from a "
                            "network, or from a backbone that only binds a network's arguments", decl.pos,
                            hint="name the network it is made from", source=file.source)
        if inner in seen:
            raise SpecError(f"backbone '{inner.name}' is made from itself", decl.pos, source=file.source)
        base = _resolve(inner, inner_file, networks, backbones, blocks, seen + [inner])
    else:
        known = ", ".join(sorted(list(networks) + list(backbones))) or "none"
        raise SpecError(f"backbone '{decl.name}' names unknown network '{decl.network}'", decl.pos,
                        hint=f"networks in scope: {known}", source=file.source)
    if decl.binding is None:
        return _fix_block_params(base, blocks, file.source)
    args, kwargs = decl.binding
    if args:
        raise SpecError("a backbone binds arguments by name", args[0].pos,
                        hint=f"e.g. `backbone {decl.name} = {decl.network}(name=value)`", source=file.source)
    params = {p.name: p for p in base.params}
    fixed = list(base.fixed)
    for name, expr in kwargs:
        if name == "output_dim":
            raise SpecError("output_dim cannot be bound: it is the size of the backbone's output, which "
                            "CLArena's classes take as a constructor argument", expr.pos, source=file.source)
        if name not in params:
            taken = next((p for p, _, _ in base.fixed if p.name == name), None)
            if taken is not None:
                raise SpecError(f"'{name}' of {decl.network} is already bound", expr.pos, source=file.source)
            close = difflib.get_close_matches(name, list(params), n=1)
            raise SpecError(f"{decl.network} has no parameter '{name}'", expr.pos,
                            hint=f"did you mean '{close[0]}'?" if close else
                            f"parameters: {', '.join(params) or 'none'}", source=file.source)
        fixed.append((params[name], expr, expr.pos))
    bound = {name for name, _ in kwargs}
    origin = base.origin or base
    view = dataclasses.replace(base, name=decl.name, params=[p for p in base.params if p.name not in bound],
                               fixed=fixed, origin=origin, bound_in=decl)
    view = _fix_block_params(view, blocks, file.source)
    decl_pre = view.pretrained
    if decl_pre is not None and decl_pre.param in bound:
        expr = dict(kwargs)[decl_pre.param]
        if not (isinstance(expr, A.Lit) and expr.value is None):
            raise SpecError(f"'{decl_pre.param}' names the pretrained weights (`pretrained {decl_pre.param}` at "
                            f"{decl_pre.pos}): bind it to none or leave it a constructor parameter", expr.pos,
                            source=file.source)
        view = dataclasses.replace(view, pretrained=None)  # bound to none: never loads
    return view


def _fix_block_params(net: A.NetworkDef, blocks: dict, source: str) -> A.NetworkDef:
    """`net` with its block-typed parameters fixed (to their defaults, unless bound): the classes of
    blocks are written out when the spec is compiled, so a block parameter is no constructor
    parameter."""
    loose = [p for p in net.params if p.type.name == "block"]
    if not loose:
        return net
    for p in loose:
        if p.default is None:
            raise SpecError(f"block parameter '{p.name}' needs a value: a default (`{p.name}: block = NAME`) or "
                            "a binding (`backbone B = NETWORK(name=NAME)`)", p.pos, source=source)
    fixed = list(net.fixed) + [(p, p.default, p.default.pos) for p in loose]
    return dataclasses.replace(net, params=[p for p in net.params if p.type.name != "block"], fixed=fixed,
                               origin=net.origin or net)


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
