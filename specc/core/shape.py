"""The shape of a value without the batch dimension, and its kind. No torch import.

Kinds, with their dimensions:
- "features": (D,)            a feature vector; its units are the D features
- "signal":   (C, L)          a 1-d signal (conv1d's input); its units are the C channels
- "image":    (C, H, W)       an image; its units are the C channels
- "tokens":   (L, D)          a sequence of L tokens of D features; its units are the D features
                              (the last axis, as nn.Linear and nn.LayerNorm read it)

A kind is told by the number of dimensions except for tokens, which is named: a signal and a
token sequence both have two. Spatial sizes (H, W, L) may be None when the spec leaves them open.
"""
from __future__ import annotations

from dataclasses import dataclass

_BY_RANK = {1: "features", 2: "signal", 3: "image"}
KINDS = ("features", "signal", "image", "tokens")
# How a kind is named in messages: what a layer expects, and what it gets.
EXPECTS = {"features": "features", "signal": "a signal (channels, length)",
           "image": "an image (channels, height, width)", "tokens": "tokens (length, features)"}
GETS = {"features": "features", "signal": "a signal", "image": "an image", "tokens": "tokens"}
# The attributes `in.NAME` reads, by kind: the index of the dimension.
FIELDS = {"features": {"features": 0, "units": 0}, "signal": {"channels": 0, "length": 1, "units": 0},
          "image": {"channels": 0, "height": 1, "width": 2, "units": 0},
          "tokens": {"length": 0, "features": 1, "units": 1}}


@dataclass(frozen=True)
class Shape:
    dims: tuple
    kind: str = ""  # one of KINDS; left out: told by the number of dimensions

    def __post_init__(self):
        if not self.kind:
            object.__setattr__(self, "kind", _BY_RANK.get(len(self.dims), "features"))

    @classmethod
    def tokens(cls, length, features) -> Shape:
        return cls((length, features), "tokens")

    @property
    def unit_axis(self) -> int:
        return len(self.dims) - 1 if self.kind == "tokens" else 0

    @property
    def units(self):
        return self.dims[self.unit_axis]

    @property
    def spatial(self) -> tuple:
        """The sizes after the unit axis (height and width, length): each unit spreads over them
        when the value is flattened. Empty for features and tokens."""
        return self.dims[1:] if self.kind in ("signal", "image") else ()

    @property
    def unit_view(self) -> tuple | None:
        """How a per-unit vector (a HAT mask) is viewed to broadcast over a batch of this shape;
        None when it broadcasts as it is (units on the last axis)."""
        return (1, -1) + (1,) * len(self.spatial) if self.spatial else None

    def with_units(self, units) -> Shape:
        dims = list(self.dims)
        dims[self.unit_axis] = units
        return Shape(tuple(dims), self.kind)

    def __str__(self) -> str:
        return "(" + ", ".join("?" if d is None else str(d) for d in self.dims) + ")"


def window(size, kernel: int, stride: int, padding: int, dilation: int = 1, ceil_mode: bool = False):
    """torch's output size of a convolution or pooling window along one axis."""
    if size is None:
        return None
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:  # the last window would start in the padding only
        out -= 1
    return out


def gate_problem(stream: Shape, gate: Shape) -> str | None:
    """Why `gate` cannot scale `stream` unit by unit (`mul(b)`), or None. The gate carries one value
    per unit of the stream, for every sample: features (C,) or the stream's kind with every size
    after the units 1 ((C, 1, 1) for an image); it is broadcast over the stream's other sizes.
    Token streams are left out: their units sit on the last axis, so a (C,) gate would scale the
    wrong axis after broadcasting."""
    if stream.kind == "tokens" or gate.kind == "tokens":
        return "mul does not take tokens: the gate must be features (C,) and the stream features or an image"
    if gate.kind != "features" and (gate.kind != stream.kind or any(d != 1 for d in gate.spatial)):
        return (f"the gate has shape {gate}; it must be features (C,) or {stream.kind} (C"
                + ", 1" * len(stream.spatial) + ") to broadcast over the stream")
    if gate.units is not None and stream.units is not None and gate.units != stream.units:
        return (f"the gate has {gate.units} units and the stream {stream.units}: a gate gives one "
                "factor per unit (channel) of the stream")
    return None
