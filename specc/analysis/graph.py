"""The graph the analysis reads: tensor operations in execution order, each with its role.

Two adapters build it: specc/frontend/facts.py from the elaborated IR (for check, show, graph) and
specc/runtime/fx_graph.py from a traced fx graph (for the masking passes). The analysis writes what
it learns about a node into `node.meta` and what it learns about the network into `Facts`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

# Roles through which the units of the main operand pass unchanged (one unit in, the same unit out).
UNIT_PRESERVING = ("norm", "activation", "dropout", "pool", "identity", "scale", "subsample", "add", "gate",
                   "broadcast", "tokens")


class Segment(NamedTuple):
    """A run of units along a tensor's unit axis (channels of an image, features once flat).

    `owner` is the weighted layer that produced them (None: network input, a shortcut projection's
    fresh units, zero padding); `size` is how many units (None when the adapter cannot tell);
    `repeat` how many consecutive features each unit occupies (height * width after a flatten;
    None when only the consumer can tell); `start` the first of the owner's units in the run (v's
    units of an attention's qkv start at 2 * dim: specc/runtime/tokens.py)."""

    owner: str | None
    size: int | None
    repeat: int | None = 1
    start: int = 0


@dataclass(eq=False)
class Node:
    id: int
    role: str  # "input", "output", or a role of specc.core.roles
    inputs: list[int]  # tensor operands, as written
    name: str  # module path with '/' for module calls; a display name otherwise
    keeps_zero: bool = True
    module: bool = False  # a call of a module (named by `name`)
    units: int | None = None  # projections: output units
    in_units: int | None = None  # projections: input units
    groups: int = 1  # projections: convolution groups
    spatial: int | None = None  # flatten: height * width of its image input, when known
    pad: tuple[int, int] | None = None  # pad: units added before and after
    shortcut_operand: int | None = None  # add: index of the operand declared as the shortcut
    where: object = None  # the adapter's own node, for messages
    meta: dict = field(default_factory=dict)


class AnalysisError(Exception):
    """The graph cannot be masked as asked; `node` is where (an analysis Node)."""

    def __init__(self, message: str, node: Node | None = None):
        super().__init__(message)
        self.node = node


@dataclass
class Graph:
    nodes: list[Node]  # in execution (topological) order
    records: dict[str, int] = field(default_factory=dict)  # layer -> node recorded as its activation
    output: int | None = None  # node whose value is the feature

    def users(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in self.nodes]
        for n in self.nodes:
            for i in dict.fromkeys(n.inputs):
                out[i].append(n.id)
        return out


@dataclass
class Facts:
    weighted_layer_names: list[str]
    preceding: dict[str, str | None]
    next: dict[str, str | None]
    graph_preceding: dict[str, list[str]]  # owners of the units a layer's inputs carry
    graph_next: dict[str, list[str]]
    input_segments: dict[str, tuple[Segment, ...]]  # the units of each layer's input, in order
    mask_points: dict[str, int]  # layer -> node after which its unit mask applies
    tied_to: dict[str, str]  # weighted shortcut projection -> layer whose mask it shares
    layer_nodes: dict[str, int]  # layer -> its node
    # parameters kept per task (HAT on a transformer: its class token and position embedding), as
    # the runtime's rewrite finds them (specc/runtime/schemes/hat.py)
    task_parameters: tuple[str, ...] = ()

    # What the passes find; the neighbours are derived from it (`of`).
    FOUND = ("weighted_layer_names", "input_segments", "mask_points", "tied_to", "layer_nodes", "task_parameters")

    @classmethod
    def of(cls, weighted_layer_names: list[str], input_segments: dict[str, tuple[Segment, ...]],
           mask_points: dict[str, int], tied_to: dict[str, str], layer_nodes: dict[str, int],
           task_parameters: tuple[str, ...] = ()) -> Facts:
        """The facts with each layer's neighbours: in the list (the seed's preceding/next) and in
        the graph (the owners of the units its input carries, and the reverse)."""
        names = weighted_layer_names
        graph_preceding = {name: list(dict.fromkeys(s.owner for s in segs if s.owner is not None))
                           for name, segs in input_segments.items()}
        graph_next: dict[str, list[str]] = {name: [] for name in names}
        for name, owners in graph_preceding.items():
            for owner in owners:
                if owner in graph_next:
                    graph_next[owner].append(name)
        return cls(
            weighted_layer_names=names,
            preceding={n: (names[i - 1] if i else None) for i, n in enumerate(names)},
            next={n: (names[i + 1] if i + 1 < len(names) else None) for i, n in enumerate(names)},
            graph_preceding=graph_preceding,
            graph_next=graph_next,
            input_segments=input_segments,
            mask_points=mask_points,
            tied_to=tied_to,
            layer_nodes=layer_nodes,
            task_parameters=tuple(task_parameters),
        )
