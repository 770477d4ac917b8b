"""Mask points: where each weighted layer's unit mask must be applied so that a masked unit reaches
every later layer as exactly zero.

From the layer, its chain is followed while the layer's units flow through exactly one consumer
that keeps them unit for unit (batch norm, activation, dropout, pooling, a residual add or a gate
product of which they are the main operand). A gate (`mul`) keeps zeros of the stream; a gate
value masked to zero zeroes the product's unit, so a gate branch's last layer is masked like any
other (after its sigmoid, the last op that moves a zero) and its zeros reach the product as zero. Along the
chain, every operation that can turn a zero into something
else (the layer's own bias, batch norm, a residual add, an activation with f(0) != 0) must come
before the mask: the mask point is the last such operation. With CLArena's order (layer, batch
norm, [add,] activation) that is after the batch norm / add and before the activation; with
`conv -> activation -> batch norm` it is after the batch norm.

A chain ends before a residual add on a transformer's stream (units.py): a masked unit of the
branch (attention's proj, the MLP's fc2) is added to the stream as exactly 0, and the stream, which
LayerNorms mix, is no layer's to mask. Attention's heads (between qkv and proj) keep a zero of v.

Beyond the mask point the units are followed to the next layers; an operation there that moves
zeros (a batch norm after a flatten, a second chain after a fork) would break the guarantee, and
is reported instead of masked silently."""
from __future__ import annotations

from .graph import UNIT_PRESERVING, AnalysisError, Graph, Node


def _continues(graph: Graph, cur: Node, nxt: Node) -> bool:
    if nxt.role in ("add", "gate"):
        return nxt.inputs[nxt.meta["main_operand"]] == cur.id
    return nxt.role in UNIT_PRESERVING


def _data_users(graph: Graph, users: list[list[int]], nid: int) -> list[Node]:
    # The output node only records activations; it does not compute with them.
    return [graph.nodes[u] for u in users[nid] if graph.nodes[u].role != "output"]


MASK_POINTS = ("earliest", "chain_end")


def find_mask_points(graph: Graph, layers: list[str], layer_nodes: dict[str, int],
                     check: bool = True, point_rule: str = "earliest") -> dict[str, int]:
    """`point`: "earliest", after the chain's last op that could move a zero (CLArena's placement);
    "chain_end", after the chain's last op (the HAT paper's AlexNet masks after ReLU, dropout and
    max pool). Either keeps a masked unit zero: every zero-mover of the chain comes before it."""
    if point_rule not in MASK_POINTS:
        raise ValueError(f"mask point must be one of {MASK_POINTS}, got {point_rule!r}")
    users = graph.users()
    points = {}
    for layer in layers:
        cur = graph.nodes[layer_nodes[layer]]
        point = cur
        chain = [cur]
        while True:
            nxt = _data_users(graph, users, cur.id)
            if len(nxt) != 1 or not _continues(graph, cur, nxt[0]):
                break
            cur = nxt[0]
            chain.append(cur)
            if not cur.keeps_zero or point_rule == "chain_end":
                point = cur
        for n in chain:
            n.meta["chain_of"] = layer
        point.meta["mask_point_of"] = layer
        points[layer] = point.id
        if check:
            _check_beyond(graph, users, point, layer)
    return points


def _check_beyond(graph: Graph, users: list[list[int]], point: Node, layer: str) -> None:
    """Follow the masked units to the next projections; no zero may be moved on the way."""
    stack = [point.id]
    seen = set()
    while stack:
        nid = stack.pop()
        for u in _data_users(graph, users, nid):
            if u.id in seen or u.role in ("projection", "embed"):
                continue  # the next layer, or the entry into a transformer's residual stream (its
                # units no layer's): the masked unit arrives there as 0
            seen.add(u.id)
            if u.role == "add" and u.inputs[u.meta["main_operand"]] != nid:
                continue  # our units are the shortcut of another layer's add: its mask governs
            if u.role == "gate" and u.inputs[u.meta["main_operand"]] != nid:
                continue  # our units gate the stream: a zero gate makes the product's unit zero, and
                # the product carries the stream's units, which their own layer's mask governs
            if u.role == "add" and "mask_point_of" in u.meta:
                continue
            if u.role == "add":
                raise AnalysisError(
                    f"the residual add '{u.name}' follows the unit mask of '{layer}' outside its chain (its "
                    f"units fork first, e.g. into a gate branch), so the shortcut would be added to a masked "
                    f"unit of '{layer}' after its mask; HAT cannot mask this exactly: gate after the add "
                    "(`-> add(b) -> mul(g)`), or mask parameters with `mask wsn()`", u)
            if not u.keeps_zero and u.role != "add":
                raise AnalysisError(
                    f"'{u.name}' follows the unit mask of '{layer}' and does not keep a zero unit zero, "
                    f"so a masked unit of '{layer}' would not reach the next layer as zero; HAT needs "
                    f"every op that can move a zero inside '{layer}''s own chain, before its units fork, "
                    "are concatenated or flattened. Pre-activation layouts (a batch norm opening a "
                    "residual block or following a concatenation: pre-activation ResNets, WideResNets, "
                    "DenseNet) cannot be masked exactly: write conv -> batch norm -> activation, or mask "
                    "parameters with `mask wsn()`", u)
            stack.append(u.id)
