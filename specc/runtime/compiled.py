"""Base classes of compiled backbones: the seed's classes plus a forward that runs the network's
compiled fx graph (installed per instance by specc.assemble)."""
from __future__ import annotations

from torch import Tensor

from .base import Backbone, CLBackbone


class CompiledBackbone(Backbone):
    """A plain backbone compiled from a spec. forward(input, stage=None) -> (feature, activations)."""

    def forward(self, input: Tensor, stage: str | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        return self._specc_forward(self, input)


class CompiledCLBackbone(CLBackbone):
    """A continual-learning backbone compiled from a spec; `task_id` does not change the forward."""

    def forward(self, input: Tensor, stage: str | None = None,
                task_id: int | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        return self._specc_forward(self, input)
