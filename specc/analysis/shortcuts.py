"""Residual adds: which operand is the main path, and which nodes only feed the shortcut.

An adapter may know the shortcut operand (the spec's `branch`, or generated code, which always
writes `main + shortcut`); otherwise the operand whose exclusive path back to the fork holds more
projections is the main path, the first operand on a tie (`out + identity`, as hand-written
ResNets write it). The nodes that feed only the shortcut operand (a projection and its batch norm)
get `meta["shortcut_of_add"]`: their projections are shortcut projections, not weighted layers,
unless the masking scheme weights them."""
from __future__ import annotations

from .graph import Graph


def _exclusive_feeders(graph: Graph, users: list[list[int]], start: int, sink: int) -> list[int]:
    """The nodes whose every use leads into `sink` through `start` (start included, if so)."""
    inside: set[int] = set()
    stack = [start]
    while stack:
        nid = stack.pop()
        n = graph.nodes[nid]
        if nid in inside or n.role == "input":
            continue
        if not all(u == sink or u in inside for u in users[nid]):
            continue
        inside.add(nid)
        stack.extend(n.inputs)
    return sorted(inside)


def mark_shortcuts(graph: Graph) -> None:
    users = graph.users()
    for add in graph.nodes:
        if add.role != "add" or len(add.inputs) != 2:
            continue
        sides = [_exclusive_feeders(graph, users, i, add.id) for i in add.inputs]
        if add.shortcut_operand is not None:
            shortcut = add.shortcut_operand
        else:
            count = [sum(graph.nodes[i].role == "projection" for i in side) for side in sides]
            shortcut = 0 if count[1] > count[0] else 1
        add.meta["main_operand"] = 1 - shortcut
        for nid in sides[shortcut]:
            graph.nodes[nid].meta["shortcut_of_add"] = add.id
