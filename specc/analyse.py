"""Analysis of an elaborated network, from its data-flow graph (not from declaration order).

Facts it adds:
- `Network.topo_order`: a topological order of the nodes. Tie-break: among the nodes whose inputs
  are all computed, the one declared first (smallest declaration-order key) goes first. So a
  chain's nodes stay in chain order, loop iterations in iteration order, and a branch (shortcut)
  declared after the main path comes after the main-path nodes declared before it that are ready,
  and before the `add` that uses it.
- `Network.weighted_layer_names`: the weighted layers (linear/conv2d on the main path, not inside a
  `branch`) in that order, named by module path with '/'.
- `preceding` / `next`: the neighbours in that list (the seed's definition), and `graph_preceding`
  / `graph_next`: through the graph, the layer whose units a weighted layer's input carries (after
  a residual add, the layer owning the add), and its inverse.
- `node.meta["units"]`: the weighted layer whose units the node's output carries (None before the
  first weighted layer); flatten and pooling keep the owner, `node.meta["unit_map"]` says how
  ("channel" for image tensors, "flatten" with the spatial size once flattened).
- `node.meta["tied_units"]`: for a residual add, the owners of all its operands, tied to one mask.
- `node.meta["mask_point_of"]`: the weighted layer whose unit mask applies after this node: the
  end of the layer's batch-norm / residual-add run, before the activation.
- `node.meta["shortcut_of"]`: for a shortcut projection, the layer owning the add it feeds.
- `Network.tied_to`: weighted layers inside a branch (shortcut projections, when the masking
  scheme weights them) -> the layer owning the residual add they feed; they share its mask and
  have no mask point of their own (the add's output is masked once).
- `Network.input_unit_repeat`: per weighted layer, how many of its input units each unit of its
  graph predecessor feeds (1, or height*width after a flatten of an image).
- `node.meta["record_of"]`: the weighted layer whose activation is this node's value.
"""
from __future__ import annotations

import heapq

from .frontend.ir import Network
from .core.layers import BATCH_NORMS, PROJECTIONS


def analyse(net: Network) -> Network:
    net.topo_order = _topological_order(net)
    weighted = [nid for nid in net.topo_order if net.nodes[nid].weighted]
    names = [net.nodes[nid].name for nid in weighted]
    net.weighted_layer_names = names
    net.preceding = {n: (names[i - 1] if i else None) for i, n in enumerate(names)}
    net.next = {n: (names[i + 1] if i + 1 < len(names) else None) for i, n in enumerate(names)}
    _unit_owners(net)
    _tied_layers(net)
    _graph_neighbours(net, weighted)
    _mask_points(net)
    for layer, nid in net.records.items():
        net.nodes[nid].meta["record_of"] = layer
    return net


def _topological_order(net: Network) -> list[int]:
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


def _unit_owners(net: Network) -> None:
    for nid in net.topo_order:
        n = net.nodes[nid]
        if n.weighted:
            n.meta["units"] = n.name
            n.meta["unit_map"] = "channel" if n.shape.is_image else "feature"
            continue
        if n.op == "input" or not n.inputs or (n.op == "call_module" and n.in_branch
                                               and net.module(n.module).cls in PROJECTIONS):
            # A shortcut projection's units are new; the add it feeds ties them to a mask.
            n.meta["units"] = None
            n.meta["unit_map"] = None
            continue
        main = net.nodes[n.inputs[0]]
        owner = main.meta["units"]
        if n.op == "add":
            owners = [net.nodes[i].meta["units"] for i in n.inputs]
            n.meta["tied_units"] = owners
            # The add's result carries the units of the weighted layer whose chain it closes;
            # the mask of that layer is applied after the add (see _mask_points).
            owner = n.chain_layer if n.chain_layer is not None else owner
        n.meta["units"] = owner
        if n.op == "flatten" and main.shape.is_image:
            c, h, w = main.shape.dims
            n.meta["unit_map"] = ("flatten", h * w if h is not None and w is not None else None)
        else:
            n.meta["unit_map"] = main.meta.get("unit_map")


def _tied_layers(net: Network) -> None:
    """A shortcut projection (a linear/conv inside a branch) feeds a residual add whose units the
    layer owning the add masks: `node.meta["shortcut_of"]` names that layer. A weighted one (made
    weighted by the masking scheme) has its units tied to it: one mask covers both."""
    net.tied_to = {}
    for n in net.nodes:
        if n.op != "add" or n.chain_layer is None:
            continue
        b = net.nodes[n.inputs[1]]
        while b.in_branch:
            if b.op == "call_module" and net.module(b.module).cls in PROJECTIONS:
                b.meta["shortcut_of"] = n.chain_layer
                if b.weighted:
                    net.tied_to[b.name] = n.chain_layer
                    b.meta["tied_to"] = n.chain_layer
            b = net.nodes[b.inputs[0]]


def _graph_neighbours(net: Network, weighted: list[int]) -> None:
    # A weighted layer's graph predecessor is the layer whose units its input carries (after a
    # residual add: the layer that owns the add), which is what gates its input units.
    net.graph_preceding = {}
    net.graph_next = {net.nodes[w].name: [] for w in weighted}
    net.input_unit_repeat = {}
    for w in weighted:
        n = net.nodes[w]
        src = net.nodes[n.inputs[0]]
        owner = src.meta["units"]
        net.graph_preceding[n.name] = [owner] if owner is not None else []
        if owner is not None:
            net.graph_next[owner].append(n.name)
        # How many input units each unit of the owner feeds: a flatten after an image spreads a
        # channel over its spatial positions (channel-major, as torch.flatten lays them out).
        unit_map = src.meta.get("unit_map")
        net.input_unit_repeat[n.name] = unit_map[1] if isinstance(unit_map, tuple) else 1


def _mask_points(net: Network) -> None:
    consumers: dict[int, list[int]] = {n.id: [] for n in net.nodes}
    for n in net.nodes:
        for i in n.inputs:
            consumers[i].append(n.id)
    for nid in net.topo_order:
        n = net.nodes[nid]
        if not n.weighted or n.name in net.tied_to:
            continue
        point = nid
        while True:
            nxt = [c for c in consumers[point] if net.nodes[c].inputs[0] == point
                   and net.nodes[c].chain_layer == n.name]
            if len(nxt) != 1:
                break
            c = net.nodes[nxt[0]]
            is_bn = c.op == "call_module" and net.module(c.module).cls in BATCH_NORMS
            if not (is_bn or c.op == "add"):
                break
            point = c.id
        net.nodes[point].meta["mask_point_of"] = n.name
