"""Unit owners: for every node, the segments of units its value carries (see graph.Segment).

A weighted layer creates its own units; a shortcut projection creates fresh, unowned ones (the add
it feeds ties them to a mask); unit-preserving operations pass the main operand's units on; a
flatten spreads each unit of an image (a signal) over its height * width (length) features; a concat lays its
operands' segments side by side; a pad adds unowned units. A residual add carries the units of
its main operand and records, as `meta["tied_units"]`, the owners of every operand.

Transformers: attention's heads carry v's units of qkv (`Segment.start`: 2 * dim); the class token
and position embedding start a residual stream of unowned units (`meta["stream"]`), and an add on the
stream keeps the stream's units (the stream is its main operand), so the branch added to it (proj,
fc2) is masked before the add and nothing after a LayerNorm of the stream is any layer's."""
from __future__ import annotations

from .graph import UNIT_PRESERVING, AnalysisError, Graph, Segment


def _flatten(segments: tuple[Segment, ...], spatial: int | None, view) -> tuple[Segment, ...]:
    if view is None:  # units on the last axis (features): a flatten keeps them in place
        return segments
    return tuple(Segment(s.owner, s.size, None if (s.repeat is None or spatial is None) else s.repeat * spatial,
                         s.start) for s in segments)


def _size(segments: tuple[Segment, ...]) -> int | None:
    sizes = [s.size for s in segments]
    known = [s for s in sizes if s is not None]
    return sum(known) if len(known) == len(sizes) else None


def _heads(n, qkv: tuple[Segment, ...]) -> tuple[Segment, ...]:
    """Attention's heads output: unit i is made from v's unit i alone (unit 2 * dim + i of qkv's
    output; specc/runtime/tokens.py), so it carries that unit of qkv's owner."""
    width = _size(qkv)
    if len(qkv) != 1 or width is None or width % 3 or qkv[0].repeat != 1:
        raise AnalysisError(f"cannot tell which units of its qkv input '{n.name}' passes on", n)
    (seg,) = qkv
    dim = width // 3
    return (Segment(seg.owner, dim, 1, seg.start + 2 * dim),)


def assign_units(graph: Graph) -> None:
    """Also `meta["view"]`: how a unit mask broadcasts over the node's value, (1, -1, 1, 1) for the
    channels of an image, (1, -1, 1) of a signal, None for units on the last axis (the adapters set
    it on inputs and projections, from the shape kind and the layer's catalogue entry)."""
    for n in graph.nodes:
        if n.role == "input":
            n.meta["units"] = (Segment(None, n.units),)
            n.meta["view"] = n.meta.get("view")
            continue
        if n.role == "output":
            continue
        ins = [graph.nodes[i] for i in n.inputs]
        main = ins[n.meta.get("main_operand", 0)] if ins else None
        if n.role == "projection":
            owner = n.name if n.meta.get("weighted") else None
            n.meta["units"] = (Segment(owner, n.units),)
            n.meta["view"] = n.meta["view"] if "view" in n.meta else (main.meta.get("view") if main else None)
        elif n.role == "broadcast":  # size-1 axes added after the units
            n.meta["units"] = main.meta["units"]
            view = n.meta.get("broadcast_view")
            if view is None:
                view = (main.meta["view"] or (1, -1)) + (1,) * n.meta.get("adds_axes", 0)
            n.meta["view"] = view
        elif n.role == "mixing":  # new units, owned by no weighted layer, on the last axis (tokens)
            n.meta["units"] = (Segment(None, n.units),)
            n.meta["view"] = None
        elif n.role == "embed":
            # tokens entering a transformer's residual stream (class token, position embedding): the
            # stream's units are no weighted layer's, and every residual add on it keeps them so
            n.meta["units"] = (Segment(None, _size(main.meta["units"])),)
            n.meta["view"] = None
            n.meta["stream"] = True
        elif n.role == "heads":
            n.meta["units"] = _heads(n, main.meta["units"])
            n.meta["view"] = None
        elif n.role == "add" and any(i.meta.get("stream") for i in ins):
            # x + branch(x) on the stream (pre-norm transformer blocks): the stream is the main operand
            # and keeps its (unowned) units; the branch's last layer is masked before the add, so a
            # masked unit adds exactly 0 to the stream
            stream = next(k for k, i in enumerate(ins) if i.meta.get("stream"))
            n.meta["main_operand"] = stream
            n.meta["units"] = ins[stream].meta["units"]
            n.meta["view"] = ins[stream].meta["view"]
            n.meta["stream"] = True
            n.meta["tied_units"] = [seg.owner for i in ins for seg in i.meta["units"]]
        elif n.role in UNIT_PRESERVING:
            n.meta["units"] = main.meta["units"]
            n.meta["view"] = None if n.role == "tokens" else main.meta["view"]
            if main.meta.get("stream"):
                n.meta["stream"] = True
            if n.role == "add":
                n.meta["tied_units"] = [seg.owner for i in ins for seg in i.meta["units"]]
        elif n.role == "flatten":
            n.meta["units"] = _flatten(main.meta["units"], n.spatial, main.meta["view"])
            n.meta["view"] = None
        elif n.role == "concat":
            n.meta["units"] = tuple(seg for i in ins for seg in i.meta["units"])
            n.meta["view"] = main.meta["view"]
        elif n.role == "pad":
            before, after = n.pad or (0, 0)
            n.meta["units"] = ((Segment(None, before),) if before else ()) + main.meta["units"] + (
                (Segment(None, after),) if after else ())
            n.meta["view"] = main.meta["view"]
        else:
            raise AnalysisError(f"cannot tell what '{n.name}' does to the units of its input", n)
