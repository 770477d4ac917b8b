r"""WSN's backbone base, with the API of CLArena's `clarena.backbones.base`: `WSNMaskBackbone`
(learnable scores per parameter, the top-scored share of them as the task's subnetwork). Departures
from CLArena's are marked "Deviation". `specc export` copies this module's code into an exported
module (specc/emit/export.py), as it does specc/runtime/backbone.py's.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from specc.runtime.backbone import CLBackbone, _whole
from specc.runtime.gates import PercentileLayerParameterMaskingByScore

__all__ = ["WSNMaskBackbone"]


class WSNMaskBackbone(CLBackbone):
    r"""Backbone for WSN: learnable scores per parameter; each task uses the top-scored fraction of
    every layer's weights and biases."""

    def __init__(self, output_dim: int | None, **kwargs) -> None:
        r"""See `CLBackbone`."""
        super().__init__(output_dim=output_dim, **kwargs)

        self.gate_fn: torch.autograd.Function = PercentileLayerParameterMaskingByScore

        # nn.Embedding(out_features, in_features) per weighted layer: one score per weight entry.
        self.weight_score_t: nn.ModuleDict = nn.ModuleDict()

        # nn.Embedding(1, out_features) per weighted layer that has a bias. A layer without bias
        # may either be absent from this ModuleDict or map to None (a ModuleDict accepts None
        # values, which CLArena's subclasses rely on); both read as "no bias score".
        self.bias_score_t: nn.ModuleDict = nn.ModuleDict()

        WSNMaskBackbone.sanity_check(self)

    def sanity_check(self) -> None:
        r"""Nothing to check (kept for API symmetry)."""

    def _bias_score(self, layer_name: str) -> nn.Embedding | None:
        return self.bias_score_t[layer_name] if layer_name in self.bias_score_t else None

    def initialize_parameter_score(self, mode: str) -> None:
        r"""Re-initialise every layer's weight and bias scores: 'default' (WSN's: Kaiming uniform
        with a=sqrt(5) on weight scores, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) on bias scores),
        'N01' or 'U01'. Other modes leave the scores untouched."""
        # Deviation: CLArena nests its loop over all bias scores inside the loop over the layers,
        # so every bias score is re-drawn once per layer. The distribution is the same; the intent
        # is one draw per score, which is what happens here (layer by layer: weight, then bias).
        # The random stream therefore differs from CLArena's under the same seed.
        for layer_name, weight_score in self.weight_score_t.items():
            bias_score = self._bias_score(layer_name)
            if mode == "default":
                nn.init.kaiming_uniform_(weight_score.weight, a=math.sqrt(5))
                if bias_score is not None:
                    # nn.Linear's own bias rule, with fan_in taken from the weight score.
                    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight_score.weight)
                    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                    nn.init.uniform_(bias_score.weight, -bound, bound)
            elif mode == "N01":
                nn.init.normal_(weight_score.weight, 0, 1)
                if bias_score is not None:
                    nn.init.normal_(bias_score.weight, 0, 1)
            elif mode == "U01":
                nn.init.uniform_(weight_score.weight, 0, 1)
                if bias_score is not None:
                    nn.init.uniform_(bias_score.weight, 0, 1)

    def get_mask(
        self,
        stage: str,
        mask_percentage: float,
        test_mask: tuple[dict[str, Tensor], dict[str, Tensor]] | None = None,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor | None]]:
        r"""`(weight_mask, bias_mask)` for a forward pass in `stage`: in 'train' and 'validation'
        the top `mask_percentage` of each layer's scores through the gate (bias mask `None` for a
        layer without bias score); in 'test' the given `test_mask` pair. Any other stage gives two
        empty dicts."""
        weight_mask = {}
        bias_mask = {}
        if stage == "train" or stage == "validation":
            for layer_name in self.weighted_layer_names:
                weight_mask[layer_name] = self.gate_fn.apply(
                    self.weight_score_t[layer_name].weight, mask_percentage
                )
                bias_score = self._bias_score(layer_name)
                if bias_score is not None:
                    # The score is stored as (1, out_features); the bias is (out_features,).
                    bias_mask[layer_name] = self.gate_fn.apply(
                        _whole(bias_score.weight).squeeze(0), mask_percentage
                    )
                else:
                    bias_mask[layer_name] = None
        elif stage == "test":
            if test_mask is None:
                # Deviation: CLArena fails here unpacking None ("cannot unpack non-iterable NoneType").
                raise TypeError(
                    "stage 'test' needs test_mask=(weight_mask, bias_mask): the masks of the task being "
                    "tested, as `get_mask('train', mask_percentage=...)` gave them when its training ended."
                )
            weight_mask, bias_mask = test_mask

        return weight_mask, bias_mask

    def forward(
        self,
        input: Tensor,
        stage: str,
        mask_percentage: float,
        test_mask: tuple[dict[str, Tensor], dict[str, Tensor]] | None = None,
    ) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
        r"""Returns `(output_feature, weight_mask, bias_mask, activations)`, each layer computed
        with its parameters multiplied by `self.get_mask(...)`. Subclasses implement it."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement forward()."
        )
