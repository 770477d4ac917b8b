"""Pictures of an analysed network (the `specc graph` command): Graphviz DOT text, and rendering it.

`to_dot` draws the elaborated data-flow graph: one node per IR node (module name, kind, output
shape), weighted layers filled, blocks and stages (`Block` and `Sequential` modules) as clusters
named by module path, residual adds with their shortcut edges. With a masking scheme:
- HAT: each mask point (from the analysis) is followed by a small node `× mask[LAYER]`; the
  tensor flows through it. A residual add ties its operands' units to one mask: the add lists the
  layers whose units it ties, and a shortcut projection (whose units are new) is marked as tied
  to the mask of the block's layer, with a dashed `tied` line from that mask.
- AmnesiacHAT: each weighted layer and shortcut projection notes how stage `train_with_backup`
  routes backup path b through it (`m_b·backup + (1 − m_b)·main`).
- WSN: masks act on weights, not units: each weighted layer says "weights masked (WSN)".

The DOT text depends only on the IR (node ids, module paths, topological order), so the same spec
and arguments give the same text. Building it needs neither torch nor Graphviz; `render` runs
Graphviz's `dot` program for .svg and .png.
"""
from __future__ import annotations

import difflib
import html
import shutil
import subprocess
from pathlib import Path

from .core.layers import PROJECTIONS, label
from .frontend.errors import UsageError
from .frontend.ir import ModuleDecl, Network, Node
from .schemes import SCHEMES

# Output suffix -> Graphviz output format (None: the DOT text itself).
FORMATS = {".dot": None, ".svg": "svg", ".png": "png"}
GRAPHVIZ_PACKAGE = "graphviz"

_CLUSTERS = ("Block", "Sequential")
_WEIGHTED_FILL = "#cfe2f3"
_WEIGHTED_PEN = "#3d6fa8"
_MASK_FILL = "#ffd966"
_TIED_FILL = "#fff2cc"
_TIE_COLOUR = "#b8860b"
_SHORTCUT_COLOUR = "#6a8fc8"
_MUTED = "#777777"
_BACKUP_COLOUR = "#7a3e9d"


class RenderError(Exception):
    """Graphviz's `dot` is missing or failed: the CLI exits 1 and writes nothing."""


def output_format(out: str) -> str | None:
    """The Graphviz format for output file `out` (None for .dot); a UsageError for other suffixes."""
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"cannot tell the picture format of {out!r}: the name must end in "
                         f"{', '.join(FORMATS)}")
    return FORMATS[suffix]


def focus_path(net: Network, text: str) -> tuple[str, ...]:
    """The module path that `--focus TEXT` names ('conv3x/0'); a UsageError if there is none."""
    path = tuple(p for p in text.strip().strip("/").split("/") if p)
    names = [m.name for m in net.modules]
    if path and any(m.path == path for m in net.modules):
        return path
    close = difflib.get_close_matches(text, names, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else \
        "modules: " + ", ".join(m.name for m in net.modules if len(m.path) == 1)
    raise UsageError(f"--focus: {net.class_name} has no module {text!r}; {hint}")


def to_dot(net: Network, focus: tuple[str, ...] | None = None) -> str:
    """The DOT text of analysed network `net`, or of the nodes under module path `focus` and the
    nodes that feed them or read from them."""
    return _Drawing(net, focus).dot()


def render(dot_text: str, fmt: str) -> bytes:
    """Run Graphviz's `dot -T<fmt>` on `dot_text`. RenderError if it is not installed or fails."""
    exe = shutil.which("dot")
    if exe is None:
        raise RenderError(f"writing .{fmt} needs Graphviz's `dot` program, which is not installed "
                          f"(Debian/Ubuntu: apt-get install {GRAPHVIZ_PACKAGE}); .dot output needs nothing")
    proc = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode("utf-8"), capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        msg = proc.stderr.decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"
        raise RenderError(f"Graphviz's dot failed: {msg}")
    return proc.stdout


def _esc(text: str) -> str:
    return html.escape(str(text), quote=False)


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _kind(decl: ModuleDecl) -> str:
    return label(decl.cls, decl.kwargs) if isinstance(decl.cls, str) else decl.cls


def _line(text: str, size: int | None = None, colour: str | None = None, bold: bool = False,
          italic: bool = False) -> str:
    s = _esc(text)
    if bold:
        s = f"<b>{s}</b>"
    if italic:
        s = f"<i>{s}</i>"
    attrs = (f' point-size="{size}"' if size else "") + (f' color="{colour}"' if colour else "")
    return f"<font{attrs}>{s}</font>" if attrs else s


def _html(lines: list[str]) -> str:
    return "<" + "<br/>".join(lines) + ">"


def _attrs(**kw) -> str:
    parts = []
    for k, v in kw.items():
        if v is None:
            continue
        if isinstance(v, str) and v.startswith("<") and v.endswith(">"):
            parts.append(f"{k}={v}")
        else:
            parts.append(f"{k}={_quote(str(v))}")
    return "[" + ", ".join(parts) + "]"


class _Drawing:
    def __init__(self, net: Network, focus: tuple[str, ...] | None):
        self.net = net
        self.focus = focus
        self.decls = {m.path: m for m in net.modules}
        scheme = SCHEMES[net.mask_scheme] if net.mask_scheme is not None else None
        self.unit_masks = scheme is not None and scheme.unit_masks
        self.weight_masks = scheme is not None and scheme.weight_masks
        self.backups = scheme is not None and scheme.backups
        self.scheme = scheme.title if scheme is not None else ""
        self.consumers: dict[int, list[int]] = {n.id: [] for n in net.nodes}
        for n in net.nodes:
            for i in n.inputs:
                if n.id not in self.consumers[i]:
                    self.consumers[i].append(n.id)
        self.layer_node = {n.name: n for n in net.nodes if n.weighted}
        self.cluster = {nid: self._cluster_of(net.nodes[nid]) for nid in net.topo_order}
        # Shortcut nodes whose units are new (a projection and what follows it in the branch) ->
        # the layer whose mask the residual add ties them to.
        self.tied_to = self._ties() if self.unit_masks else {}
        if focus is None:
            self.inside = list(net.topo_order)
            self.outside: list[int] = []
        else:
            self.inside = [nid for nid in net.topo_order if self._under_focus(net.nodes[nid])]
            inside = set(self.inside)
            around = set()
            for nid in self.inside:
                around.update(i for i in net.nodes[nid].inputs if i not in inside)
                around.update(c for c in self.consumers[nid] if c not in inside)
            self.outside = [nid for nid in net.topo_order if nid in around]
        self.inside_set = set(self.inside)
        self.drawn = self.inside_set | set(self.outside)
        feeds = {i for nid in self.inside for i in net.nodes[nid].inputs}  # includes outside inputs
        # Mask points drawn (HAT): inside ones, and outside ones that feed the focused module.
        self.masked = {nid: net.nodes[nid].meta["mask_point_of"] for nid in net.topo_order
                       if self.unit_masks and "mask_point_of" in net.nodes[nid].meta
                       and (nid in self.inside_set or nid in feeds)}
        self.mask_node = {layer: nid for nid, layer in self.masked.items()}

    # -- structure

    def _container(self, path: tuple[str, ...]) -> tuple[str, ...]:
        """The deepest enclosing cluster of module `path` (() for the top level)."""
        for k in range(len(path) - 1, 0, -1):
            decl = self.decls.get(path[:k])
            if decl is not None and decl.cls in _CLUSTERS:
                return path[:k]
        return ()

    def _cluster_of(self, n: Node) -> tuple[str, ...]:
        if n.module is not None:
            decl = self.decls.get(n.module)
            if decl is not None and decl.cls in _CLUSTERS:
                return n.module
            return self._container(n.module)
        if n.chain_layer is not None:  # an add or flatten: with the weighted layer of its chain
            owner = self.layer_node.get(n.chain_layer)
            if owner is not None:
                return self._container(owner.module)
        if n.inputs:
            return self._cluster_of(self.net.nodes[n.inputs[0]])
        return ()

    def _under_focus(self, n: Node) -> bool:
        f = self.focus
        path = n.module if n.module is not None else self.cluster[n.id]
        return path[: len(f)] == f

    def _is_projection(self, n: Node) -> bool:
        return n.op == "call_module" and self.decls[n.module].cls in PROJECTIONS

    def _ties(self) -> dict[int, str]:
        out = {}
        for nid in self.net.topo_order:
            n = self.net.nodes[nid]
            layer = n.meta.get("units")
            if n.op != "add" or layer is None:
                continue
            for i in n.inputs[1:]:
                m = self.net.nodes[i]
                while m.in_branch and m.meta.get("units") is None:
                    out[m.id] = layer
                    if self._is_projection(m) or not m.inputs:
                        break
                    m = self.net.nodes[m.inputs[0]]
        return out

    def _operand_name(self, nid: int) -> str:
        """Whose units an add's operand carries: the owner layer, else the shortcut projection."""
        n = self.net.nodes[nid]
        owner = n.meta.get("units")
        if owner is not None:
            return owner
        while n.in_branch and not self._is_projection(n) and n.inputs:
            n = self.net.nodes[n.inputs[0]]
        return n.name or n.op

    # -- nodes

    def _node_line(self, nid: int) -> str:
        n = self.net.nodes[nid]
        if nid not in self.inside_set:
            return self._outside_node(n)
        lines: list[str] = []
        attrs: dict = {"shape": "box", "style": "rounded"}
        shape = _line(str(n.shape), 9, "#555555")
        if n.op == "input":
            lines = [_line("input", bold=True), shape]
            attrs.update(style="rounded,filled", fillcolor="#eeeeee")
        elif n.op == "add":
            lines = [_line("+ add (residual)", bold=True)]
            ties = n.meta.get("tied_units")
            if self.unit_masks and ties is not None:
                first, *rest = [self._operand_name(i) for i in n.inputs]
                lines.append(_line(f"ties units of {first}", 9, _TIE_COLOUR))
                lines += [_line(f"and {name}", 9, _TIE_COLOUR) for name in rest]
            lines.append(shape)
            attrs.update(shape="box", style="rounded,bold")
        elif n.op == "call_module":
            decl = self.decls[n.module]
            lines = [_line(n.name, bold=n.weighted), _line(_kind(decl), 9), shape]
            if n.weighted:
                attrs.update(style="rounded,filled,bold", fillcolor=_WEIGHTED_FILL, color=_WEIGHTED_PEN)
                if self.weight_masks:
                    lines.append(_line(f"weights masked ({self.scheme})", 9, "#990000", italic=True))
            if nid in self.tied_to:
                layer = self.tied_to[nid]
                lines.append(_line(f"units tied to mask[{layer}]", 9, _TIE_COLOUR))
                attrs.update(style="rounded,filled", fillcolor=_TIED_FILL, color=_TIE_COLOUR)
            if n.in_branch and not n.weighted and nid not in self.tied_to:
                attrs.update(color=_SHORTCUT_COLOUR)
            routed_by = n.name if n.weighted else self.tied_to.get(nid) if self._is_projection(n) else None
            if self.backups and routed_by is not None:
                lines.append(_line(f"backup b: m_b[{routed_by}]·backup + (1−m_b)·main", 9, _BACKUP_COLOUR,
                                   italic=True))
        else:
            lines = [_line(n.op, bold=True), shape]
        tip = n.name or n.op
        return f"n{nid} {_attrs(label=_html(lines), tooltip=tip, **attrs)};"

    def _outside_node(self, n: Node) -> str:
        title = n.name or ("+ add" if n.op == "add" else n.op)
        lines = [_line(title, 9, _MUTED), _line(str(n.shape), 8, _MUTED)]
        attrs = _attrs(label=_html(lines), tooltip=title, shape="box", style="rounded,dashed", color=_MUTED)
        return f"n{n.id} {attrs};"

    def _mask_line(self, nid: int) -> str:
        layer = self.masked[nid]
        label = _html([_line(f"× mask[{layer}]", 9, bold=True)])
        attrs = _attrs(label=label, tooltip=f"{self.scheme} mask of {layer}", shape="box", style="rounded,filled",
                       fillcolor=_MASK_FILL, color=_TIE_COLOUR, height="0.25", margin="0.06,0.02")
        return f"m{nid} {attrs};"

    # -- the text

    def dot(self) -> str:
        net = self.net
        out = [f"digraph {_quote(net.class_name)} {{"]
        graph = _attrs(rankdir="TB", label=self._title(), labelloc="t", fontname="Helvetica", fontsize="12",
                       nodesep="0.3", ranksep="0.3", newrank="true")
        out.append(f"  graph {graph};")
        out.append(f"  node {_attrs(fontname='Helvetica', fontsize='10', margin='0.1,0.04', height='0.3')};")
        out.append(f"  edge {_attrs(fontname='Helvetica', fontsize='9', arrowsize='0.6', color='#444444')};")
        for nid in self.outside:  # with --focus: the neighbours, outside any cluster
            out.append("  " + self._node_line(nid))
            if nid in self.masked:
                out.append("  " + self._mask_line(nid))
        out += self._clusters()
        out += self._edges()
        out.append("}")
        return "\n".join(out) + "\n"

    def _title(self) -> str:
        net = self.net
        where = Path(net.spec_path).name
        inp = next(n for n in net.nodes if n.op == "input")
        lines = [_line(f"{net.class_name} ({where}), input {inp.shape}", 12, bold=True)]
        if self.focus is not None:
            lines.append(_line(f"module {'/'.join(self.focus)} (dashed boxes: what feeds it and reads it)", 10))
        lines.append(_line("blue boxes: weighted layers; blue edges: shortcuts", 9, "#555555"))
        if self.unit_masks:
            lines.append(_line(f"× mask[L]: the {self.scheme} mask of layer L's units (after the last "
                               "operation of L's chain that can make a zero non-zero: bias, batch norm, "
                               "residual add)", 9, "#555555"))
        elif self.weight_masks:
            lines.append(_line(f"{self.scheme} masks the weights of every weighted layer", 9, "#555555"))
        if self.backups:
            lines.append(_line("stage train_with_backup: backup path b routes each weighted layer (with its "
                               "batch norm) and shortcut projection by task b's stored mask m_b", 9, _BACKUP_COLOUR))
        return _html(lines)

    def _clusters(self) -> list[str]:
        # Items of each cluster (nodes and child clusters), in order of first appearance in the
        # topological order; clusters nest by module path. With --focus on a block or stage, the
        # drawing starts at its cluster; on another module, at the top level.
        focus = self.focus
        base = focus if focus is not None and self.decls[focus].cls in _CLUSTERS else ()
        items: dict[tuple, list] = {base: []}
        for nid in self.inside:
            c = self.cluster[nid]
            chain = [c[:k] for k in range(len(base), len(c) + 1)]
            for parent, child in zip(chain, chain[1:]):
                if child not in items:
                    items[child] = []
                    items[parent].append(("cluster", child))
            items[c].append(("node", nid))
        out: list[str] = []
        if base:
            self._emit_cluster(base, items, out, 1)
        else:
            self._emit_items((), items, out, 1)
        return out

    def _emit_items(self, path, items, out, depth) -> None:
        pad = "  " * depth
        for kind, x in items.get(path, []):
            if kind == "node":
                out.append(pad + self._node_line(x))
                if x in self.masked:
                    out.append(pad + self._mask_line(x))
            else:
                self._emit_cluster(x, items, out, depth)

    def _emit_cluster(self, path, items, out, depth) -> None:
        pad = "  " * depth
        decl = self.decls[path]
        what = f"block {decl.block}" if decl.cls == "Block" else decl.cls
        name = "/".join(path)
        out.append(f"{pad}subgraph {_quote('cluster_' + name)} {{")
        label = _html([_line(name, 10, bold=True) + _line(": " + what, 9, "#555555")])
        attrs = _attrs(label=label, labeljust="l", style="rounded", color="#999999", fontname="Helvetica")
        out.append(f"{pad}  graph {attrs};")
        self._emit_items(path, items, out, depth + 1)
        out.append(f"{pad}}}")

    def _edges(self) -> list[str]:
        """Every IR edge between drawn nodes (at least one of them inside), in topological order of
        the consumer; an edge from a mask point leaves from its mask node."""
        out = []
        for nid in self.net.topo_order:
            if nid not in self.drawn:
                continue
            n = self.net.nodes[nid]
            for k, i in enumerate(n.inputs):
                if i not in self.drawn or (nid not in self.inside_set and i not in self.inside_set):
                    continue
                src = f"m{i}" if i in self.masked else f"n{i}"
                attrs = ""
                if n.op == "add" and k > 0 and not self.net.nodes[i].in_branch:
                    attrs = " " + _attrs(color=_SHORTCUT_COLOUR, style="dashed", label="identity",
                                         fontcolor=_SHORTCUT_COLOUR)
                elif n.in_branch or (n.op == "add" and k > 0):
                    attrs = " " + _attrs(color=_SHORTCUT_COLOUR)
                out.append(f"  {src} -> n{nid}{attrs};")
            if nid in self.masked:
                out.append(f"  n{nid} -> m{nid};")
        for nid in self.inside:
            layer = self.tied_to.get(nid)
            if layer in self.mask_node and self._is_projection(self.net.nodes[nid]):
                tie = _attrs(style="dashed", color=_TIE_COLOUR, fontcolor=_TIE_COLOUR, arrowhead="none",
                             constraint="false", tailport="e", headport="e", label="tied")
                out.append(f"  m{self.mask_node[layer]} -> n{nid} {tie};")
        return out
