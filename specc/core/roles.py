"""What each kind of layer or tensor operation does to the units that flow through it.

The analysis (specc/analysis) reads graphs of two origins: the IR the front end elaborates, and fx
graphs traced from modules at run time (generated classes, or any model given to `specc.mask`).
Both name their operations after torch: a module call by its torch.nn class name, a function by
its qualified name, a tensor method by its name. This table gives each a role and says whether it
keeps a zero unit zero, which is what decides where a unit mask must be applied. An operation not
in the table has no role: the analysis refuses to guess what it does to units. No torch import.

The roles of the spec language's layer kinds and of the activations come from their catalogue
entries (specc/core/layers.py, specc/core/activations.py: the activations' entries are read live, so
a catalogue indexed again is seen here); this table adds the torch.nn classes and functions a
traced model may call besides.

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

from collections import ChainMap
from collections.abc import Mapping, MutableMapping
from typing import NamedTuple, Protocol, cast

from . import activations
from .layers import BY_CLASS


class Role(Protocol):
    """What the analysis reads of an operation: a Kind below, or a catalogue entry."""
    @property
    def role(self) -> str: ...
    @property
    def keeps_zero(self) -> bool: ...


class Kind(NamedTuple):
    role: str
    keeps_zero: bool


def _live(view: dict) -> MutableMapping[str, Role]:
    # a catalogue view, read live by the ChainMaps below (an ActivationKind is a Role; dict is invariant)
    return cast("MutableMapping[str, Role]", view)


MODULES: Mapping[str, Role] = ChainMap({
    **{cls: Kind(entry.role, entry.keeps_zero) for cls, entry in BY_CLASS.items()},
    "Dropout2d": Kind("dropout", True), "Flatten": Kind("flatten", True),
}, _live(activations.BY_NAME))

# call_function targets, by qualified name as fx records them.
FUNCTIONS: Mapping[str, Role] = ChainMap({
    "torch.flatten": Kind("flatten", True),
    "_operator.add": Kind("add", False), "_operator.iadd": Kind("add", False), "torch.add": Kind("add", False),
    "torch.cat": Kind("concat", True), "torch.concat": Kind("concat", True),
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
}, _live(activations.FUNCTIONS))

# call_method targets, by method name.
METHODS: Mapping[str, Role] = ChainMap({
    "flatten": Kind("flatten", True), "view": Kind("flatten", True), "reshape": Kind("flatten", True),
    "add": Kind("add", False), "mul": Kind("scale", True),
    "expand_as": Kind("broadcast", True), "unsqueeze": Kind("broadcast", True),
}, _live(activations.METHODS))
