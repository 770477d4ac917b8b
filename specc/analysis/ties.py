"""Ties between masks: a residual add on a layer's chain combines that layer's units with the
shortcut's, so the shortcut's units (and a weighted shortcut projection, with HAT's
protect_shortcuts) fall under the mask of the layer that owns the add."""
from __future__ import annotations

from .graph import Graph


def find_ties(graph: Graph) -> dict[str, str]:
    tied_to = {}
    for n in graph.nodes:
        owner = n.meta.get("shortcut_of_add")
        if owner is None:
            continue
        layer = graph.nodes[owner].meta.get("chain_of")
        if layer is None:
            continue
        if n.role == "projection":
            n.meta["shortcut_of"] = layer
            if n.meta.get("weighted"):
                tied_to[n.name] = layer
                n.meta["tied_to"] = layer
    return tied_to
