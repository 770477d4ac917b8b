"""The analysis of a network graph, shared by the front end and the runtime (torch-free).

Passes, in order, each in its own module: shortcuts (main and shortcut operands of residual adds)
-> weighted (the weighted layers) -> units (which layer's units each value carries) -> mask points
(where each layer's unit mask applies) -> ties (masks shared through residual adds). `analyse`
runs them and returns the network-level `Facts`; node-level facts are left in `node.meta`.
"""
from __future__ import annotations

from .graph import AnalysisError, Facts, Graph, Node, Segment
from .mask_points import find_mask_points
from .shortcuts import mark_shortcuts
from .ties import find_ties
from .units import assign_units
from .weighted import find_weighted, scored_layers

__all__ = ["AnalysisError", "Facts", "Graph", "Node", "Segment", "analyse", "scored_layers"]


def analyse(graph: Graph, include_shortcuts: bool = False, unit_masks: bool = True,
            point: str = "earliest", units_optional: bool = False) -> Facts:
    """The facts of `graph`. `unit_masks`: the network gets unit masks (HAT), so every mask point must
    keep a masked unit zero up to the next layers (else AnalysisError); without, mask points are
    still reported, unchecked. `units_optional` (parameter masks, WSN): an operation whose effect on
    units is unknown only leaves the layers' input segments (graph_preceding / graph_next) empty. `point`: the
    mask point rule (mask_points.find_mask_points)."""
    mark_shortcuts(graph)
    names = find_weighted(graph, include_shortcuts)
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise AnalysisError(f"the weighted layer '{dup}' is called more than once; each weighted layer "
                            "must be used at one point of the network")
    layer_nodes = {n.name: n.id for n in graph.nodes if n.meta.get("weighted")}
    try:
        assign_units(graph)
        units_known = True
    except AnalysisError:
        # Parameter masks (WSN) need only the weighted layers and their order: an operation whose
        # effect on units specc cannot tell leaves the graph-wise neighbours unknown (empty), no more.
        if unit_masks or not units_optional:
            raise
        units_known = False
    # Ties first: a weighted shortcut projection shares the mask of the layer owning its add.
    chain_points = find_mask_points(graph, [n for n in names if not _is_shortcut(graph, layer_nodes[n])],
                                    layer_nodes, check=unit_masks, point_rule=point)
    tied_to = find_ties(graph)
    inputs = {name: _input_segments(graph, graph.nodes[layer_nodes[name]]) if units_known else ()
              for name in names}
    return Facts.of(names, inputs, chain_points, tied_to, layer_nodes)


def _is_shortcut(graph: Graph, nid: int) -> bool:
    return "shortcut_of_add" in graph.nodes[nid].meta


def _input_segments(graph: Graph, layer: Node) -> tuple[Segment, ...]:
    """The segments of a layer's input, with unknown repeats (a flatten the adapter could not size)
    resolved from the layer's input size."""
    segs = graph.nodes[layer.inputs[0]].meta["units"]
    unknown = [s for s in segs if s.repeat is None]
    if not unknown:
        return segs
    known = sum(s.size * s.repeat for s in segs if s.repeat is not None and s.size is not None)
    # The unknown repeats come from one flatten (the adapter could not size its image), which spreads
    # every unit over the same height * width: one repeat for them all (a concatenation or a zero
    # padding before the flatten makes several segments).
    sizes = sum(s.size or 0 for s in unknown)
    if all(s.size for s in unknown) and layer.in_units is not None and sizes \
            and (layer.in_units - known) % sizes == 0 and layer.in_units > known:
        r = (layer.in_units - known) // sizes
        return tuple(Segment(s.owner, s.size, r, s.start) if s.repeat is None else s for s in segs)
    raise AnalysisError(f"cannot tell how the inputs of '{layer.name}' map to the units before it", layer)
