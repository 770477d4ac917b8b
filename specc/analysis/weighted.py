"""Weighted layers: the projections of the main path, in execution order, and their neighbours in
that list (the seed's `preceding_layer_name` / `next_layer_name`). With `include_shortcuts` (WSN,
HAT's protect_shortcuts) shortcut projections are weighted layers too."""
from __future__ import annotations

from .graph import Graph


def find_weighted(graph: Graph, include_shortcuts: bool) -> list[str]:
    names = []
    for n in graph.nodes:
        if n.role == "projection" and (include_shortcuts or "shortcut_of_add" not in n.meta):
            n.meta["weighted"] = True
            names.append(n.name)
    return names
