"""AmnesiacHAT: add one backup path per backup task to a HAT-masked graph.

For backup task b the path starts from the same input and follows the main architecture, except:
- each weighted layer, with the batch norm that follows it, is the routed mix
  `m_b * backup(x_b) + (1 - m_b) * main(x_b)`, where `backup` is the layer (and batch norm) of
  backup backbone b (a plain network of the same architecture, `backup_backbones.<b>`), `main` the
  main network's, and `m_b` task b's stored mask of that layer;
- a shortcut projection (a linear/conv inside a branch) is routed the same way with the mask of the
  layer that owns the residual add it feeds; a shortcut without projection is the identity;
- at each mask point the current task's mask multiplies the units, as on the main path;
- every other module (activation, pooling, dropout) is the main network's own: shared, not copied.

The graph is built from the IR (the main path is already HAT-rewritten and may have folded batch
norms); it gains a `backup_masks` input (task id string -> that task's masks) and returns
`(feature, {task id string: backup feature}, activations)`.
"""
from __future__ import annotations

import operator

import torch
from torch import fx

from ..frontend.ir import Network
from ..core.layers import BATCH_NORMS



def amnesiac_pass(graph: fx.Graph, net: Network, backup_ids: list[str]) -> fx.Graph:
    placeholders = {n.target: n for n in graph.nodes if n.op == "placeholder"}
    # Requires: a HAT-masked graph (its `mask` input), no backup path yet.
    assert "mask" in placeholders and "backup_masks" not in placeholders, "needs a HAT graph without backups"
    output = next(n for n in graph.nodes if n.op == "output")
    feature, activations = output.args[0]

    with graph.inserting_after(placeholders["bn_task"]):
        backup_masks = graph.placeholder("backup_masks")
    # Shortcut projections that are not weighted layers, routed with their add owner's mask.
    shortcut_owner = {n.name: n.meta["shortcut_of"] for n in net.nodes
                      if "shortcut_of" in n.meta and not n.weighted}
    backup_features = {}
    with graph.inserting_before(output):
        for b in backup_ids:
            backup_features[b] = _backup_path(graph, net, b, placeholders["input"], placeholders["mask"],
                                              backup_masks, shortcut_owner)
    output.args = ((feature, backup_features, activations),)

    # Ensures: one routed mix per weighted layer (and per shortcut projection) for each backup.
    routed = [n.meta["specc"]["routed"] for n in graph.nodes if "routed" in n.meta.get("specc", {})]
    expected = (net.weighted_layer_names + list(shortcut_owner)) * len(backup_ids)
    assert sorted(routed) == sorted(expected), "a layer is not routed exactly once per backup"
    graph.lint()
    return graph


def _backup_path(graph, net, b, inp, mask, backup_masks, shortcut_owner):
    masks_b = graph.call_function(operator.getitem, (backup_masks, b))
    value: dict[int, fx.Node] = {}
    consumed: set[int] = set()  # batch norms folded into their layer's routed mix
    for nid in net.topo_order:
        n = net.nodes[nid]
        if nid in consumed:
            continue
        if n.op == "input":
            v = inp
        elif n.op == "flatten":
            v = graph.call_function(torch.flatten, (value[n.inputs[0]], 1))
        elif n.op == "add":
            v = graph.call_function(operator.add, (value[n.inputs[0]], value[n.inputs[1]]))
        else:
            x = value[n.inputs[0]]
            layer = n.name if n.weighted else shortcut_owner.get(n.name)
            if layer is None:  # a module of the main network, shared by every path
                v = graph.call_module(".".join(n.module), (x,))
            else:
                run = [n]
                bn = _following_batch_norm(net, n)
                if bn is not None:
                    run.append(bn)
                    consumed.add(bn.id)
                v = _routed(graph, net, b, run, x, masks_b, layer, image=n.shape.is_image)
                v.meta["specc"] = {"routed": n.name, "backup": b}
                if bn is not None:
                    n = bn  # the mask point may be the batch norm
        value[n.id] = v
        point = n.meta.get("mask_point_of")
        if point is not None:
            m = graph.call_function(operator.getitem, (mask, point))
            if n.shape.is_image:
                m = graph.call_method("view", (m, 1, -1, 1, 1))
            value[n.id] = graph.call_function(operator.mul, (value[n.id], m))
    return value[net.output]


def _following_batch_norm(net: Network, n):
    users = [u for u in net.nodes if u.inputs and u.inputs[0] == n.id]
    if len(users) == 1 and users[0].op == "call_module" and net.module(users[0].module).cls in BATCH_NORMS:
        return users[0]
    return None


def _routed(graph, net, b, run, x, masks_b, layer, image):
    main, backup = x, x
    for node in run:
        main = graph.call_module(".".join(node.module), (main,))
        backup = graph.call_module(".".join(("backup_backbones", b) + node.module), (backup,))
    m = graph.call_function(operator.getitem, (masks_b, layer))
    if image:
        m = graph.call_method("view", (m, 1, -1, 1, 1))
    keep = graph.call_function(operator.mul, (m, backup))
    rest = graph.call_function(operator.mul, (graph.call_function(operator.sub, (1, m)), main))
    return graph.call_function(operator.add, (keep, rest))

