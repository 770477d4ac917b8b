"""Lowering: IR -> the plain nn.Module tree and the torch.fx Graph of its forward.

The module tree is built from `Network.modules` (the spec's declaration order), never from the
graph: `fx.GraphModule(root, graph)` would copy only the submodules the graph calls, in first-use
order, which changes state_dict order and drops modules the forward does not call. The graph is
used for the forward only.
"""
from __future__ import annotations

import operator

import torch
from torch import fx, nn

from .frontend.ir import Network


class SpecBlock(nn.Module):
    """The container of one block instance (a ResNet building block, ...)."""

    def __init__(self, block_name: str):
        super().__init__()
        self.block_name = block_name

    def extra_repr(self) -> str:
        return f"block={self.block_name}"


def make_module(decl) -> nn.Module:
    if decl.cls == "ModuleList":
        return nn.ModuleList()
    if decl.cls == "Sequential":
        return nn.Sequential()
    if decl.cls == "Block":
        return SpecBlock(decl.block)
    cls = decl.cls if isinstance(decl.cls, type) else getattr(nn, decl.cls)
    return cls(**decl.kwargs)


def build_modules(owner: nn.Module, net: Network) -> None:
    """Create every declared module under `owner`, parents before children, in declaration order."""
    made: dict[tuple, nn.Module] = {(): owner}
    for decl in net.modules:
        parent = made[decl.path[:-1]]
        module = make_module(decl)
        if isinstance(parent, nn.ModuleList):
            parent.append(module)  # indices are checked consecutive by the elaborator
        else:
            parent.add_module(decl.path[-1], module)
        made[decl.path] = module


def build_graph(net: Network) -> fx.Graph:
    """The forward as an fx Graph: `(input) -> (feature, {weighted layer: activation})`.

    Each fx node carries the IR facts of the node it comes from in `node.meta["specc"]`
    (the IR node id, its unit owner, the mask point it is), which the masking passes read."""
    g = fx.Graph()
    value: dict[int, fx.Node] = {}
    for nid in net.topo_order:
        n = net.nodes[nid]
        if n.op == "input":
            v = g.placeholder("input")
        elif n.op == "flatten":
            v = g.call_function(torch.flatten, (value[n.inputs[0]], 1))
        elif n.op == "add":
            v = g.call_function(operator.add, (value[n.inputs[0]], value[n.inputs[1]]))
        elif n.op == "call_module":
            v = g.call_module(".".join(n.module), (value[n.inputs[0]],))
        else:  # the elaborator creates no other kinds; this keeps a new kind from slipping by
            raise AssertionError(f"cannot lower IR node kind {n.op!r}")
        v.meta["specc"] = {"ir_node": nid, **n.meta}
        value[nid] = v
    activations = {name: value[net.records[name]] for name in net.weighted_layer_names if name in net.records}
    g.output((value[net.output], activations))
    g.lint()
    return g


_compiled: dict[str, object] = {}


def compile_graph(graph: fx.Graph):
    """The graph's Python code as a function `forward(self, input)` over the module tree.

    Compiled code is cached by its text: every instance with the same structure shares one
    function. Modules keep it out of their pickled state and recompile it on load
    (specc.runtime.compiled)."""
    code = graph.python_code(root_module="self")
    fn = _compiled.get(code.src)
    if fn is None:
        namespace = dict(code.globals)
        exec(compile(code.src, "<specc forward>", "exec"), namespace)
        fn = namespace["forward"]
        _compiled[code.src] = fn
    return fn
