"""Run-time helpers of HAT-masked compiled backbones."""
from __future__ import annotations

from torch import Tensor, nn


def independent_bn(x: Tensor, live: nn.Module, copies: nn.ModuleDict, task: str | None, sub: tuple) -> Tensor:
    """Batch norm with per-task copies: the live module, or the copy stored for `task`."""
    if task is None:
        return live(x)
    module = copies[task]
    for part in sub:
        module = module[int(part)]
    return module(x)
