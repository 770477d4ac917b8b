"""Module containers as generated constructors fill them."""
from __future__ import annotations

from torch import nn


def indexed(container: nn.ModuleList, index: int) -> nn.ModuleList:
    """`container`, checked to be filled at `index` next: a spec's `name[index]` elements must come
    in order 0, 1, 2, ... (as ModuleList.append fills it)."""
    if index != len(container):
        expected = len(container)
        raise ValueError(f"module list index {index} out of order: the next element is {expected}")
    return container
