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


def _part_row(net: Network, name: str) -> tuple:
    """kind, input, output, parameters and mask point of a weighted part of a patch embedding or an
    attention (their parts are HAT's weighted layers: specc/frontend/facts.py)."""
    node = next(n for n in net.nodes if name in n.meta.get("parts", {}))
    part = node.meta["parts"][name]
    kw = net.module(node.module).kwargs
    in_shape = net.nodes[node.inputs[0]].shape
    if part.meta.get("view") is not None:  # the patch projection, a convolution on the image
        kind, out = "Conv2d", f"({part.units}, ...)"
        count = part.units * (part.in_units * kw["patch_size"] ** 2 + kw["bias"])
    else:
        bias = kw["qkv_bias"] if name.endswith("/qkv") else kw["proj_bias"]
        kind, out = "Linear", str(node.shape.with_units(part.units))
        count = part.units * (part.in_units + bias)
    point = f"after {name}" if part.meta.get("mask_point_of") == name else "?"
    return kind, str(in_shape), out, count, point


def weighted_layer_table(net: Network) -> str:
    by_name = {n.name: n for n in net.nodes if n.weighted}
    masked = net.mask_scheme is not None and SCHEMES[net.mask_scheme].unit_masks
    header = ("#", "layer", "kind", "input", "output", "params", "preceding", "next")
    rows = [header + (("mask point", "input units gated by") if masked else ())]
    total = 0
    for i, name in enumerate(net.weighted_layer_names):
        node = by_name.get(name)
        if node is not None and name == node.name:
            decl = net.module(node.module)
            kind, in_shape, out = decl.cls, str(net.nodes[node.inputs[0]].shape), str(node.shape)
            count, point = parameter_count(decl.cls, decl.kwargs), None
        elif any(name in n.meta.get("parts", {}) for n in net.nodes):  # HAT's parts
            kind, in_shape, out, count, point = _part_row(net, name)
        else:  # WSN's parts of a mixing module: their shapes are inside the module
            kind, kwargs, parent = _part(net, name)
            in_shape = out = f"in {parent}"
            count, point = parameter_count(kind, kwargs), None
        total += count
        row = (str(i), name, kind, in_shape, out, f"{count:,}", net.preceding[name] or "-", net.next[name] or "-")
        if masked:
            gated = net.graph_preceding[name]
            repeat = net.input_unit_repeat.get(name, 1)
            if len(gated) > 1:  # a concatenation: each slice of the input carries one layer's units
                source = f"masks of {', '.join(gated)} (concatenated)"
            elif gated:
                spread = f" (each unit x{repeat}, through flatten)" if repeat not in (1, None) else ""
                segs: tuple = getattr(net.facts, "input_segments", {}).get(name, ())
                if len(segs) == 1 and segs[0].start:  # attention's proj reads v's units of qkv
                    spread = f" (its units {segs[0].start}..{segs[0].start + segs[0].size - 1}: v)"
                source = f"mask of {gated[0]}{spread}"
            else:
                source = "- (network input, or a residual stream)"
            row += (point or _mask_point(net, name), source)
        rows.append(row)
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if c not in (0, 5) else cell.rjust(w)
                       for c, (cell, w) in enumerate(zip(r, widths))).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"{net.class_name}: {len(net.weighted_layer_names)} weighted layers, "
                 f"{total:,} weighted-layer parameters")
    return "\n".join(lines)
