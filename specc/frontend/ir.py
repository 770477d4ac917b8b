"""The IR: an elaborated network with concrete sizes.

Two views of one network:
- `modules`: the module tree as the spec declares it (paths, torch class names and constructor
  arguments, registration order). Lowering builds the nn.Module tree from this, so state_dict keys
  and their order follow the spec, not the forward's call order.
- `nodes`: the data-flow graph (one node per call), from which the analysis derives the
  weighted-layer order and unit facts, and lowering derives the fx graph.

Facts the analysis learns about a node live in `node.meta`; facts about the network in the
`Network` fields it fills. Nothing here imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..core.layers import Shape
from .errors import Pos


@dataclass
class ModuleDecl:
    path: tuple[str, ...]
    cls: str  # torch.nn class name, or "ModuleList" / "Sequential" / "Block" for containers
    kwargs: dict  # constructor keyword arguments (concrete values)
    pos: Pos
    order: tuple  # declaration-order key: registration order among siblings
    block: str | None = None  # for Block containers: the block's name

    @property
    def name(self) -> str:
        """The CLArena-style name: module path with '/' separators."""
        return "/".join(self.path)


@dataclass
class Node:
    id: int
    op: str  # input | call_module | flatten | add
    module: tuple[str, ...] | None  # the module called (call_module)
    inputs: list[int]
    shape: Shape  # output shape
    pos: Pos
    order: tuple  # declaration-order key, the tie-break of the topological order
    weighted: bool = False  # a linear/conv on the main path (see specc/analysis)
    in_branch: bool = False  # created inside a `branch` (a shortcut path)
    chain_layer: str | None = None  # the weighted layer whose chain this node belongs to
    meta: dict = field(default_factory=dict)

    @property
    def name(self) -> str | None:
        return "/".join(self.module) if self.module else None


@dataclass
class Param:
    name: str
    type: str  # as written in the spec, e.g. "list[int]", "activation?"
    has_default: bool
    default: object
    value: object  # the bound value this IR was elaborated with


@dataclass
class Network:
    spec_path: str
    class_name: str
    network_name: str
    base: str  # Backbone | CLBackbone
    mask_scheme: str | None
    params: list[Param]  # the class's constructor parameters, with the values bound
    modules: list[ModuleDecl]  # in registration order (parents before children)
    nodes: list[Node]
    output: int  # id of the node whose value is the output feature
    records: dict[str, int]  # weighted layer name -> node whose value is recorded as its activation
    scheme_options: dict = field(default_factory=dict)  # the `mask` declaration's options
    # Shortcut projections are weighted layers too (WSN; HAT's protect_shortcuts).
    weights_branches: bool = False
    # Filled by the analysis (specc/analysis, through specc/frontend/facts.py):
    topo_order: list[int] = field(default_factory=list)
    weighted_layer_names: list[str] = field(default_factory=list)
    preceding: dict[str, str | None] = field(default_factory=dict)
    next: dict[str, str | None] = field(default_factory=dict)
    graph_preceding: dict[str, list[str]] = field(default_factory=dict)
    graph_next: dict[str, list[str]] = field(default_factory=dict)
    tied_to: dict[str, str] = field(default_factory=dict)
    input_unit_repeat: dict[str, int | None] = field(default_factory=dict)
    facts: object = None  # the analysis' specc.analysis.Facts

    def module(self, path: tuple[str, ...]) -> ModuleDecl:
        # An index by path, rebuilt when `modules` changes length: one lookup per layer must not
        # scan every module (a 30,000-layer network would take minutes).
        index = self.__dict__.get("_module_index")
        if index is None or index[0] is not self.modules or index[1] != len(self.modules):
            index = (self.modules, len(self.modules), {m.path: m for m in self.modules})
            self.__dict__["_module_index"] = index
        return index[2][path]
