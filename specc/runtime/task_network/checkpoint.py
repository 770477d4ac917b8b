"""A trained masked backbone as one file for `specc export --task`: its state_dict plus the masks
its state_dict does not hold.

HAT's stored masks (`store_mask()`) live in the plain dict attribute `masks`, not in the
state_dict, and WSN backbones keep no masks at all (CLArena's WSN algorithm keeps them). The
checkpoint is a dict of tensors, strings and ints only, saved with torch.save and read with
`torch.load(..., weights_only=True)` (nothing is unpickled):

    {"state_dict": backbone.state_dict(),
     "masks": {task_id: {layer_name: Tensor(units)}},                         # HAT, AmnesiacHAT
     "wsn_masks": {task_id: {"weight": {layer_name: Tensor},
                             "bias": {layer_name: Tensor | None}}}}           # WSN
"""
from __future__ import annotations

import torch
from torch import nn

from .. import batchnorm
from ..schemes import unit_masked
from ..schemes.hat import specc_base


def checkpoint(backbone: nn.Module, wsn_masks: dict | None = None) -> dict:
    """The checkpoint of `backbone` (see the module's doc); `wsn_masks`: {task_id: (weight_mask,
    bias_mask)} for a WSN backbone."""
    data: dict = {"state_dict": {k: v.detach().cpu() for k, v in backbone.state_dict().items()}}
    if unit_masked(backbone):
        data["masks"] = {int(t): {name: m.detach().cpu() for name, m in mask.items()}
                         for t, mask in backbone.masks.items()}
    if wsn_masks:
        data["wsn_masks"] = {int(t): {"weight": {k: v.detach().cpu() for k, v in wm.items()},
                                      "bias": {k: None if v is None else v.detach().cpu() for k, v in bm.items()}}
                             for t, (wm, bm) in wsn_masks.items()}
    return data


def save(backbone: nn.Module, path, wsn_masks: dict | None = None) -> None:
    torch.save(checkpoint(backbone, wsn_masks), path)


def load(backbone: nn.Module, path) -> dict:
    """Load the checkpoint at `path` into `backbone` (built with the arguments it was trained with):
    its per-task batch norms and AmnesiacHAT backup backbones are made for the tasks the state_dict
    holds, then the state_dict is loaded strictly and the HAT masks are stored. Returns the WSN masks, {task_id: (weight_mask,
    bias_mask)} (empty for HAT)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a file torch wrote, or one holding objects beyond tensors
        raise ValueError(f"cannot read the checkpoint {path}: {type(e).__name__}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("state_dict"), dict):
        raise ValueError(f"{path} is not a specc task checkpoint (a dict with 'state_dict', 'masks' or "
                         "'wsn_masks': see specc.save_checkpoint)")
    state = data["state_dict"]
    groups = getattr(backbone, "_specc_bn_groups", None) or []
    for g in groups:
        prefix = ".".join(g.owner + (g.attr + "s",)) + "."
        for task in sorted({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)}):
            batchnorm.copy_for_task(backbone, [g], int(task), freeze=specc_base(backbone))
    # AmnesiacHAT's backups (its state after instantiate_backup_backbones) are in the state_dict:
    # build them first, as the per-task batch norms above, so that the strict load finds them
    backups = sorted({int(k.split(".")[1]) for k in state
                      if k.startswith("backup_backbones.") and k.split(".")[1].isdigit()})
    if backups and hasattr(backbone, "instantiate_backup_backbones"):
        if getattr(backbone, "task_id", None) is None and data.get("masks"):
            # the backups are built "for the current task" (which CLArena's base logs): a fresh
            # backbone has none, so it gets the last task it holds a mask of, as when it was saved
            backbone.task_id = max(int(t) for t in data["masks"])
        backbone.instantiate_backup_backbones(backups)
    try:
        backbone.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"the checkpoint {path} does not fit this backbone (built with other arguments?): "
                         f"{' '.join(line.strip() for line in str(e).splitlines()[:2])}") from None
    if unit_masked(backbone):
        for task, mask in data.get("masks", {}).items():
            for sub in backbone.modules():
                if unit_masked(sub):
                    sub.masks[int(task)] = mask
    return {int(t): (m["weight"], m["bias"]) for t, m in data.get("wsn_masks", {}).items()}
