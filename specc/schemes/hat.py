"""HAT (Serra et al., 2018): a task-conditioned mask on every weighted layer's units."""
from .declaration import BN_MODES, Option, Scheme

# `gate` and `batch_normalization` set the defaults of the constructor parameters of the same name
# (CLArena's classes have no default for `gate`). `fold_batch_norm` folds a mask that follows a batch
# norm into its affine weight and bias: one pass over the activations instead of two, but not
# bit-identical to CLArena's bn(x) * m with fractional masks, hence off by default. `point`: where
# on a layer's unit chain its mask applies (specc.analysis.mask_points): "earliest" is CLArena's
# (after the last op that could move a zero), "chain_end" the HAT paper's AlexNet (after ReLU,
# dropout and max pool, just before the units leave the chain).
OPTIONS = (Option("gate", "str?", None, choices=("sigmoid",)),
           Option("batch_normalization", "str?", None, choices=BN_MODES),
           Option("protect_shortcuts", "bool", False),
           Option("fold_batch_norm", "bool", False),
           Option("point", "str", "earliest", choices=("earliest", "chain_end")))

SCHEME = Scheme(
    name="hat", title="HAT", summary="HAT's unit masks", options=OPTIONS,
    runtime="hat", mixin="HATMasked", base="HATMaskBackbone", class_prefix="HATMask",
    unit_masks=True, gates=("sigmoid",), attributes=("task_embedding_t", "gate_fn", "masks"))
