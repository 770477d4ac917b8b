"""Text reports of an analysed network (the `specc show` table). No torch."""
from __future__ import annotations

from .core.layers import BY_CLASS, parameter_count
from .frontend.ir import Network
from .schemes import SCHEMES


def _mask_point(net: Network, layer: str) -> str:
    if layer in net.tied_to:
        return f"shared with {net.tied_to[layer]}"
    for n in net.nodes:
        if n.meta.get("mask_point_of") == layer:
            return f"after {n.name}" if n.op == "call_module" else f"after {n.op}"
    return "?"


def _part(net: Network, name: str) -> tuple[str, dict, str]:
    """The torch class and keyword arguments of weighted part `name` (`module/child`), and its module."""
    parent, _, child = name.rpartition("/")
    node = next(n for n in net.nodes if n.name == parent and n.module is not None)
    decl = net.module(node.module)
    parts = BY_CLASS[decl.cls].parts
    assert parts is not None, f"'{name}' is neither a weighted layer nor a part of one"
    cls, kwargs = next((c, kw) for ch, c, kw in parts(decl.kwargs) if ch == child)
    return cls, kwargs, parent


def weighted_layer_table(net: Network) -> str:
    by_name = {n.name: n for n in net.nodes if n.weighted}
    masked = net.mask_scheme is not None and SCHEMES[net.mask_scheme].unit_masks
    header = ("#", "layer", "kind", "input", "output", "params", "preceding", "next")
    rows = [header + (("mask point", "input units gated by") if masked else ())]
    total = 0
    for i, name in enumerate(net.weighted_layer_names):
        if name in by_name:
            node = by_name[name]
            decl = net.module(node.module)
            cls, kwargs = decl.cls, decl.kwargs
            shapes = (str(net.nodes[node.inputs[0]].shape), str(node.shape))
        else:  # a weighted part of a mixing module (WSN's qkv, proj): its shapes are inside the module
            cls, kwargs, parent = _part(net, name)
            shapes = (f"in {parent}", f"in {parent}")
        count = parameter_count(cls, kwargs)
        total += count
        row = (str(i), name, cls, *shapes, f"{count:,}", net.preceding[name] or "-", net.next[name] or "-")
        if masked:
            gated = net.graph_preceding[name]
            repeat = net.input_unit_repeat.get(name, 1)
            if len(gated) > 1:  # a concatenation: each slice of the input carries one layer's units
                source = f"masks of {', '.join(gated)} (concatenated)"
            elif gated:
                spread = f" (each unit x{repeat}, through flatten)" if repeat not in (1, None) else ""
                source = f"mask of {gated[0]}{spread}"
            else:
                source = "- (network input)"
            row += (_mask_point(net, name), source)
        rows.append(row)
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if c not in (0, 5) else cell.rjust(w)
                       for c, (cell, w) in enumerate(zip(r, widths))).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"{net.class_name}: {len(net.weighted_layer_names)} weighted layers, "
                 f"{total:,} weighted-layer parameters")
    return "\n".join(lines)
