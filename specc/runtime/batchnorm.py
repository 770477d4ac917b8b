"""Per-task batch norm ("independent" batch normalization of HAT and WSN backbones).

Each batch-norm attribute `X` of a module gets a ModuleDict `Xs` of per-task copies in the module
that owns it, keyed by task id strings (CLArena's `fc_bns`, `conv_bn1s`), and the state it had at
construction (`original_X_state_dict`); a batch norm inside a module list is reached in its
copy by its index. Stages 'test' and 'unlearning_test' use the copy of `test_task_id` (or of the
current task when it is None), the others the live modules."""
from __future__ import annotations

from copy import deepcopy
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.layers import BATCH_NORMS
from . import distributed

# The norms that get per-task copies: the catalogue's entries with `per_task_copies`.
NORMS = tuple(getattr(nn, cls) for cls in BATCH_NORMS)


class Group(NamedTuple):
    owner: tuple[str, ...]  # path of the module that owns the batch-norm attribute
    attr: str  # `fc_bn`, `conv_bn1`, ...
    sub: tuple[str, ...]  # inside a module list: the index


def group_of(root: nn.Module, path: tuple[str, ...]) -> Group:
    parent = path[:-1]
    if parent and isinstance(root.get_submodule(".".join(parent)), nn.ModuleList):
        return Group(parent[:-1], parent[-1], (path[-1],))
    return Group(parent, path[-1], ())


def groups(root: nn.Module, norms: tuple = NORMS) -> list[Group]:
    """The batch-norm groups of `root`, in module order (`norms`: the classes copied per task; HAT on
    a transformer adds nn.LayerNorm)."""
    out: list[Group] = []
    for name, m in root.named_modules():
        if isinstance(m, norms):
            g = group_of(root, tuple(name.split(".")))
            g = g._replace(sub=())
            if g not in out:
                out.append(g)
    return out


def _owner(root: nn.Module, g: Group) -> nn.Module:
    return root.get_submodule(".".join(g.owner)) if g.owner else root


def create_copies(root: nn.Module, own: list[Group]) -> None:
    for g in own:
        owner = _owner(root, g)
        setattr(owner, f"{g.attr}s", nn.ModuleDict())
        setattr(owner, f"original_{g.attr}_state_dict", deepcopy(getattr(owner, g.attr).state_dict()))


def _frozen_copy(module: nn.Module) -> nn.Module:
    """A copy of a live batch norm to keep for a task: its parameters whole (gathered where they
    are FSDP2 shards: the copy is not FSDP's to unshard) and frozen. Copies are never trained
    (training uses the live modules), so as trainable parameters they would be parameters without
    gradients, which DistributedDataParallel stops on unless find_unused_parameters=True."""
    # deepcopy cannot copy FSDP2's shards: their copies are given (the whole tensors) in the memo
    memo = {id(p): nn.Parameter(distributed.full(p.detach()).clone()) for p in module.parameters()
            if distributed.is_dtensor(p)}
    copy = deepcopy(module, memo)
    for p in copy.parameters():
        p.requires_grad_(False)
    return copy


def copy_for_task(root: nn.Module, own: list[Group], task_id: int, always: bool = False,
                  freeze: bool = False) -> None:
    """Create the copy of task `task_id` (if missing, or `always`). `freeze`: specc's own bases
    (see _frozen_copy); CLArena's bases keep CLArena's plain deep copies."""
    for g in own:
        owner = _owner(root, g)
        copies = getattr(owner, f"{g.attr}s")
        if always or f"{task_id}" not in copies:
            live = getattr(owner, g.attr)
            copies[f"{task_id}"] = _frozen_copy(live) if freeze else deepcopy(live)


def store(root: nn.Module, own: list[Group], task_id: int, freeze: bool = False) -> None:
    copy_for_task(root, own, task_id, always=True, freeze=freeze)


def live_norms(root: nn.Module, own: list[Group]) -> list[nn.Module]:
    """The batch norms of `root` that forward passes update (every one but the per-task copies)."""
    copies = {id(m) for g in own for m in getattr(_owner(root, g), f"{g.attr}s").modules()}
    return [m for m in root.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in copies]


def reset(root: nn.Module, own: list[Group]) -> None:
    for g in own:
        owner = _owner(root, g)
        live, state = getattr(owner, g.attr), getattr(owner, f"original_{g.attr}_state_dict")
        if any(distributed.is_dtensor(p) for p in live.parameters()):
            # FSDP2 shards: copy each tensor into its shard (load_state_dict would mix the two kinds)
            targets = dict(live.named_parameters()) | dict(live.named_buffers())
            with torch.no_grad():
                for name, value in state.items():
                    targets[name].copy_(distributed.like(targets[name], value))
        else:
            live.load_state_dict(state)


def task_key(stage: str, test_task_id: int | None, task_id: int | None) -> str | None:
    """The per-task copy a forward in `stage` uses (None: the live batch norms)."""
    if stage not in ("test", "unlearning_test"):
        return None
    return f"{test_task_id if test_task_id is not None else task_id}"


def independent_bn(x: Tensor, live: nn.Module, copies: nn.ModuleDict, task: str | None, sub: tuple) -> Tensor:
    """Batch norm with per-task copies: the live module, or the copy stored for `task`."""
    if task is None:
        return live(x)
    module = copies[task]
    for part in sub:
        module = module[int(part)]
    return module(x)


def batch_norm_masked(bn: nn.modules.batchnorm._BatchNorm, x: Tensor, mask: Tensor) -> Tensor:
    """`bn(x) * mask` (mask over channels) in one pass: the mask is folded into the affine weight
    and bias, which are per-channel, so `(x_hat * w + b) * m == x_hat * (w * m) + b * m`.

    Running statistics are updated exactly as nn.BatchNorm's forward does (they do not depend on
    the affine transform). The result can differ from `bn(x) * mask` in the last bit when the mask
    is fractional (the product is rounded in another order); with binary masks it is identical."""
    bn._check_input_dim(x)
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    use_batch_stats = bn.training or (bn.running_mean is None and bn.running_var is None)
    track = not bn.training or bn.track_running_stats
    return F.batch_norm(x, bn.running_mean if track else None, bn.running_var if track else None,
                        bn.weight * mask, bn.bias * mask, use_batch_stats, factor, bn.eps)
