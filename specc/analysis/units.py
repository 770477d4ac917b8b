"""Unit owners: for every node, the segments of units its value carries (see graph.Segment).

A weighted layer creates its own units; a shortcut projection creates fresh, unowned ones (the add
it feeds ties them to a mask); unit-preserving operations pass the main operand's units on; a
flatten spreads each unit of an image over its height * width features; a concat lays its
operands' segments side by side; a pad adds unowned units. A residual add carries the units of
its main operand and records, as `meta["tied_units"]`, the owners of every operand."""
from __future__ import annotations

from .graph import UNIT_PRESERVING, AnalysisError, Graph, Segment


def _flatten(segments: tuple[Segment, ...], spatial: int | None, is_image: bool) -> tuple[Segment, ...]:
    if not is_image:
        return segments
    return tuple(Segment(s.owner, s.size, None if (s.repeat is None or spatial is None) else s.repeat * spatial)
                 for s in segments)


def assign_units(graph: Graph) -> None:
    for n in graph.nodes:
        if n.role == "input":
            n.meta["units"] = (Segment(None, n.units),)
            n.meta["image"] = bool(n.meta.get("image"))
            continue
        if n.role == "output":
            continue
        ins = [graph.nodes[i] for i in n.inputs]
        main = ins[n.meta.get("main_operand", 0)] if ins else None
        if n.role == "projection":
            owner = n.name if n.meta.get("weighted") else None
            n.meta["units"] = (Segment(owner, n.units),)
            n.meta["image"] = n.meta.get("image", main.meta.get("image") if main else False)
        elif n.role in UNIT_PRESERVING:
            n.meta["units"] = main.meta["units"]
            n.meta["image"] = main.meta["image"]
            if n.role == "add":
                n.meta["tied_units"] = [seg.owner for i in ins for seg in i.meta["units"]]
        elif n.role == "flatten":
            n.meta["units"] = _flatten(main.meta["units"], n.spatial, main.meta["image"])
            n.meta["image"] = False
        elif n.role == "concat":
            n.meta["units"] = tuple(seg for i in ins for seg in i.meta["units"])
            n.meta["image"] = main.meta["image"]
        elif n.role == "pad":
            before, after = n.pad or (0, 0)
            n.meta["units"] = ((Segment(None, before),) if before else ()) + main.meta["units"] + (
                (Segment(None, after),) if after else ())
            n.meta["image"] = main.meta["image"]
        else:
            raise AnalysisError(f"cannot tell what '{n.name}' does to the units of its input", n)
