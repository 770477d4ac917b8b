"""Weighted layers: the projections of the main path, in execution order, and their neighbours in
that list (the seed's `preceding_layer_name` / `next_layer_name`). With `include_shortcuts` (WSN,
HAT's protect_shortcuts) shortcut projections are weighted layers too."""
from __future__ import annotations

from .graph import Facts, Graph


def find_weighted(graph: Graph, include_shortcuts: bool) -> list[str]:
    names = []
    for n in graph.nodes:
        if n.role == "projection" and (include_shortcuts or "shortcut_of_add" not in n.meta):
            n.meta["weighted"] = True
            names.append(n.name)
    return names


def scored_layers(graph: Graph, facts: Facts, layer_norms: bool) -> Facts:
    """WSN's layers, in execution order: the weighted layers, the weighted parts of a mixing module the
    graph does not look into (`meta["weighted_parts"]`: (child, is a layer norm) pairs, set by the
    front end for attention and patch embeddings, whose modules the runtime traces through), and, with
    `layer_norms`, the affine layer norms (`meta["affine_norm"]`; those of the parts too). A part is
    named `module/child` and has the mixing module's node; what feeds the added layers is not
    followed (no graph-wise neighbours): WSN masks parameters, not units."""
    names: list[str] = []
    layer_nodes = dict(facts.layer_nodes)
    inputs = dict(facts.input_segments)
    for n in graph.nodes:
        added = [f"{n.name}/{child}" for child, norm in n.meta.get("weighted_parts", ()) if layer_norms or not norm]
        if layer_norms and n.meta.get("affine_norm"):
            n.meta["weighted"] = True
            added.append(n.name)
        if n.meta.get("weighted") and n.name in facts.layer_nodes:
            names.append(n.name)
        for name in added:
            if name not in facts.layer_nodes:
                names.append(name)
                layer_nodes[name], inputs[name] = n.id, ()
    return Facts.of(names, inputs, facts.mask_points, facts.tied_to, layer_nodes)
