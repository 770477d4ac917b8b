"""Deliberately wrong backbone factories, for the tests that show the comparison can fail.

They live at module level because Hydra (which the harness uses to build backbones, as CLArena's
pipeline does) turns a callable `_target_` into its import path and imports it again."""
from __future__ import annotations

import math

import torch

from .harness import SEED
from .loader import import_clarena


def hat_mlp_one_ulp_off(**kwargs):
    """CLArena's HATMaskMLP with fc/0's first weight moved to the next float32 up."""
    backbone = import_clarena().backbones.HATMaskMLP(**kwargs)
    with torch.no_grad():
        w = backbone.fc[0].weight.view(-1)
        w[0] = torch.nextafter(w[0], torch.tensor(math.inf))
    return backbone


def hat_mlp_reseeded(**kwargs):
    """CLArena's HATMaskMLP, built after reseeding the global RNG differently."""
    torch.manual_seed(SEED + 1)
    return import_clarena().backbones.HATMaskMLP(**kwargs)
