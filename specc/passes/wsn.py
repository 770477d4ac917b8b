"""WSN: compute every weighted layer on its masked parameters.

Each weighted `call_module` (nn.Linear / nn.Conv2d) becomes `wsn_linear` / `wsn_conv2d` on the
module's own weight and bias and the layer's entries of the `weight_mask` / `bias_mask` inputs,
keeping the convolution's stride, padding, dilation and groups. Batch norms are routed per task as
in HAT when `batch_normalization` is "independent".

The rewritten graph computes `(input, weight_mask, bias_mask, bn_task) -> (feature, activations)`.
"""
from __future__ import annotations

import operator

from torch import fx

from ..frontend.ir import Network
from ..runtime.wsn import wsn_conv2d, wsn_linear
from .hat import route_batch_norms


def wsn_pass(graph: fx.Graph, net: Network) -> fx.Graph:
    weighted = {n for n in graph.nodes if n.op == "call_module"
                and net.nodes[n.meta["specc"]["ir_node"]].weighted}
    names = sorted(net.nodes[n.meta["specc"]["ir_node"]].name for n in weighted)
    # Requires: every weighted layer is one module call, not yet rewritten.
    assert names == sorted(net.weighted_layer_names), "weighted layers are not all module calls"

    (inp,) = [n for n in graph.nodes if n.op == "placeholder"]
    with graph.inserting_after(inp):
        bn_task = graph.placeholder("bn_task")
    with graph.inserting_after(inp):
        bias_mask = graph.placeholder("bias_mask")
    with graph.inserting_after(inp):
        weight_mask = graph.placeholder("weight_mask")

    for node in weighted:
        name = net.nodes[node.meta["specc"]["ir_node"]].name
        decl = net.module(tuple(node.target.split(".")))
        with graph.inserting_before(node):
            w = graph.get_attr(f"{node.target}.weight")
            b = graph.get_attr(f"{node.target}.bias") if decl.kwargs["bias"] else None
            wm = graph.call_function(operator.getitem, (weight_mask, name))
            bm = graph.call_function(operator.getitem, (bias_mask, name))
            if decl.cls == "Linear":
                new = graph.call_function(wsn_linear, (node.args[0], w, b, wm, bm))
            else:
                k = decl.kwargs
                new = graph.call_function(wsn_conv2d, (node.args[0], w, b, wm, bm, k["stride"], k["padding"],
                                                       k["dilation"], k["groups"]))
        new.meta["specc"] = {**node.meta["specc"], "wsn_layer": name}
        node.replace_all_uses_with(new)
        graph.erase_node(node)

    if any(p.name == "batch_normalization" and p.value == "independent" for p in net.params):
        route_batch_norms(graph, net, bn_task)

    # Ensures: each weighted layer computed once on masked parameters, no weighted module call left.
    done = sorted(n.meta["specc"]["wsn_layer"] for n in graph.nodes if "wsn_layer" in n.meta.get("specc", {}))
    assert done == sorted(net.weighted_layer_names), "a weighted layer is not rewritten exactly once"
    graph.lint()
    return graph
