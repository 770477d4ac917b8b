"""HAT: multiply each weighted layer's units by its task mask at the layer's mask point.

The mask point comes from the analysis (`node.meta["specc"]["mask_point_of"]`): after the layer's
batch norm and, for the layer that owns a residual add, after the add; always before the
activation, so the recorded activations are masked. Masks of convolutions are viewed as
(1, C, 1, 1) to broadcast over space.

With the option `fold_batch_norm = true`, a mask that directly follows a batch norm is folded into
the batch norm's affine weight and bias (`batch_norm_masked`): the same function, one pass over
the activations instead of two. It is off by default: with fractional masks (train, validation)
the products round differently from CLArena's `bn(x) * m`, and train-mode batch norm amplifies
the last-bit differences through a deep network (measured on ResNet18, batch 32: up to 3e-5);
the time it saves was about 1% of a ResNet18 train step (bench/hat_train_step.py).

With `batch_normalization = "independent"`, every batch-norm call is routed through
`independent_bn`, which picks the live module or a stored per-task copy (`bn_task`).

The rewritten graph computes `(input, mask, bn_task) -> (feature, activations)`.
"""
from __future__ import annotations

import operator

from torch import fx

from ..frontend.ir import Network
from ..core.layers import BATCH_NORMS
from ..runtime.hat import batch_norm_masked, independent_bn, independent_bn_masked



def hat_pass(graph: fx.Graph, net: Network) -> fx.Graph:
    points = {n: n.meta["specc"]["mask_point_of"] for n in graph.nodes
              if "mask_point_of" in n.meta.get("specc", {})}
    # Requires: exactly one mask point per weighted layer (a tied shortcut layer shares the mask
    # point of the layer owning its add), and no HAT rewrite yet.
    untied = [n for n in net.weighted_layer_names if n not in net.tied_to]
    assert sorted(points.values()) == sorted(untied), "mask points do not match weighted layers"
    assert not any(n.meta.get("specc", {}).get("hat_mask") for n in graph.nodes), "graph already HAT-masked"

    (inp,) = [n for n in graph.nodes if n.op == "placeholder"]
    with graph.inserting_after(inp):
        bn_task = graph.placeholder("bn_task")
    with graph.inserting_after(inp):
        mask = graph.placeholder("mask")

    independent = _independent(net)
    for node, layer in points.items():
        if _foldable(node, net):
            _fold_into_batch_norm(graph, node, layer, mask, bn_task, net, independent)
            continue
        image = net.nodes[node.meta["specc"]["ir_node"]].shape.is_image
        with graph.inserting_after(node):
            m = graph.call_function(operator.getitem, (mask, layer))
        with graph.inserting_after(m):
            if image:
                m = graph.call_method("view", (m, 1, -1, 1, 1))
        with graph.inserting_after(m):
            masked = graph.call_function(operator.mul, (node, m))
        node.replace_all_uses_with(masked, delete_user_cb=lambda user: user is not masked)
        masked.meta["specc"] = {**node.meta["specc"], "hat_mask": layer}
        masked.meta["specc"].pop("mask_point_of")

    if independent:
        route_batch_norms(graph, net, bn_task)

    # Ensures: every weighted layer masked exactly once (tied layers through their owner's mask).
    masked_layers = [n.meta["specc"]["hat_mask"] for n in graph.nodes if n.meta.get("specc", {}).get("hat_mask")]
    assert sorted(masked_layers) == sorted(untied), "a weighted layer is not masked exactly once"
    graph.lint()
    return graph


def _foldable(node: fx.Node, net: Network) -> bool:
    """With `fold_batch_norm`, a mask right after an affine batch norm is folded into its weight
    and bias. After a residual add it is not: the add's other operand must be masked too."""
    if node.op != "call_module" or not net.scheme_options.get("fold_batch_norm"):
        return False
    decl = net.module(tuple(node.target.split(".")))
    return decl.cls in BATCH_NORMS and decl.kwargs.get("affine", True)


def _fold_into_batch_norm(graph, node, layer, mask, bn_task, net, independent) -> None:
    with graph.inserting_before(node):
        m = graph.call_function(operator.getitem, (mask, layer))
        if independent:
            owner, attr, sub = bn_group(net, tuple(node.target.split(".")))
            live = graph.get_attr(node.target)
            copies = graph.get_attr(".".join(owner + (attr + "s",)))
            folded = graph.call_function(independent_bn_masked, (node.args[0], live, copies, bn_task, sub, m))
        else:
            bn = graph.get_attr(node.target)
            folded = graph.call_function(batch_norm_masked, (bn, node.args[0], m))
    node.replace_all_uses_with(folded)
    folded.meta["specc"] = {**node.meta["specc"], "hat_mask": layer, "folded_into_bn": True}
    folded.meta["specc"].pop("mask_point_of")
    graph.erase_node(node)


def _independent(net: Network) -> bool:
    return any(p.name == "batch_normalization" and p.value == "independent" for p in net.params)


def route_batch_norms(graph: fx.Graph, net: Network, bn_task: fx.Node) -> None:
    for node in list(graph.nodes):
        if node.op != "call_module":
            continue
        path = tuple(node.target.split("."))
        if net.module(path).cls not in BATCH_NORMS:
            continue
        owner, attr, sub = bn_group(net, path)
        with graph.inserting_before(node):
            live = graph.get_attr(node.target)
            copies = graph.get_attr(".".join(owner + (attr + "s",)))
        with graph.inserting_after(node):
            routed = graph.call_function(independent_bn, (node.args[0], live, copies, bn_task, sub))
        routed.meta["specc"] = node.meta["specc"]
        node.replace_all_uses_with(routed)
        graph.erase_node(node)


def bn_group(net: Network, path: tuple[str, ...]):
    """(owner path, attribute, sub-path) of a batch norm: per-task copies are kept per attribute of
    its owning module (`fc_bn` -> `fc_bns`, `conv_bn1` -> `conv_bn1s`), as CLArena does; a batch
    norm inside a ModuleList is reached in the copy by its index (`sub`)."""
    parent = path[:-1]
    if parent and net.module(parent).cls == "ModuleList":
        return parent[:-1], parent[-1], (path[-1],)
    return parent, path[-1], ()
