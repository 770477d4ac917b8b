"""WSN (Kang et al., 2022): a task's subnetwork, the top-scoring share of every weight and bias."""
from .declaration import BN_MODES, Option, Scheme

# `batch_normalization`: "off" (CLArena's WSNMaskMLP: no such parameter, no batch norm) or the
# default of a None / "shared" / "independent" parameter, as in HAT.
SCHEME = Scheme(
    name="wsn", title="WSN", summary="WSN's parameter masks",
    # `rank_by`: "score" keeps the largest scores (CLArena's WSN), "magnitude" the largest |score|
    # (the WSN paper's code).
    # `mask_layer_norms`: the LayerNorms' weights and biases scored too (Soft-TF, by WSN's authors,
    # masks a ViT's LayerNorm weights); off: they stay shared and unprotected, as batch norms do.
    options=(Option("batch_normalization", "str?", "off", choices=BN_MODES + ("off",)),
             Option("rank_by", "str", "score", choices=("score", "magnitude")),
             Option("mask_layer_norms", "bool", False)),
    runtime="wsn", mixin="WSNMasked", base="WSNMaskBackbone", class_prefix="WSNMask",
    plain_first=True, weight_masks=True, weights_branches=True,
    attributes=("gate_fn", "weight_score_t", "bias_score_t"))
