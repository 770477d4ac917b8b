"""Unit owners: for every node, the segments of units its value carries (see graph.Segment).

A weighted layer creates its own units; a shortcut projection creates fresh, unowned ones (the add
it feeds ties them to a mask); unit-preserving operations pass the main operand's units on; a
flatten spreads each unit of an image (a signal) over its height * width (length) features; a concat lays its
operands' segments side by side; a pad adds unowned units. A residual add carries the units of
its main operand and records, as `meta["tied_units"]`, the owners of every operand."""
from __future__ import annotations

from .graph import UNIT_PRESERVING, AnalysisError, Graph, Segment


def _flatten(segments: tuple[Segment, ...], spatial: int | None, view) -> tuple[Segment, ...]:
    if view is None:  # units on the last axis (features): a flatten keeps them in place
        return segments
    return tuple(Segment(s.owner, s.size, None if (s.repeat is None or spatial is None) else s.repeat * spatial)
                 for s in segments)


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
        elif n.role in UNIT_PRESERVING:
            n.meta["units"] = main.meta["units"]
            n.meta["view"] = main.meta["view"]
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
