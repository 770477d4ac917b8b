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
# `inplace` (where torch has it) is accepted and written out; it changes no result: the elaborator
# refuses it where the overwritten input is read elsewhere.
_INPLACE = ("inplace", "bool", False)
ACTIVATIONS: dict[str, tuple[tuple[str, str, object], ...]] = {
    "ReLU": (_INPLACE,), "ReLU6": (_INPLACE,), "GELU": (("approximate", "str", "none"),), "Tanh": (),
    "Sigmoid": (), "SiLU": (_INPLACE,), "Mish": (_INPLACE,), "Hardswish": (_INPLACE,),
    "Hardsigmoid": (_INPLACE,), "Softplus": (("beta", "float", 1.0),),
    "LeakyReLU": (("negative_slope", "float", 0.01), _INPLACE), "ELU": (("alpha", "float", 1.0), _INPLACE),
    "CELU": (("alpha", "float", 1.0), _INPLACE), "SELU": (_INPLACE,),
    "Hardtanh": (("min_val", "float", -1.0), ("max_val", "float", 1.0), _INPLACE),
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
# Batch norm: torch.nn.BatchNorm{1,2}d's arguments (momentum none: a cumulative average).
_BN = (("eps", "float", 1e-5), ("momentum", "float?", 0.1), ("affine", "bool", True),
       ("track_running_stats", "bool", True))

# torch.nn classes by role, for the analysis and the passes.
BATCH_NORMS = ("BatchNorm1d", "BatchNorm2d")
PROJECTIONS = ("Linear", "Conv2d")

OPS: dict[str, OpSpec] = {
    "linear": OpSpec("linear", (("out_features", "int", REQUIRED), ("bias", "bool", True)), "Linear", True, "features"),
    "conv2d": OpSpec("conv2d", (("out_channels", "int", REQUIRED), ("kernel", "int", REQUIRED), ("stride", "int", 1),
                                ("padding", "int", 0), ("dilation", "int", 1), ("groups", "int", 1),
                                ("bias", "bool", True)), "Conv2d", True, "image"),
    "batchnorm1d": OpSpec("batchnorm1d", _BN, "BatchNorm1d", False, "features"),
    "batchnorm2d": OpSpec("batchnorm2d", _BN, "BatchNorm2d", False, "image"),
    "dropout": OpSpec("dropout", (("p", "float", 0.5), _INPLACE), "Dropout", False, "any"),
    "maxpool2d": OpSpec("maxpool2d", (("kernel", "int", REQUIRED), ("stride", "int?", None), ("padding", "int", 0),
                                      ("dilation", "int", 1), ("ceil_mode", "bool", False)),
                        "MaxPool2d", False, "image"),
    "avgpool2d": OpSpec("avgpool2d", (("kernel", "int", REQUIRED), ("stride", "int?", None), ("padding", "int", 0),
                                      ("ceil_mode", "bool", False), ("count_include_pad", "bool", True)),
                        "AvgPool2d", False, "image"),
    "adaptive_avgpool2d": OpSpec("adaptive_avgpool2d", (("size", "int", REQUIRED),), "AdaptiveAvgPool2d", False, "image"),
    "adaptive_maxpool2d": OpSpec("adaptive_maxpool2d", (("size", "int", REQUIRED),), "AdaptiveMaxPool2d", False, "image"),
    "flatten": OpSpec("flatten", (), None, False, "any"),
    "identity": OpSpec("identity", (), None, False, "any"),
    # Option-A shortcuts (ResNet-32 on CIFAR): keep every stride-th row and column (x[:, :, ::s, ::s]),
    # and zero channels added before and after the existing ones.
    "subsample": OpSpec("subsample", (("stride", "int", REQUIRED),), None, False, "image"),
    "pad_channels": OpSpec("pad_channels", (("before", "int", REQUIRED), ("after", "int", REQUIRED)), None, False,
                           "image"),
}


def _window(size, kernel: int, stride: int, padding: int, dilation: int = 1, ceil_mode: bool = False):
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
        k, p, d, ceil = a["kernel"], a["padding"], a.get("dilation", 1), a["ceil_mode"]
        return Shape((c, _window(h, k, st, p, d, ceil), _window(w, k, st, p, d, ceil)))
    if op in ("adaptive_avgpool2d", "adaptive_maxpool2d"):
        return Shape((s.dims[0], a["size"], a["size"]))
    if op == "subsample":
        c, h, w = s.dims
        st = a["stride"]
        return Shape((c, None if h is None else (h - 1) // st + 1, None if w is None else (w - 1) // st + 1))
    if op == "pad_channels":
        return Shape((s.dims[0] + a["before"] + a["after"],) + s.dims[1:])
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
        return {"num_features": s.units, "eps": a["eps"], "momentum": a["momentum"], "affine": a["affine"],
                "track_running_stats": a["track_running_stats"]}
    if op == "dropout":
        return {"p": a["p"], "inplace": a["inplace"]}
    if op == "maxpool2d":
        return {"kernel_size": a["kernel"], "stride": a["stride"], "padding": a["padding"],
                "dilation": a["dilation"], "ceil_mode": a["ceil_mode"]}
    if op == "avgpool2d":
        return {"kernel_size": a["kernel"], "stride": a["stride"], "padding": a["padding"],
                "ceil_mode": a["ceil_mode"], "count_include_pad": a["count_include_pad"]}
    if op in ("adaptive_avgpool2d", "adaptive_maxpool2d"):
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
        if a.get("dilation", 1) <= 0:
            return f"{op} needs dilation > 0, got {a['dilation']}"
    if op in ("adaptive_avgpool2d", "adaptive_maxpool2d") and a["size"] <= 0:
        return f"{op} needs size > 0, got {a['size']}"
    if op == "subsample" and a["stride"] <= 0:
        return f"subsample needs stride > 0, got {a['stride']}"
    if op == "pad_channels" and (a["before"] < 0 or a["after"] < 0):
        return f"pad_channels needs before and after >= 0, got {a['before']} and {a['after']}"
    if op in ("batchnorm1d", "batchnorm2d"):
        if not a["eps"] > 0:
            return f"{op} needs eps > 0, got {a['eps']}"
        if a["momentum"] is not None and not 0.0 <= a["momentum"] <= 1.0:
            return f"{op} momentum must be in [0, 1] (or none: a cumulative average), got {a['momentum']}"
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


def parameter_count(cls: str, kw: dict) -> int:
    """Parameters of a linear or conv layer declared with torch keyword arguments `kw` (others: 0)."""
    if cls == "Linear":
        return kw["in_features"] * kw["out_features"] + (kw["out_features"] if kw["bias"] else 0)
    if cls == "Conv2d":
        k = kw["kernel_size"]
        return (kw["out_channels"] * (kw["in_channels"] // kw["groups"]) * k * k
                + (kw["out_channels"] if kw["bias"] else 0))
    return 0
