"""The pruned network: the test graph rebuilt on the channels each value keeps (channels.py).

Every projection and batch norm is a new, smaller module holding the kept rows / columns of the
original's parameters (a task's WSN weights already masked); a unit mask disappears (its kept
values are 1) or becomes a multiplication by its kept values. Where a value is read in another
layout than the one it is computed in (an add whose operands keep different units, a
concatenation, the feature given back at full size), a `reindex` selects channels and fills the
missing ones with zeros: `index_select(pad(x, one zero channel), 1, index)`, both plain
operations that torch.export and ONNX take.
"""
from __future__ import annotations

import copy
import keyword
import re

import torch
import torch.nn.functional as F
from torch import fx, nn

from .channels import channel_pad, channels, concat_slices, flatten_repeat, tensor_inputs, width
from .stage_graph import node_module


def _index(keep: torch.Tensor) -> torch.Tensor:
    return keep.nonzero().flatten()


def _sliced(module: nn.Module, node: fx.Node, keep_in: torch.Tensor, keep_out: torch.Tensor) -> nn.Module:
    """A copy of `module` computing only the channels `keep_out` from the channels `keep_in`."""
    out = _index(keep_out)
    weight = node.meta.get("weight", module.weight if hasattr(module, "weight") else None)
    bias = node.meta.get("bias", module.bias) if "weight" in node.meta else getattr(module, "bias", None)
    with torch.no_grad():
        if isinstance(module, nn.Linear):
            new = nn.Linear(int(keep_in.sum()), len(out), bias=bias is not None)
            new.weight.copy_(weight.detach()[out][:, _index(keep_in)])
        elif isinstance(module, nn.Conv2d) and module.groups == 1:
            new = nn.Conv2d(int(keep_in.sum()), len(out), module.kernel_size, module.stride, module.padding,
                            module.dilation, 1, bias is not None, module.padding_mode)
            new.weight.copy_(weight.detach()[out][:, _index(keep_in)])
        elif isinstance(module, nn.Conv2d):  # depthwise: channel i reads input channel i only
            new = nn.Conv2d(len(out), len(out), module.kernel_size, module.stride, module.padding,
                            module.dilation, len(out), bias is not None, module.padding_mode)
            new.weight.copy_(weight.detach()[out])
        else:  # batch norm
            new = type(module)(len(out), module.eps, module.momentum, module.affine, module.track_running_stats)
            if module.affine:
                new.weight.copy_(module.weight.detach()[out])
            if module.track_running_stats:
                new.running_mean.copy_(module.running_mean[out])
                new.running_var.copy_(module.running_var[out])
                new.num_batches_tracked.copy_(module.num_batches_tracked)
            bias = module.bias if module.affine else None
        if bias is not None:
            new.bias.copy_(bias.detach()[out])
    dtype = next((t.dtype for t in (weight, getattr(module, "running_mean", None)) if t is not None), None)
    return new if dtype is None else new.to(dtype=dtype)


class _Builder:
    def __init__(self, backbone: nn.Module):
        self.backbone = backbone
        self.root = nn.Module()
        self.graph = fx.Graph()
        self.env: dict[fx.Node, fx.Node] = {}
        self.layouts: dict[tuple, fx.Node] = {}
        self.names: set[str] = set()

    def name(self, hint: str) -> str:
        base = re.sub(r"\W", "_", hint).strip("_") or "m"
        if base[0].isdigit() or keyword.iskeyword(base):
            base = "m_" + base
        name, i = base, 1
        while name in self.names or hasattr(nn.Module, name):
            name, i = f"{base}_{i}", i + 1
        self.names.add(name)
        return name

    def constant(self, hint: str, value: torch.Tensor) -> fx.Node:
        name = self.name(hint)
        self.root.register_buffer(name, value)
        return self.graph.get_attr(name)

    def value_as(self, node: fx.Node, wanted: torch.Tensor | None) -> fx.Node:
        """The pruned value of `node` laid out as `wanted` (None: as it is computed)."""
        new = self.env[node]
        if wanted is None or channels(node) is None:
            return new
        have = node.meta["keep"]
        if torch.equal(have, wanted):
            return new
        key = (node, wanted.numpy().tobytes())
        if key in self.layouts:
            return self.layouts[key]
        position = torch.full((len(have),), int(have.sum()), dtype=torch.long)  # missing: the zero channel
        position[have] = torch.arange(int(have.sum()))
        index = position[wanted]
        source = new
        if bool((~have & wanted).any()):
            rank = len(node.meta["tensor_meta"].shape)
            source = self.graph.call_function(F.pad, (new, (0, 0) * (rank - 2) + (0, 1)))
        idx = self.constant(f"{node.name}_index", index)
        self.layouts[key] = out = self.graph.call_function(torch.index_select, (source, 1, idx))
        return out

    def args(self, node: fx.Node, wanted) -> tuple:
        """`node`'s arguments, each tensor operand laid out as `wanted(operand)` wants it."""
        return fx.node.map_arg((node.args, node.kwargs), lambda n: self.value_as(n, wanted(n)))

    def module(self, node: fx.Node, module: nn.Module, args: tuple, kwargs: dict) -> fx.Node:
        name = self.name(node.target)
        self.root.add_module(name, module)
        return self.graph.call_module(name, args, kwargs)

    def add(self, node: fx.Node) -> None:
        kind = node.meta.get("prune_kind", "opaque")
        keep = node.meta.get("keep")
        if node.op == "placeholder":
            self.env[node] = self.graph.placeholder(node.name)
        elif node.op == "output":
            self.graph.output(self.value_as(node.args[0], torch.ones(channels(node.args[0]), dtype=torch.bool)))
        elif node.op == "get_attr":
            value = _attr(self.backbone, node.target)
            self.env[node] = self.constant(node.target, value.detach().clone())
        elif kind == "mask":
            (x,) = tensor_inputs(node)
            value = self.value_as(x, keep)
            kept = node.meta["unit_mask"][keep]
            if not bool((kept == 1).all()):
                value = self.graph.call_function(_scale, (value, self.constant(f"{node.name}_values", kept.clone())))
            self.env[node] = value
        elif kind in ("projection", "depthwise", "norm"):
            (x,) = tensor_inputs(node)
            keep_in = x.meta["keep"] if kind == "projection" else keep
            module = _sliced(node_module(self.backbone, node), node, keep_in, keep)
            self.env[node] = self.module(node, module, *self.args(node, lambda n: None if kind == "projection" else keep))
        elif kind in ("channelwise", "add", "flatten", "concat", "pad"):
            self.env[node] = self.rebuilt(node, kind, keep)
        else:  # opaque (and meta): the same operation on every channel of its operands
            self.env[node] = self.copy(node, lambda n: torch.ones(channels(n), dtype=torch.bool)
                                       if kind != "meta" else None)

    def rebuilt(self, node: fx.Node, kind: str, keep: torch.Tensor) -> fx.Node:
        if kind in ("channelwise", "add"):
            return self.copy(node, lambda n: keep)
        if kind == "flatten":
            r = flatten_repeat(node)
            return self.copy(node, lambda n: keep.view(-1, r).any(1))
        if kind == "pad":
            before, after = channel_pad(node)
            (x,) = tensor_inputs(node)
            return self.value_as(x, keep[before:width(node) - after])
        parts: dict[fx.Node, torch.Tensor] = {}
        for op, start, stop in concat_slices(node):
            parts.setdefault(op, keep[start:stop])
        return self.copy(node, lambda n: parts[n])

    def copy(self, node: fx.Node, wanted) -> fx.Node:
        args, kwargs = self.args(node, wanted)
        if node.op == "call_module":
            return self.module(node, copy.deepcopy(node_module(self.backbone, node)), args, kwargs)
        return self.graph.create_node(node.op, node.target, args, kwargs, name=node.name)


def _scale(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    return x * values.view((1, -1) + (1,) * (x.dim() - 2))


def _attr(root: nn.Module, target: str):
    value = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


def build(backbone: nn.Module, graph: fx.Graph, class_name: str = "TaskNetwork") -> fx.GraphModule:
    builder = _Builder(backbone)
    for node in graph.nodes:
        builder.add(node)
    builder.graph.lint()
    module = fx.GraphModule(builder.root, builder.graph, class_name=class_name)
    return module.eval()
