"""Pretrained weights for a spec's `pretrained PARAM from "MODEL" { ... }` declaration: torchvision's
MODEL built with the weights PARAM names (torchvision downloads or reads its cache, as CLArena's
ResNet18 does), or with MODEL "file" the state dict saved at the path PARAM names; its state-dict
keys renamed, loaded with strict=False (keys the network does not have are left out; a shape that
does not fit is an error)."""
from __future__ import annotations

from typing import NamedTuple

from torch import nn

from ..core.layers import PROJECTIONS

# `from "file"`: PARAM is the path of a state dict saved with torch.save (a timm checkpoint's, say),
# read with weights_only=True; no torchvision model has this name.
FILE = "file"


class Source(NamedTuple):
    model: str  # a torchvision.models constructor, e.g. "resnet18", or FILE
    renames: tuple[tuple[str, str | None], ...]  # dotted-segment runs -> replacement (None: drop)


def rename(key: str, renames) -> str | None:
    """`key` with every run of whole dotted segments that a rule names replaced (the first rule
    that matches at a position wins); None when a matching rule drops it."""
    parts = key.split(".")
    out: list[str] = []
    i = 0
    while i < len(parts):
        for old, new in renames:
            run = old.split(".")
            if parts[i:i + len(run)] == run:
                if new is None:
                    return None
                out += new.split(".")
                i += len(run)
                break
        else:
            out.append(parts[i])
            i += 1
    return ".".join(out)


def load(module: nn.Module, source: Source, weights: str, projections_only: bool = False) -> None:
    """Load torchvision's `source.model` with `weights` into `module`. With `projections_only`
    (HAT's networks, as CLArena's HAT ResNets load them) only linear/conv parameters are taken."""
    if source.model == FILE:  # a state dict saved with torch.save, at the path `weights` (tensors only)
        import torch

        state = torch.load(weights, map_location="cpu", weights_only=True)
    else:
        import torchvision  # only needed when weights are asked for

        state = getattr(torchvision.models, source.model)(weights=weights).state_dict()
    modules = dict(module.named_modules())
    projections = tuple(getattr(nn, cls) for cls in PROJECTIONS)
    converted = {}
    for key, value in state.items():
        new = rename(key, source.renames)
        if new is None:
            continue
        owner = modules.get(new.rpartition(".")[0])
        if projections_only and not isinstance(owner, projections):
            continue
        converted[new] = value
    module.load_state_dict(converted, strict=False)
