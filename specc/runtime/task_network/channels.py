"""Which channels (units along dim 1) of each value a task's network computes.

Two passes over the test graph (stage_graph.py), with every value's channel count from a shape
propagation:
- forward, `nonzero`: the channels that can be non-zero. A unit mask keeps only its kept units; a
  projection, a batch norm or an activation with f(0) != 0 makes every channel non-zero;
  operations that keep zeros (ReLU, pooling, dropout) pass the set on; an add unites its operands';
  flatten, concatenation and channel padding lay the sets out as they lay out the units.
- backward, `needed`: the channels whose values reach the feature. A projection needs every
  input channel; a unit mask needs only its kept units of its input; channel-wise operations
  need what their output needs (an add: on both operands, which is how a residual add ties the
  units of its operands: a unit kept after the add is read from both sides).
A value's channels to compute are `nonzero & needed` (`keep`); every other channel is zero or
read by nothing. Facts are left in `node.meta`: "channels" (the count), "nonzero", "needed",
"keep" (bool tensors) and "prune_kind" (what the pruning does with the node).
"""
from __future__ import annotations

import torch
from torch import fx, nn

from .. import batchnorm
from .stage_graph import node_module, unit_mask

# Roles (specc.core.roles) of operations that compute each channel from the same channel only.
CHANNELWISE = ("norm", "activation", "dropout", "pool", "identity", "scale", "subsample")


def channels(node) -> int | None:
    """The channel count of a node's value: dim 1 of a tensor of two or more dims, else None."""
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    shape = getattr(meta, "shape", None)
    return int(shape[1]) if shape is not None and len(shape) >= 2 else None


def width(node) -> int:
    """The channel count of a node known to have one: classify makes every node without channels
    opaque (or output, meta), so a node of any other prune kind has them, and tensor_inputs gives
    only operands with channels."""
    count = channels(node)
    assert count is not None, f"{node} has no channel count"
    return count


def tensor_inputs(node: fx.Node) -> list[fx.Node]:
    out: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: out.append(n))
    return [n for n in dict.fromkeys(out) if channels(n) is not None]


def classify(backbone: nn.Module, graph: fx.Graph, agraph) -> None:
    """`node.meta["prune_kind"]` for every node with channels: input, mask, projection, depthwise,
    norm, channelwise (keeps zeros or, `meta["moves_zero"]`, not), add, flatten, concat, pad,
    meta (reads the batch size only), output, or opaque (computed on every channel, as it is)."""
    roles = {n.where: n for n in agraph.nodes}
    for node in graph.nodes:
        node.meta["prune_kind"] = _kind(backbone, node, roles.get(node))


def _kind(backbone, node: fx.Node, anode) -> str:
    if node.op == "output":
        return "output"
    if node.op == "placeholder":
        return "input"
    if node.target is unit_mask:
        return "mask"
    if node.op == "call_method" and (node.target == "dim" or (node.target == "size" and node.args[1:] == (0,))):
        return "meta"  # reads the batch size or rank: the same on a pruned value
    if channels(node) is None or anode is None:
        return "opaque"
    ins = tensor_inputs(node)
    role = anode.role
    if node.op == "call_module":
        module = node_module(backbone, node)
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            groups = getattr(module, "groups", 1)
            if groups == 1:
                return "projection"
            if groups == module.in_channels == module.out_channels:
                return "depthwise"
            return "opaque"
        if isinstance(module, batchnorm.NORMS):
            return "norm"
        if any(True for _ in module.parameters()) or any(True for _ in module.buffers()):
            return "opaque"  # a module with per-channel state this pass does not know how to slice
    if role in CHANNELWISE and len(ins) == 1 and channels(ins[0]) == channels(node):
        node.meta["moves_zero"] = not anode.keeps_zero
        return "channelwise"
    if role == "add" and len(ins) == 2 and all(channels(i) == channels(node) for i in ins) \
            and all(len(i.meta["tensor_meta"].shape) == len(node.meta["tensor_meta"].shape) for i in ins):
        return "add"
    if role == "flatten" and len(ins) == 1 and width(node) % width(ins[0]) == 0:
        return "flatten"
    if role == "concat" and all(channels(i) is not None for i in ins):
        return "concat"
    if role == "pad" and len(ins) == 1 and anode.pad is not None:
        return "pad"
    return "opaque"


def _all(node) -> torch.Tensor:
    return torch.ones(channels(node), dtype=torch.bool)


def flatten_repeat(node: fx.Node) -> int:
    """How many features a flatten node makes of each channel of its input."""
    return width(node) // width(tensor_inputs(node)[0])


def concat_slices(node: fx.Node) -> list[tuple[fx.Node, int, int]]:
    operands = node.args[0] if node.args else node.kwargs["tensors"]
    out, start = [], 0
    for op in operands:
        out.append((op, start, start + width(op)))
        start += width(op)
    return out


def find_nonzero(graph: fx.Graph) -> None:
    for node in graph.nodes:
        kind = node.meta["prune_kind"]
        if channels(node) is None or kind == "output":
            continue
        ins = tensor_inputs(node)
        if kind == "mask":
            nz = ins[0].meta["nonzero"] & (node.meta["unit_mask"] != 0)
        elif kind == "channelwise" and not node.meta.get("moves_zero"):
            nz = ins[0].meta["nonzero"].clone()
        elif kind == "add":
            nz = ins[0].meta["nonzero"] | ins[1].meta["nonzero"]
        elif kind == "flatten":
            nz = ins[0].meta["nonzero"].repeat_interleave(flatten_repeat(node))
        elif kind == "concat":
            nz = torch.cat([op.meta["nonzero"] for op, _, _ in concat_slices(node)])
        elif kind == "pad":
            before, after = channel_pad(node)
            nz = torch.cat([torch.zeros(before, dtype=torch.bool), ins[0].meta["nonzero"],
                            torch.zeros(after, dtype=torch.bool)])
        else:  # input, projection, norm, depthwise, channel-wise ops that move zeros, opaque
            nz = _all(node)
        node.meta["nonzero"] = nz


def channel_pad(node: fx.Node) -> tuple[int, int]:
    pad = node.args[1] if len(node.args) > 1 else node.kwargs["pad"]
    return pad[4], pad[5]


def demand(node: fx.Node, operand: fx.Node) -> torch.Tensor:
    """The channels of `operand` that `node` reads to compute its needed channels."""
    kind = node.meta["prune_kind"]
    if kind == "output":
        return _all(operand)
    if kind == "meta":
        return torch.zeros(channels(operand), dtype=torch.bool)
    need = node.meta.get("needed")
    if kind == "mask":
        return need & (node.meta["unit_mask"] != 0)
    if kind in ("channelwise", "norm", "depthwise", "add"):
        return need.clone()
    if kind == "projection":
        return _all(operand) if bool(need.any()) else torch.zeros(channels(operand), dtype=torch.bool)
    if kind == "flatten":
        return need.view(-1, flatten_repeat(node)).any(1)
    if kind == "concat":
        got = torch.zeros(channels(operand), dtype=torch.bool)
        for op, start, stop in concat_slices(node):
            if op is operand:
                got |= need[start:stop]
        return got
    if kind == "pad":
        before, after = channel_pad(node)
        return need[before:width(node) - after].clone()
    return _all(operand)


def find_needed(graph: fx.Graph) -> None:
    for node in reversed(graph.nodes):
        if channels(node) is not None and "needed" not in node.meta:
            node.meta["needed"] = torch.zeros(channels(node), dtype=torch.bool)
        for operand in tensor_inputs(node):
            got = demand(node, operand)
            operand.meta["needed"] = got | operand.meta["needed"] if "needed" in operand.meta else got


def find_keep(graph: fx.Graph) -> None:
    """`keep`: the channels each node's pruned value holds, in order. Mostly `nonzero & needed` (at least one); an
    opaque operation (and the network's input) holds every channel, a flatten every feature of the
    channels it keeps (the pruned linear after it reads them in that layout)."""
    for node in graph.nodes:
        if channels(node) is None or node.meta["prune_kind"] == "output":
            continue
        kind = node.meta["prune_kind"]
        if kind in ("opaque", "input"):
            node.meta["keep"] = _all(node)
            continue
        keep = node.meta["nonzero"] & node.meta["needed"]
        if kind == "flatten":
            r = flatten_repeat(node)
            keep = keep.view(-1, r).any(1).repeat_interleave(r)
        if not bool(keep.any()) and len(keep):
            # torch has no convolution of zero channels: a value that keeps none keeps its first
            # (computed as the graph says; zero or read by nothing, as every dropped channel)
            keep = keep.clone()
            keep[: flatten_repeat(node) if kind == "flatten" else 1] = True
        node.meta["keep"] = keep


def analyse_channels(backbone: nn.Module, graph: fx.Graph, agraph) -> None:
    classify(backbone, graph, agraph)
    find_nonzero(graph)
    find_needed(graph)
    find_keep(graph)
