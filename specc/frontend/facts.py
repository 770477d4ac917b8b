"""The analysis (specc/analysis) applied to the elaborated IR: the IR as an analysis graph, the
facts written back for `check`, `show` and `graph`, analysis errors as positioned spec errors."""
from __future__ import annotations

import heapq
import math

from ..analysis import AnalysisError, Graph, Node, scored_layers
from ..analysis import analyse as analyse_graph
from ..core.layers import BY_CLASS, OPS
from ..core.roles import MODULES
from ..schemes import SCHEMES
from .errors import SpecError
from .ir import Network


def topological_order(net: Network) -> list[int]:
    """Among the nodes whose inputs are computed, the one declared first goes first: a chain stays
    in chain order, loop iterations in iteration order, and a branch declared after the main path
    comes after the main-path nodes declared before it and before the add that uses it (the order
    in which the generated forward computes them)."""
    indeg = {n.id: len(set(n.inputs)) for n in net.nodes}
    users: dict[int, list[int]] = {n.id: [] for n in net.nodes}
    for n in net.nodes:
        for i in set(n.inputs):
            users[i].append(n.id)
    ready = [(n.order, n.id) for n in net.nodes if indeg[n.id] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, nid = heapq.heappop(ready)
        order.append(nid)
        for u in users[nid]:
            indeg[u] -= 1
            if indeg[u] == 0:
                heapq.heappush(ready, (net.nodes[u].order, u))
    if len(order) != len(net.nodes):  # the elaborator builds acyclic graphs; this guards that claim
        raise AssertionError("the data-flow graph has a cycle")
    return order


def _graph(net: Network, order: list[int]) -> Graph:
    index = {nid: i for i, nid in enumerate(order)}
    modules = {m.path: m for m in net.modules}
    nodes = []
    for i, nid in enumerate(order):
        n = net.nodes[nid]
        inputs = [index[j] for j in n.inputs]
        if n.op == "input":
            node = Node(i, "input", [], "input", units=n.shape.units)
            node.meta["view"] = n.shape.unit_view
        elif n.op == "add":
            node = Node(i, "add", inputs, "add", keeps_zero=False, shortcut_operand=1)
        elif n.op == "mul":  # the stream (operand 0) times a gate: a zero of the stream stays zero
            node = Node(i, "gate", inputs, "mul")
            node.meta["main_operand"] = 0
        elif n.op == "concat":
            node = Node(i, "concat", inputs, "concat")
        elif n.op in OPS:  # a catalogue layer without a module (flatten, subsample, pad_channels)
            entry = OPS[n.op]
            node = Node(i, entry.role, inputs, n.op, keeps_zero=entry.keeps_zero)
            if entry.role == "flatten":
                src = net.nodes[n.inputs[0]].shape.spatial
                node.spatial = math.prod(src) if src and None not in src else None
            elif entry.role == "pad":
                a = n.meta["args"]
                node.pad = (a["before"], a["after"])
        else:
            decl = modules[n.module]
            cls = decl.cls if isinstance(decl.cls, str) else decl.cls.__name__
            kind = MODULES.get(cls)
            node = Node(i, kind.role if kind else "unknown", inputs, n.name, module=True,
                        keeps_zero=kind.keeps_zero if kind else False)
            layer = BY_CLASS.get(cls)
            if layer is not None and layer.weighted:
                kw = decl.kwargs
                node.in_units, node.units = kw[layer.units[0]], kw[layer.units[1]]
                node.groups = kw.get("groups", 1)
                node.meta["view"] = layer.hat_view
            elif layer is not None and layer.parts is not None:  # WSN scores them (analysis.scored_layers)
                node.meta["weighted_parts"] = [(child, c == "LayerNorm") for child, c, _ in layer.parts(decl.kwargs)]
            node.meta["affine_norm"] = cls == "LayerNorm" and bool(decl.kwargs.get("elementwise_affine", True))
        node.where = n
        nodes.append(node)
    records = {layer: index[nid] for layer, nid in net.records.items()}
    return Graph(nodes, records, index[net.output])


def _unit_map(graph: Graph, facts, node: Node):
    """How the node carries its owner's units, as `show` and `graph` print it: per channel of an
    image, per feature, or flattened (each channel over `repeat` features); None when unowned."""
    owner = node.meta["units"][0].owner if len(node.meta["units"]) == 1 else None
    if owner is None:
        return None
    if node.meta["view"] is not None:
        return "channel"
    if graph.nodes[facts.layer_nodes[owner]].meta["view"] is not None:
        return ("flatten", node.meta["units"][0].repeat)
    return "feature"


def analyse(net: Network) -> Network:
    """Run the analysis on `net` and record its facts on the IR (fields of `net`, `node.meta`)."""
    order = topological_order(net)
    graph = _graph(net, order)
    mixing = next((n for n in graph.nodes if n.role == "mixing"), None)
    if net.mask_scheme is not None and mixing is not None and not SCHEMES[net.mask_scheme].weight_masks:
        raise SpecError(f"`mask {net.mask_scheme}()` cannot mask '{mixing.name}' yet: the masking schemes do not "
                        "place masks on attention or patch embeddings (transformer layers)", mixing.where.pos,
                        "leave out `mask`, or use `mask wsn(...)` (it scores the linears inside attention and "
                        "the patch embedding); HAT on transformers is not written yet")
    try:
        # the zero-mover check of the mask points only where there are unit masks (HAT)
        unit_masks = net.mask_scheme is not None and SCHEMES[net.mask_scheme].unit_masks
        facts = analyse_graph(graph, net.weights_branches, unit_masks=unit_masks,
                              point=net.scheme_options.get("point") or "earliest")
        if net.mask_scheme is not None and SCHEMES[net.mask_scheme].weight_masks:
            facts = scored_layers(graph, facts, bool(net.scheme_options.get("mask_layer_norms")))
    except AnalysisError as e:
        where = e.node.where if e.node is not None else None
        pos = where.pos if where is not None else net.nodes[net.output].pos
        raise SpecError(str(e), pos) from None
    net.topo_order = order
    net.facts = facts
    net.weighted_layer_names = facts.weighted_layer_names
    net.preceding, net.next = facts.preceding, facts.next
    net.graph_preceding, net.graph_next = facts.graph_preceding, facts.graph_next
    net.tied_to = facts.tied_to
    net.input_unit_repeat = {name: segs[0].repeat if len(segs) == 1 else None
                             for name, segs in facts.input_segments.items()}
    for node in graph.nodes:
        ir = node.where
        ir.weighted = bool(node.meta.get("weighted"))
        if "units" in node.meta:
            segs = node.meta["units"]
            ir.meta["segments"] = segs
            ir.meta["units"] = segs[0].owner if len(segs) == 1 else None
            ir.meta["unit_map"] = _unit_map(graph, facts, node)
        for key in ("tied_units", "mask_point_of", "shortcut_of", "tied_to"):
            if key in node.meta:
                ir.meta[key] = node.meta[key]
    for layer, nid in net.records.items():
        net.nodes[nid].meta["record_of"] = layer
    return net
