"""The catalogue of builtin operations: their arguments, the torch.nn class they build, and how they
change a shape. Pure data and arithmetic; no torch import (so `specc check` stays instant)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    """A tensor shape without the batch dimension: (features,) or (channels, height, width).

    Height and width may be None when the spec's input does not state them."""

    dims: tuple

    @property
    def is_image(self) -> bool:
        return len(self.dims) == 3

    @property
    def units(self):
        return self.dims[0]

    def __str__(self) -> str:
        return "(" + ", ".join("?" if d is None else str(d) for d in self.dims) + ")"

# Activation classes of torch.nn a spec may name, with their (keyword, type, default) arguments.
ACTIVATIONS: dict[str, tuple[tuple[str, str, object], ...]] = {
    "ReLU": (), "ReLU6": (), "GELU": (("approximate", "str", "none"),), "Tanh": (), "Sigmoid": (),
    "SiLU": (), "Mish": (), "Hardswish": (), "Hardsigmoid": (), "Softplus": (("beta", "float", 1.0),),
    "LeakyReLU": (("negative_slope", "float", 0.01),), "ELU": (("alpha", "float", 1.0),),
    "CELU": (("alpha", "float", 1.0),), "SELU": (), "Hardtanh": (("min_val", "float", -1.0), ("max_val", "float", 1.0)),
    "Identity": (),
}


@dataclass(frozen=True)
class OpSpec:
    name: str
    params: tuple[tuple[str, str, object], ...]  # (name, type, default); default REQUIRED = no default
    torch_class: str | None  # None: a function, no module (flatten, identity)
    weighted: bool
    accepts: str  # "features" | "image" | "any"


REQUIRED = object()

# torch.nn classes by role, for the analysis and the passes.
BATCH_NORMS = ("BatchNorm1d", "BatchNorm2d")
PROJECTIONS = ("Linear", "Conv2d")

OPS: dict[str, OpSpec] = {
    "linear": OpSpec("linear", (("out_features", "int", REQUIRED), ("bias", "bool", True)), "Linear", True, "features"),
    "conv2d": OpSpec("conv2d", (("out_channels", "int", REQUIRED), ("kernel", "int", REQUIRED), ("stride", "int", 1),
                                ("padding", "int", 0), ("dilation", "int", 1), ("groups", "int", 1),
                                ("bias", "bool", True)), "Conv2d", True, "image"),
    "batchnorm1d": OpSpec("batchnorm1d", (("eps", "float", 1e-5), ("momentum", "float", 0.1)), "BatchNorm1d", False, "features"),
    "batchnorm2d": OpSpec("batchnorm2d", (("eps", "float", 1e-5), ("momentum", "float", 0.1)), "BatchNorm2d", False, "image"),
    "dropout": OpSpec("dropout", (("p", "float", 0.5),), "Dropout", False, "any"),
    "maxpool2d": OpSpec("maxpool2d", (("kernel", "int", REQUIRED), ("stride", "int?", None), ("padding", "int", 0)),
                        "MaxPool2d", False, "image"),
    "avgpool2d": OpSpec("avgpool2d", (("kernel", "int", REQUIRED), ("stride", "int?", None), ("padding", "int", 0)),
                        "AvgPool2d", False, "image"),
    "adaptive_avgpool2d": OpSpec("adaptive_avgpool2d", (("size", "int", REQUIRED),), "AdaptiveAvgPool2d", False, "image"),
    "flatten": OpSpec("flatten", (), None, False, "any"),
    "identity": OpSpec("identity", (), None, False, "any"),
}


def _window(size, kernel: int, stride: int, padding: int, dilation: int = 1):
    if size is None:
        return None
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def out_shape(op: str, a: dict, s: Shape) -> Shape:
    """The output shape of builtin `op` with bound arguments `a` on input shape `s`."""
    if op == "linear":
        return Shape((a["out_features"],))
    if op == "conv2d":
        _, h, w = s.dims
        k, st, p, d = a["kernel"], a["stride"], a["padding"], a["dilation"]
        return Shape((a["out_channels"], _window(h, k, st, p, d), _window(w, k, st, p, d)))
    if op in ("maxpool2d", "avgpool2d"):
        c, h, w = s.dims
        st = a["stride"] if a["stride"] is not None else a["kernel"]
        return Shape((c, _window(h, a["kernel"], st, a["padding"]), _window(w, a["kernel"], st, a["padding"])))
    if op == "adaptive_avgpool2d":
        return Shape((s.dims[0], a["size"], a["size"]))
    if op == "flatten":
        if not s.is_image:
            return s
        c, h, w = s.dims
        return Shape((c * h * w if h is not None and w is not None else None,))
    return s  # batch norm, dropout, activations, identity keep the shape


def torch_kwargs(op: str, a: dict, s: Shape) -> dict:
    """Constructor keyword arguments of the torch.nn class, sizes inferred from the input shape."""
    if op == "linear":
        return {"in_features": s.units, "out_features": a["out_features"], "bias": a["bias"]}
    if op == "conv2d":
        return {"in_channels": s.units, "out_channels": a["out_channels"], "kernel_size": a["kernel"],
                "stride": a["stride"], "padding": a["padding"], "dilation": a["dilation"],
                "groups": a["groups"], "bias": a["bias"]}
    if op in ("batchnorm1d", "batchnorm2d"):
        return {"num_features": s.units, "eps": a["eps"], "momentum": a["momentum"]}
    if op == "dropout":
        return {"p": a["p"]}
    if op in ("maxpool2d", "avgpool2d"):
        return {"kernel_size": a["kernel"], "stride": a["stride"], "padding": a["padding"]}
    if op == "adaptive_avgpool2d":
        return {"output_size": (a["size"], a["size"])}
    raise KeyError(op)




def check(op: str, a: dict, s: Shape) -> str | None:
    """A problem with applying `op` to shape `s`, or None."""
    spec = OPS[op]
    if spec.accepts == "features" and s.is_image:
        return f"{op} expects features but gets an image of shape {s}"
    if spec.accepts == "image" and not s.is_image:
        return f"{op} expects an image (channels, height, width) but gets features of shape {s}"
    if spec.torch_class is not None and s.units is None:
        return f"cannot infer the input size of {op}: the incoming shape is {s}"
    # Every argument is checked here, at check time and with the spec's position, never left to
    # torch at build time (and none may reach a division by zero below).
    if op == "conv2d":
        if a["out_channels"] <= 0 or a["kernel"] <= 0 or a["stride"] <= 0 or a["padding"] < 0:
            return "conv2d needs out_channels, kernel and stride > 0 and padding >= 0"
        if a["dilation"] <= 0:
            return f"conv2d needs dilation > 0, got {a['dilation']}"
        if a["groups"] <= 0:
            return f"conv2d needs groups > 0, got {a['groups']}"
        if s.units % a["groups"] or a["out_channels"] % a["groups"]:
            return f"conv2d groups={a['groups']} must divide in_channels={s.units} and out_channels"
    if op in ("maxpool2d", "avgpool2d"):
        if a["kernel"] <= 0 or (a["stride"] is not None and a["stride"] <= 0) or a["padding"] < 0:
            return f"{op} needs kernel and stride > 0 and padding >= 0"
        if 2 * a["padding"] > a["kernel"]:
            return f"{op} padding must be at most half the kernel, got padding={a['padding']} for kernel={a['kernel']}"
    if op == "adaptive_avgpool2d" and a["size"] <= 0:
        return f"adaptive_avgpool2d needs size > 0, got {a['size']}"
    if op in ("batchnorm1d", "batchnorm2d"):
        if not a["eps"] > 0:
            return f"{op} needs eps > 0, got {a['eps']}"
        if not 0.0 <= a["momentum"] <= 1.0:
            return f"{op} momentum must be in [0, 1], got {a['momentum']}"
    if op == "linear" and a["out_features"] <= 0:
        return "linear needs out_features > 0"
    if op == "dropout" and not 0.0 <= a["p"] <= 1.0:
        return f"dropout probability must be in [0, 1], got {a['p']}"
    out = out_shape(op, a, s)
    if out.is_image and any(d is not None and d <= 0 for d in out.dims[1:]):
        return f"{op} leaves no spatial extent: {s} -> {out}"
    if any(d is not None and d >= 1 << 63 for d in out.dims):
        return f"{op} makes a shape too large: {out}"
    return None


# Values an activation's string arguments may take (torch checks them only when it runs).
_CHOICES = {("GELU", "approximate"): ("none", "tanh")}


def check_activation(name: str, a: dict) -> str | None:
    """A problem with the arguments of catalogue activation `name`, or None."""
    for arg, value in a.items():
        choices = _CHOICES.get((name, arg))
        if choices is not None and value not in choices:
            return f"{name} {arg} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}"
    if name == "Hardtanh" and not a["min_val"] < a["max_val"]:
        return f"Hardtanh needs min_val < max_val, got {a['min_val']} and {a['max_val']}"
    if name == "CELU" and a["alpha"] == 0:
        return "CELU needs alpha != 0"
    if name == "Softplus" and a["beta"] == 0:
        return "Softplus needs beta != 0"
    return None
