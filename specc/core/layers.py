"""The layer catalogue: every builtin layer kind of the spec language is ONE entry here, carrying
all that the compiler, the analysis and the masking schemes know about it. Pure data and
arithmetic; no torch import (so `specc check` stays instant). Torch-side facts that cannot be
data (the masked functional a WSN layer calls) live in specc/runtime/schemes/wsn.py (WSN_FORMS), keyed by
`LayerKind.wsn_form`. The README's "Adding a layer kind" says how to add one."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .activations import ACTIVATIONS, CHECKED_ACTIVATIONS, INPLACE, check_activation  # noqa: F401  (re-exported)
from .shape import EXPECTS, GETS, KINDS, Shape, window

# The activations are their own catalogue (specc/core/activations.py); ACTIVATIONS and
# check_activation are re-exported here, where the front end imports them.

REQUIRED = object()
IN = "<in>"  # a torch argument taken from the incoming shape: its units (in_features, num_features, ...)
LENGTH = "<length>"  # a torch argument taken from the incoming tokens: their number


@dataclass(frozen=True)
class LayerKind:
    """One builtin layer kind: everything specc knows about it.

    `params`: the spec signature, (name, type, default) with REQUIRED for no default.
    `accepts`: the shape kinds (specc.core.shape.KINDS) it takes.
    `shape`: the shape rule, (bound arguments, input Shape) -> output Shape; None keeps the shape.
    `checks`: the argument checks, (bound arguments, input Shape) -> a problem or None.
    `torch_class`: the torch.nn class it builds (None: no module; `forward` says what it computes).
    `torch_args`: (torch keyword, source) pairs: a spec argument's name, IN (the incoming units), or
        ("pair", name) for (v, v); `positional`: how many leading ones generated source writes by
        position (when all before them are given).
    `role`, `keeps_zero`: what it does to units for the analysis (specc/core/roles.py): "projection"
        (unit-mixing, weighted: a weighted layer of the masking schemes), "mixing" (unit-mixing, not
        a weighted layer: attention, a patch embedding; HAT reads their parts, WSN refuses them), "embed"
        (where tokens enter a transformer's residual stream: class token, position embedding), "norm" (keeps units in
        place, moves zeros: the HAT mask point goes after it), "activation", "dropout", "pool",
        "identity" (unit-wise), "flatten", "subsample", "pad" (parameter-free reshapes).
    `units`: a projection's (input, output) torch keywords of its units.
    `per_task_copies`: a norm the schemes copy per task with batch_normalization="independent".
    `reusable`: `use NAME` may call it again (no parameters or state).
    `parameters`: its parameter count from its torch keyword arguments.
    `label`: how `specc graph` names it, from its torch keyword arguments.
    `hat_view`: how HAT views a unit mask to multiply the layer's output (None: as it is, the units
        being the last axis).
    `wsn_form`: the masked functional WSN calls for it (a key of WSN_FORMS in runtime/schemes/wsn.py).
    `shape_helper`: the specc.runtime.shapes function generated constructors call for its shape
        (None: the generic `shapes.layer`; only kinds whose shape changes get a call).
    `forward`: for a kind without a module, its generated forward: Python source with {x} for the
        input and {ARG} for its spec arguments ({ARG:step} as a slice step: parenthesized unless a
        name or number); None: it computes nothing (identity). Its shape helper gets the arguments
        by position. A kind with a torch class and a `forward` is called by that form, {module}
        standing for its attribute (a parameter kind's parameter).
    `torch_module`: where `torch_class` lives in generated source: `nn` (torch.nn) or `tokens`
        (specc.runtime.tokens, the transformer modules in timm's layout).
    `parameter`: `torch_class` makes an nn.Parameter, not a module: the layer's name becomes a
        parameter of the enclosing module (timm's `cls_token`, `pos_embed` on the network itself), so
        it needs a plain name and cannot be repeated, listed or reused.
    `leaf`: a traced graph (specc.runtime.fx_graph) calls its module as one operation with this
        entry's role instead of tracing its forward: needed when that forward reads `self.training`
        (the traced graph would keep the mode it was traced in) or multiplies by its own parameter."""

    name: str
    params: tuple[tuple[str, str, object], ...]
    accepts: tuple[str, ...]
    torch_class: str | None = None
    torch_args: tuple = ()
    positional: int = 0
    shape: Callable | None = None
    checks: Callable | None = None
    role: str = "identity"
    keeps_zero: bool = True
    units: tuple[str, str] | None = None
    per_task_copies: bool = False
    reusable: bool = False
    parameters: Callable | None = None
    label: Callable | None = None
    hat_view: tuple | None = None
    wsn_form: str | None = None
    shape_helper: str | None = None
    forward: str | None = None
    torch_module: str = "nn"
    parameter: bool = False
    # A mixing kind's own weighted layers, which the masking passes reach by tracing through its
    # module (WSN scores them): (torch keyword arguments) -> ((child name, torch class, its torch
    # keyword arguments), ...) in the order its forward calls them, so the front end lists them as
    # the runtime finds them.
    parts: Callable | None = None
    leaf: bool = False

    @property
    def weighted(self) -> bool:
        return self.role == "projection"


ANY = KINDS


# -- shape rules -----------------------------------------------------------------------------------
def _linear_shape(a, s: Shape) -> Shape:
    return s.with_units(a["out_features"])


def _conv_shape(a, s: Shape) -> Shape:
    k, st, p, d = a["kernel"], a["stride"], a["padding"], a["dilation"]
    return Shape((a["out_channels"],) + tuple(window(x, k, st, p, d) for x in s.spatial), s.kind)


def _pool_shape(a, s: Shape) -> Shape:
    st = a["stride"] if a["stride"] is not None else a["kernel"]
    k, p, d, ceil = a["kernel"], a["padding"], a.get("dilation", 1), a["ceil_mode"]
    return Shape((s.units,) + tuple(window(x, k, st, p, d, ceil) for x in s.spatial), s.kind)


def _adaptive_shape(a, s: Shape) -> Shape:
    return Shape((s.units,) + (a["size"],) * len(s.spatial), s.kind)


def _subsample_shape(a, s: Shape) -> Shape:
    st = a["stride"]
    return Shape((s.units,) + tuple(None if x is None else (x - 1) // st + 1 for x in s.spatial), s.kind)


def _pad_shape(a, s: Shape) -> Shape:
    return s.with_units(s.units + a["before"] + a["after"])


def _flatten_shape(a, s: Shape) -> Shape:
    if len(s.dims) == 1:
        return s
    return Shape((math.prod(s.dims) if None not in s.dims else None,))


def _patch_shape(a, s: Shape) -> Shape:
    p = a["patch"]
    h, w = s.spatial
    return Shape.tokens(None if h is None or w is None else (h // p) * (w // p), a["embed_dim"])


def _class_token_shape(a, s: Shape) -> Shape:
    return Shape.tokens(None if s.dims[0] is None else s.dims[0] + 1, s.units)


def _token_feature_shape(a, s: Shape) -> Shape:
    return Shape((s.units,))


# -- argument checks: every argument is checked here, at check time and with the spec's position,
# never left to torch at build time (and none may reach a division by zero in a shape rule) ----------
def _conv_checks(name: str):
    def checks(a, s: Shape):
        if a["out_channels"] <= 0 or a["kernel"] <= 0 or a["stride"] <= 0 or a["padding"] < 0:
            return f"{name} needs out_channels, kernel and stride > 0 and padding >= 0"
        if a["dilation"] <= 0:
            return f"{name} needs dilation > 0, got {a['dilation']}"
        if a["groups"] <= 0:
            return f"{name} needs groups > 0, got {a['groups']}"
        if s.units % a["groups"] or a["out_channels"] % a["groups"]:
            return f"{name} groups={a['groups']} must divide in_channels={s.units} and out_channels"
        return None
    return checks


def _pool_checks(name: str):
    def checks(a, s):
        if a["kernel"] <= 0 or (a["stride"] is not None and a["stride"] <= 0) or a["padding"] < 0:
            return f"{name} needs kernel and stride > 0 and padding >= 0"
        if 2 * a["padding"] > a["kernel"]:
            return f"{name} padding must be at most half the kernel, got padding={a['padding']} for kernel={a['kernel']}"
        if a.get("dilation", 1) <= 0:
            return f"{name} needs dilation > 0, got {a['dilation']}"
        return None
    return checks


def _positive(name: str, arg: str):
    def checks(a, s):
        return f"{name} needs {arg} > 0, got {a[arg]}" if a[arg] <= 0 else None
    return checks


def _norm_checks(name: str):
    def checks(a, s):
        if not a["eps"] > 0:
            return f"{name} needs eps > 0, got {a['eps']}"
        if a.get("momentum") is not None and not 0.0 <= a["momentum"] <= 1.0:
            return f"{name} momentum must be in [0, 1] (or none: a cumulative average), got {a['momentum']}"
        return None
    return checks


def _linear_checks(a, s):
    return "linear needs out_features > 0" if a["out_features"] <= 0 else None


def _dropout_checks(a, s):
    return f"dropout probability must be in [0, 1], got {a['p']}" if not 0.0 <= a["p"] <= 1.0 else None


def _drop_path_checks(a, s):
    if not 0.0 <= a["p"] <= 1.0:
        return f"drop_path probability must be in [0, 1], got {a['p']}"
    if (a["step"] is None) != (a["steps"] is None):
        return "drop_path takes step and steps together (a per-block rate) or neither"
    if a["schedule"] not in ("linspace", "fraction"):
        return f"drop_path schedule must be 'linspace' or 'fraction', got {a['schedule']!r}"
    if a["steps"] is not None and not 0 <= a["step"] < a["steps"]:
        return f"drop_path needs 0 <= step < steps, got step={a['step']}, steps={a['steps']}"
    return None


def _pad_checks(a, s):
    if a["before"] < 0 or a["after"] < 0:
        return f"pad_channels needs before and after >= 0, got {a['before']} and {a['after']}"
    return None


def _patch_checks(a, s):
    if a["embed_dim"] <= 0 or a["patch"] <= 0:
        return f"patch_embed needs embed_dim and patch > 0, got {a['embed_dim']} and {a['patch']}"
    for size in s.spatial:
        if size is not None and (size < a["patch"] or size % a["patch"]):
            return f"patch_embed cannot cut the image {s} into {a['patch']}x{a['patch']} patches"
    return None


def _attention_checks(a, s):
    if a["num_heads"] <= 0 or s.units % a["num_heads"]:
        return f"attention needs num_heads > 0 dividing the {s.units} features, got num_heads={a['num_heads']}"
    for p in ("attn_drop", "proj_drop"):
        if not 0.0 <= a[p] <= 1.0:
            return f"attention {p} must be in [0, 1], got {a[p]}"
    return None


def _length_known(name: str):
    def checks(a, s):
        return None if s.dims[0] is not None else f"{name} needs a known number of tokens (give the image size)"
    return checks


def _select_checks(a, s):
    length = s.dims[0]
    if a["index"] < 0 or (length is not None and a["index"] >= length):
        return f"select_token index must be in [0, {length}), got {a['index']}"
    return None


def _mean_checks(a, s):
    length = s.dims[0]
    if a["start"] < 0 or (length is not None and a["start"] >= length):
        return f"mean_tokens start must be in [0, {length}), got {a['start']}"
    return None


# -- parameter counts and labels (from torch keyword arguments) --------------------------------------
def _linear_parameters(kw) -> int:
    return kw["in_features"] * kw["out_features"] + (kw["out_features"] if kw["bias"] else 0)


def _conv_parameters(rank: int):
    def count(kw) -> int:
        return (kw["out_channels"] * (kw["in_channels"] // kw["groups"]) * kw["kernel_size"] ** rank
                + (kw["out_channels"] if kw["bias"] else 0))
    return count


def _batch_norm_parameters(kw) -> int:
    return 2 * kw["num_features"] if kw["affine"] else 0


def _layer_norm_parameters(kw) -> int:
    d = kw["normalized_shape"]
    return (d + (d if kw["bias"] else 0)) if kw["elementwise_affine"] else 0


def _attention_parameters(kw) -> int:
    d = kw["dim"]
    norm = 4 * (d // kw["num_heads"]) if kw["qk_norm"] else 0
    return 4 * d * d + (3 * d if kw["qkv_bias"] else 0) + (d if kw["proj_bias"] else 0) + norm


def _patch_parts(kw) -> tuple:
    p = kw["patch_size"]
    return (("proj", "Conv2d", {"in_channels": kw["in_channels"], "out_channels": kw["embed_dim"], "kernel_size": p,
                                "stride": p, "padding": 0, "dilation": 1, "groups": 1, "bias": kw["bias"]}),)


def _attention_parts(kw) -> tuple:
    # qk-norm's LayerNorms are no part: they belong to the attention step between qkv and proj
    # (specc/runtime/fx_graph.py leaves them unscored), as the heads' products do.
    d = kw["dim"]
    return (("qkv", "Linear", {"in_features": d, "out_features": 3 * d, "bias": kw["qkv_bias"]}),
            ("proj", "Linear", {"in_features": d, "out_features": d, "bias": kw["proj_bias"]}))


def _size(v) -> str:
    return "×".join(map(str, v)) if isinstance(v, (tuple, list)) else f"{v}×{v}"


def _stride(v) -> str:
    if v in (1, (1, 1), [1, 1]):
        return ""
    return f", stride {v if not isinstance(v, (tuple, list)) else 'x'.join(map(str, v))}"


def _conv_label(cls: str, rank: int):
    def label(kw) -> str:
        k = kw["kernel_size"] if rank == 1 else _size(kw["kernel_size"])
        return f"{cls} {k}{_stride(kw['stride'])}, {kw['in_channels']}→{kw['out_channels']}"
    return label


def _pool_label(cls: str):
    return lambda kw: f"{cls} {_size(kw['kernel_size'])}{_stride(kw.get('stride', 1))}"


# -- the entries -------------------------------------------------------------------------------------
_BN = (("eps", "float", 1e-5), ("momentum", "float?", 0.1), ("affine", "bool", True),
       ("track_running_stats", "bool", True))
_BN_ARGS = (("num_features", IN), ("eps", "eps"), ("momentum", "momentum"), ("affine", "affine"),
            ("track_running_stats", "track_running_stats"))
_CONV = (("out_channels", "int", REQUIRED), ("kernel", "int", REQUIRED), ("stride", "int", 1),
         ("padding", "int", 0), ("dilation", "int", 1), ("groups", "int", 1), ("bias", "bool", True))
_CONV_ARGS = (("in_channels", IN), ("out_channels", "out_channels"), ("kernel_size", "kernel"),
              ("stride", "stride"), ("padding", "padding"), ("dilation", "dilation"), ("groups", "groups"),
              ("bias", "bias"))

_ENTRIES = (
    LayerKind("linear", (("out_features", "int", REQUIRED), ("bias", "bool", True)), ("features", "tokens"),
              "Linear", (("in_features", IN), ("out_features", "out_features"), ("bias", "bias")), positional=2,
              shape=_linear_shape, checks=_linear_checks, role="projection", keeps_zero=False,
              units=("in_features", "out_features"), parameters=_linear_parameters,
              label=lambda kw: f"Linear {kw['in_features']}→{kw['out_features']}",
              wsn_form="linear", shape_helper="shapes.linear"),
    LayerKind("conv2d", _CONV, ("image",), "Conv2d", _CONV_ARGS, positional=2, shape=_conv_shape,
              checks=_conv_checks("conv2d"), role="projection", keeps_zero=False,
              units=("in_channels", "out_channels"), parameters=_conv_parameters(2),
              label=_conv_label("Conv2d", 2), hat_view=(1, -1, 1, 1), wsn_form="conv2d",
              shape_helper="shapes.conv2d"),
    # conv1d: a 1-d signal (channels, length) -> (out_channels, length'), as torch.nn.Conv1d.
    LayerKind("conv1d", _CONV, ("signal",), "Conv1d", _CONV_ARGS, positional=2, shape=_conv_shape,
              checks=_conv_checks("conv1d"), role="projection", keeps_zero=False,
              units=("in_channels", "out_channels"), parameters=_conv_parameters(1),
              label=_conv_label("Conv1d", 1), hat_view=(1, -1, 1), wsn_form="conv1d"),
    # Batch norm: torch.nn.BatchNorm{1,2}d's arguments (momentum none: a cumulative average).
    LayerKind("batchnorm1d", _BN, ("features", "signal"), "BatchNorm1d", _BN_ARGS, positional=1,
              checks=_norm_checks("batchnorm1d"), role="norm", keeps_zero=False, per_task_copies=True,
              parameters=_batch_norm_parameters),
    LayerKind("batchnorm2d", _BN, ("image",), "BatchNorm2d", _BN_ARGS, positional=1,
              checks=_norm_checks("batchnorm2d"), role="norm", keeps_zero=False, per_task_copies=True,
              parameters=_batch_norm_parameters),
    # layernorm: normalizes each sample over its units (the last axis), as torch.nn.LayerNorm with
    # normalized_shape = the incoming units. It mixes units: every output depends on all inputs'
    # mean and variance, and a zero does not stay zero; for the analysis it is a norm (the HAT mask
    # point goes after it, a layernorm beyond a mask point is refused), without per-task copies.
    LayerKind("layernorm", (("eps", "float", 1e-5), ("elementwise_affine", "bool", True), ("bias", "bool", True)),
              ("features", "tokens"), "LayerNorm",
              (("normalized_shape", IN), ("eps", "eps"), ("elementwise_affine", "elementwise_affine"),
               ("bias", "bias")), positional=1, checks=_norm_checks("layernorm"), role="norm", keeps_zero=False,
              parameters=_layer_norm_parameters, label=lambda kw: f"LayerNorm {kw['normalized_shape']}",
              wsn_form="layer_norm"),
    # -- vision transformer kinds (issue 21), in timm's VisionTransformer layout: patches of an image
    # as tokens, the class token and position embedding as parameters of the enclosing module, self-
    # attention, and the token a feature is read from. Units of tokens are their features (the last
    # axis). For the analysis, patch_embed and attention are "mixing": they make new units from all
    # of their input's, without being weighted layers themselves. Both schemes read them as their
    # parts (`parts`; specc/frontend/facts.py, as a trace shows them): the patch convolution `proj`
    # and attention's `qkv` and `proj` are HAT's weighted layers (specc/runtime/tokens.py says what a
    # unit of qkv and of a head is; README "HAT on vision transformers") and the linears and the
    # convolution WSN scores. The class token and the position embedding are where tokens enter the
    # residual stream ("embed": they move zeros, and the stream's units are no layer's); selecting a
    # token or averaging tokens keeps features and zeros (a "pool"'s).
    LayerKind("patch_embed", (("embed_dim", "int", REQUIRED), ("patch", "int", REQUIRED), ("bias", "bool", True)),
              ("image",), "PatchEmbed", (("in_channels", IN), ("embed_dim", "embed_dim"), ("patch_size", "patch"),
                                         ("bias", "bias")), positional=3, shape=_patch_shape,
              checks=_patch_checks, role="mixing", keeps_zero=False, torch_module="tokens",
              parameters=lambda kw: kw["embed_dim"] * (kw["in_channels"] * kw["patch_size"] ** 2 + kw["bias"]),
              parts=_patch_parts,
              label=lambda kw: f"PatchEmbed {_size(kw['patch_size'])}, {kw['in_channels']}→{kw['embed_dim']}"),
    LayerKind("class_token", (), ("tokens",), "class_token", (("dim", IN),), positional=1,
              shape=_class_token_shape, role="embed", keeps_zero=False, torch_module="tokens", parameter=True,
              parameters=lambda kw: kw["dim"], label=lambda kw: f"class token {kw['dim']}",
              forward="tokens.prepend_token({x}, {module})"),
    LayerKind("position_embedding", (), ("tokens",), "position_embedding", (("length", LENGTH), ("dim", IN)),
              positional=2, checks=_length_known("position_embedding"), role="embed", keeps_zero=False,
              torch_module="tokens", parameter=True, parameters=lambda kw: kw["length"] * kw["dim"],
              label=lambda kw: f"position embedding {kw['length']}×{kw['dim']}", forward="tokens.add_embedding({x}, {module})"),
    LayerKind("attention", (("num_heads", "int", REQUIRED), ("qkv_bias", "bool", True), ("proj_bias", "bool", True),
                            ("qk_norm", "bool", False), ("attn_drop", "float", 0.0), ("proj_drop", "float", 0.0),
                            ("fused", "bool", True)),
              ("tokens",), "SelfAttention",
              (("dim", IN), ("num_heads", "num_heads"), ("qkv_bias", "qkv_bias"), ("proj_bias", "proj_bias"),
               ("qk_norm", "qk_norm"), ("attn_drop", "attn_drop"), ("proj_drop", "proj_drop"), ("fused", "fused")),
              positional=2, checks=_attention_checks, role="mixing", keeps_zero=False, torch_module="tokens",
              parameters=_attention_parameters, parts=_attention_parts,
              label=lambda kw: f"SelfAttention {kw['dim']}, {kw['num_heads']} heads"),
    LayerKind("select_token", (("index", "int", 0),), ("tokens",), shape=_token_feature_shape, checks=_select_checks,
              role="pool", shape_helper="shapes.select_token", forward="tokens.select_token({x}, {index})"),
    LayerKind("mean_tokens", (("start", "int", 0),), ("tokens",), shape=_token_feature_shape, checks=_mean_checks,
              role="pool", shape_helper="shapes.mean_tokens", forward="tokens.mean_tokens({x}, {start})"),
    LayerKind("dropout", (("p", "float", 0.5), INPLACE), ANY, "Dropout", (("p", "p"), ("inplace", "inplace")),
              positional=1, checks=_dropout_checks, role="dropout", reusable=True,
              label=lambda kw: f"Dropout p={kw.get('p')}"),
    # Residual-branch kinds of transformers and EfficientNets (timm's DropPath and LayerScale,
    # torchvision's StochasticDepth(p, "row")), modules of specc/runtime/tokens.py and fx leaves.
    # drop_path: per-sample stochastic depth, parameter-free and unit-wise (a sample is kept whole or
    # zeroed, so zeros stay zero): a "dropout" for the analysis, which HAT and WSN pass through as they
    # pass dropout. `step`/`steps`: block step of steps gets a share of p by `schedule`: "linspace"
    # (timm: torch.linspace(0, p, steps)[step], float32) or "fraction" (torchvision: p * step / steps
    # in double); written here because the spec language has no float32 values and no `/`.
    LayerKind("drop_path", (("p", "float", REQUIRED), ("scale_by_keep", "bool", True), ("step", "int?", None),
                            ("steps", "int?", None), ("schedule", "str", "linspace")), ANY, "DropPath",
              (("p", "p"), ("scale_by_keep", "scale_by_keep"), ("step", "step"), ("steps", "steps"),
               ("schedule", "schedule")),
              positional=1, checks=_drop_path_checks, role="dropout", reusable=True, torch_module="tokens",
              leaf=True, label=lambda kw: f"DropPath p={kw['p']}" + (
                  f" ({kw.get('schedule')} step {kw['step']} of {kw['steps']})" if kw.get("steps") is not None else "")),
    # layer_scale: timm's LayerScale, x * gamma with a per-unit `gamma` (dim,) = init_values: unit-wise
    # with a parameter ("scale": keeps units and zeros, so a HAT mask point may sit before it and a
    # masked zero stays zero through it); not a weighted layer, so WSN does not score gamma and HAT
    # masks no unit of its own (as CLArena's HAT and WSN leave norms' affine parameters unmasked).
    LayerKind("layer_scale", (("init_values", "float", 1e-5),), ("features", "tokens"), "LayerScale",
              (("dim", IN), ("init_values", "init_values")), positional=2, role="scale", torch_module="tokens",
              leaf=True, parameters=lambda kw: kw["dim"], label=lambda kw: f"LayerScale {kw['dim']}"),
    LayerKind("maxpool2d", (("kernel", "int", REQUIRED), ("stride", "int?", None), ("padding", "int", 0),
                            ("dilation", "int", 1), ("ceil_mode", "bool", False)), ("image",), "MaxPool2d",
              (("kernel_size", "kernel"), ("stride", "stride"), ("padding", "padding"), ("dilation", "dilation"),
               ("ceil_mode", "ceil_mode")), shape=_pool_shape, checks=_pool_checks("maxpool2d"), role="pool",
              reusable=True, label=_pool_label("MaxPool2d"), shape_helper="shapes.pool2d"),
    LayerKind("maxpool1d", (("kernel", "int", REQUIRED), ("stride", "int?", None), ("padding", "int", 0),
                            ("dilation", "int", 1), ("ceil_mode", "bool", False)), ("signal",), "MaxPool1d",
              (("kernel_size", "kernel"), ("stride", "stride"), ("padding", "padding"), ("dilation", "dilation"),
               ("ceil_mode", "ceil_mode")), shape=_pool_shape, checks=_pool_checks("maxpool1d"), role="pool",
              reusable=True, label=lambda kw: f"MaxPool1d {kw['kernel_size']}{_stride(kw['stride'] or 1)}"),
    LayerKind("avgpool2d", (("kernel", "int", REQUIRED), ("stride", "int?", None), ("padding", "int", 0),
                            ("ceil_mode", "bool", False), ("count_include_pad", "bool", True)), ("image",),
              "AvgPool2d", (("kernel_size", "kernel"), ("stride", "stride"), ("padding", "padding"),
                            ("ceil_mode", "ceil_mode"), ("count_include_pad", "count_include_pad")),
              shape=_pool_shape, checks=_pool_checks("avgpool2d"), role="pool", reusable=True,
              label=_pool_label("AvgPool2d"), shape_helper="shapes.pool2d"),
    LayerKind("adaptive_avgpool2d", (("size", "int", REQUIRED),), ("image",), "AdaptiveAvgPool2d",
              (("output_size", ("pair", "size")),), positional=1, shape=_adaptive_shape,
              checks=_positive("adaptive_avgpool2d", "size"), role="pool", reusable=True,
              label=lambda kw: f"AdaptiveAvgPool2d → {_size(kw['output_size'])}",
              shape_helper="shapes.adaptive_pool2d"),
    LayerKind("adaptive_maxpool2d", (("size", "int", REQUIRED),), ("image",), "AdaptiveMaxPool2d",
              (("output_size", ("pair", "size")),), positional=1, shape=_adaptive_shape,
              checks=_positive("adaptive_maxpool2d", "size"), role="pool", reusable=True,
              shape_helper="shapes.adaptive_pool2d"),
    LayerKind("flatten", (), ANY, shape=_flatten_shape, role="flatten", shape_helper="shapes.flatten",
              forward="torch.flatten({x}, 1)"),
    LayerKind("identity", (), ANY),
    # Option-A shortcuts (ResNet-32 on CIFAR): keep every stride-th row and column (x[:, :, ::s, ::s]),
    # and zero channels added before and after the existing ones.
    LayerKind("subsample", (("stride", "int", REQUIRED),), ("image",), shape=_subsample_shape,
              checks=_positive("subsample", "stride"), role="subsample", shape_helper="shapes.subsample",
              forward="{x}[:, :, ::{stride:step}, ::{stride:step}]"),
    LayerKind("pad_channels", (("before", "int", REQUIRED), ("after", "int", REQUIRED)), ("image",),
              shape=_pad_shape, checks=_pad_checks, role="pad", shape_helper="shapes.pad_channels",
              forward="nn.functional.pad({x}, (0, 0, 0, 0, {before}, {after}))"),
)

OPS: dict[str, LayerKind] = {k.name: k for k in _ENTRIES}
# The entries that build a module, by torch.nn class name (how traced graphs and declarations name them).
BY_CLASS: dict[str, LayerKind] = {k.torch_class: k for k in _ENTRIES if k.torch_class is not None}
# Weighted kinds and per-task-copied norms are modules, so each names its torch class (checked below).
PROJECTIONS: tuple[str, ...] = tuple(k.torch_class or "" for k in _ENTRIES if k.weighted)
BATCH_NORMS: tuple[str, ...] = tuple(k.torch_class or "" for k in _ENTRIES if k.per_task_copies)
assert all(PROJECTIONS) and all(BATCH_NORMS), "a weighted or per-task-copied layer kind has no torch_class"


def out_shape(op: str, a: dict, s: Shape) -> Shape:
    """The output shape of builtin `op` with bound arguments `a` on input shape `s`."""
    rule = OPS[op].shape
    return s if rule is None else rule(a, s)


def torch_kwargs(op: str, a: dict, s: Shape) -> dict:
    """Constructor keyword arguments of the torch.nn class, sizes inferred from the input shape."""
    out = {}
    for kw, source in OPS[op].torch_args:
        if source == IN:
            out[kw] = s.units
        elif source == LENGTH:
            out[kw] = s.dims[0]
        elif isinstance(source, tuple):
            out[kw] = (a[source[1]], a[source[1]])
        else:
            out[kw] = a[source]
    return out


def _accepts(spec: LayerKind, s: Shape) -> str | None:
    if s.kind in spec.accepts or spec.accepts == ANY:
        return None
    return (f"{spec.name} expects {' or '.join(EXPECTS[k] for k in spec.accepts)} but gets "
            f"{GETS[s.kind]} of shape {s}")


def check(op: str, a: dict, s: Shape) -> str | None:
    """A problem with applying `op` to shape `s`, or None."""
    spec = OPS[op]
    problem = _accepts(spec, s)
    if problem:
        return problem
    if spec.torch_class is not None and s.units is None:
        return f"cannot infer the input size of {op}: the incoming shape is {s}"
    problem = spec.checks(a, s) if spec.checks is not None else None
    if problem:
        return problem
    out = out_shape(op, a, s)
    if any(d is not None and d <= 0 for d in out.spatial):
        return f"{op} leaves no spatial extent: {s} -> {out}"
    if any(d is not None and d >= 1 << 63 for d in out.dims):
        return f"{op} makes a shape too large: {out}"
    return None


def parameter_count(cls, kw: dict) -> int:
    """Parameters of a module of torch.nn class `cls` declared with keyword arguments `kw` (0 for
    a class outside the catalogue: an activation, a container)."""
    spec = BY_CLASS.get(cls) if isinstance(cls, str) else None
    return spec.parameters(kw) if spec is not None and spec.parameters is not None else 0


def label(cls: str, kw: dict) -> str:
    """How `specc graph` names a module of torch.nn class `cls`."""
    spec = BY_CLASS.get(cls)
    return spec.label(kw) if spec is not None and spec.label is not None else cls
