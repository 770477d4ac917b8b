"""What each kind of layer or tensor operation does to the units that flow through it.

The analysis (specc/analysis) reads graphs of two origins: the IR the front end elaborates, and fx
graphs traced from modules at run time (generated classes, or any model given to `specc.mask`).
Both name their operations after torch: a module call by its torch.nn class name, a function by
its qualified name, a tensor method by its name. This table gives each a role and says whether it
keeps a zero unit zero, which is what decides where a unit mask must be applied. An operation not
in the table has no role: the analysis refuses to guess what it does to units. No torch import.

The roles of the spec language's layer kinds come from their catalogue entries (specc/core/layers.py);
this table adds the torch.nn classes and functions a traced model may call besides.

Roles:
- "projection": Linear / Conv1d / Conv2d, the candidates for weighted layers; they create new units.
- "mixing": self-attention, a patch embedding as one module: they create new units from all of their
  input's but are not weighted layers. Under HAT they are read as their parts (below): the patch
  projection and attention's qkv and proj are the weighted layers.
- "tokens": feature maps (B, D, H, W) as tokens (B, H*W, D): keeps units and zeros, moves them to the
  last axis.
- "heads": attention between qkv and proj (specc.runtime.tokens.attend): q, k, v of qkv's 3D units in,
  D units out, unit i being v's unit i (a v unit that is 0 gives exactly 0 there).
- "embed": the class token and the position embedding, where tokens enter a transformer's residual
  stream: the stream's units are no weighted layer's (unowned), moves zeros; a residual add on the
  stream keeps the stream's units (specc/analysis/units.py).
- "norm": batch norm, layer norm; keeps units, moves zeros (shift, normalisation by statistics).
- "activation": keeps units; moves zeros only when f(0) != 0.
- "dropout", "pool", "identity", "scale": keep units and zeros.
- "flatten": image (signal) -> features; each channel becomes height * width (length) consecutive features.
- "add": residual add (moves zeros: the other operand is added); "concat": concatenation along
  the unit axis.
- "gate": the stream (operand 0) times a gate with one value per unit (`mul`, squeeze-excitation);
  keeps the stream's units and its zeros.
- "broadcast": the same values with size-1 axes added after the units (view(b, c, 1, 1), unsqueeze,
  expand_as), as a gate is made to fit its stream.
- "subsample": spatial striding/slicing that keeps channels (option-A shortcuts).
- "pad": zero padding along the unit axis (option-A shortcuts).
"""
from __future__ import annotations

from typing import NamedTuple

from .layers import BY_CLASS


class Kind(NamedTuple):
    role: str
    keeps_zero: bool


_ACT_ZERO = ("ReLU", "ReLU6", "GELU", "Tanh", "SiLU", "Mish", "Hardswish", "LeakyReLU", "ELU", "CELU",
             "SELU", "Hardtanh", "PReLU", "Softsign", "Tanhshrink", "Hardshrink", "Softshrink")
_ACT_NONZERO = ("Sigmoid", "Hardsigmoid", "Softplus", "LogSigmoid")  # f(0) != 0

MODULES: dict[str, Kind] = {
    **{cls: Kind(entry.role, entry.keeps_zero) for cls, entry in BY_CLASS.items()},
    "Dropout2d": Kind("dropout", True), "Flatten": Kind("flatten", True), "Identity": Kind("identity", True),
    **{name: Kind("activation", True) for name in _ACT_ZERO},
    **{name: Kind("activation", False) for name in _ACT_NONZERO},
}

# call_function targets, by qualified name as fx records them.
FUNCTIONS: dict[str, Kind] = {
    "torch.flatten": Kind("flatten", True),
    "_operator.add": Kind("add", False), "_operator.iadd": Kind("add", False), "torch.add": Kind("add", False),
    "torch.cat": Kind("concat", True), "torch.concat": Kind("concat", True),
    "torch.relu": Kind("activation", True), "torch.nn.functional.relu": Kind("activation", True),
    "torch.nn.functional.gelu": Kind("activation", True), "torch.tanh": Kind("activation", True),
    "torch.nn.functional.silu": Kind("activation", True), "torch.sigmoid": Kind("activation", False),
    "torch.nn.functional.dropout": Kind("dropout", True),
    "torch.nn.functional.max_pool2d": Kind("pool", True), "torch.nn.functional.avg_pool2d": Kind("pool", True),
    "torch.nn.functional.adaptive_avg_pool2d": Kind("pool", True),
    "torch.nn.functional.adaptive_max_pool2d": Kind("pool", True),
    "torch.nn.functional.pad": Kind("pad", True),
    "_operator.getitem": Kind("subsample", True),
    "_operator.mul": Kind("scale", True),
    "specc.runtime.products.channel_gate": Kind("gate", True),
    # the steps of specc.runtime.tokens between a transformer's weighted layers
    "specc.runtime.tokens.check_patches": Kind("identity", True),
    "specc.runtime.tokens.to_tokens": Kind("tokens", True),
    "specc.runtime.tokens.prepend_token": Kind("embed", False),
    "specc.runtime.tokens.add_embedding": Kind("embed", False),
    "specc.runtime.tokens.select_token": Kind("pool", True),
    "specc.runtime.tokens.mean_tokens": Kind("pool", True),
    "specc.runtime.tokens.attend": Kind("heads", True),
}

# call_method targets, by method name.
METHODS: dict[str, Kind] = {
    "flatten": Kind("flatten", True), "view": Kind("flatten", True), "reshape": Kind("flatten", True),
    "add": Kind("add", False), "relu": Kind("activation", True), "tanh": Kind("activation", True),
    "sigmoid": Kind("activation", False), "mul": Kind("scale", True),
    "expand_as": Kind("broadcast", True), "unsqueeze": Kind("broadcast", True),
}
