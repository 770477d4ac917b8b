"""Data-parallel training of specc's backbones (DDP, FSDP2): what the runtime does so that every
rank holds the same masks and statistics, and the helpers that let mask-reading methods and the
gradient rules (specc.runtime.rules) work on sharded parameters (DTensors).

Nothing here imports torch.distributed eagerly: a backbone used in one process never pays for it.
"""
from __future__ import annotations

import sys
import weakref

from torch import Tensor, nn

_managed: weakref.WeakKeyDictionary[nn.Module, set[int]] = weakref.WeakKeyDictionary()


def _dist():
    """torch.distributed when it is initialised with more than one rank, else None."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized() or dist.get_world_size() < 2:
        return None
    return dist


def is_dtensor(t) -> bool:
    mod = sys.modules.get("torch.distributed.tensor")
    return mod is not None and isinstance(t, mod.DTensor)


def full(t: Tensor) -> Tensor:
    """`t` itself, or the whole tensor a DTensor (a sharded parameter of FSDP2) stands for,
    gathered from its shards (differentiably)."""
    return t.full_tensor() if is_dtensor(t) else t


def like(reference: Tensor, value: Tensor) -> Tensor:
    """`value` (a whole tensor of `reference`'s global shape) laid out as `reference`: the local
    shard with `reference`'s mesh and placements when `reference` is a DTensor (no
    communication: every rank holds `value` whole), else `value` on `reference`'s device."""
    if is_dtensor(reference):
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(value.to(reference.device), reference.device_mesh, reference.placements,
                                 src_data_rank=None)
    return value.to(reference.device)


def average_batch_norm_statistics(module: nn.Module) -> None:
    """Average the running statistics of every batch norm in `module` across the ranks (see
    average_batch_norm_statistics_of)."""
    average_batch_norm_statistics_of(
        [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)])


def average_batch_norm_statistics_of(norms: list[nn.Module]) -> None:
    """Average the running statistics (mean, variance) of the batch norms `norms` across the ranks
    of the default process group, in place (no-op outside torch.distributed or with one rank), so
    that a stored copy, and the test results computed with it, are the same on every rank. Each
    rank's last steps update its own statistics (DDP broadcasts rank 0's buffers before each
    forward only); the average is that of the ranks' statistics (for statistics of the whole
    global batch, use torch.nn.SyncBatchNorm). num_batches_tracked is equal on every rank."""
    dist = _dist()
    if dist is None:
        return
    world = dist.get_world_size()
    for m in norms:
        if m.track_running_stats:
            for buf in (m.running_mean, m.running_var):
                if buf is not None:
                    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
                    buf.div_(world)


def _ddp_managed(ddp: nn.Module) -> set[int]:
    ids = _managed.get(ddp)
    if ids is None:
        ids = {id(p) for p in getattr(ddp, "_module_parameters", ddp.parameters())}
        _managed[ddp] = ids
    return ids


LATE_BACKUPS = ("backup backbones created after the model was {how}: {what} does not synchronise them (each "
                "rank would train its own copy). Call instantiate_backup_backbones() before {wrapping} (CLArena's "
                "AmnesiacHAT does, in setup_task_id, before each task's Trainer.fit), or {how2} again after it.")


def check_backups_synchronised(network: nn.Module) -> None:
    """Raise when `network`'s backup backbones were created after it was wrapped in
    DistributedDataParallel, which then does not reduce their gradients. Called by AmnesiacHAT's
    forward in 'train_with_backup' (specc's bases); free outside torch.distributed."""
    if _dist() is None:
        return
    ddp_cls = getattr(sys.modules.get("torch.nn.parallel.distributed"), "DistributedDataParallel", None)
    ddp = getattr(ddp_cls, "_active_ddp_module", None) if ddp_cls is not None else None
    if ddp is None:
        return
    managed = _ddp_managed(ddp)
    if any(id(p) not in managed for b in network.backup_backbones.values() for p in b.parameters()
           if p.requires_grad):
        raise RuntimeError(LATE_BACKUPS.format(how="wrapped in DistributedDataParallel", what="DDP",
                                               wrapping="wrapping it", how2="wrap the model"))


def check_not_sharded(network: nn.Module) -> None:
    """Raise when `network` was sharded with fully_shard already: backups created now would be
    plain tensors among sharded ones, which FSDP neither shards nor reduces. Called by AmnesiacHAT's
    instantiate_backup_backbones (specc's bases)."""
    if any(is_dtensor(p) for p in network.parameters()):
        raise RuntimeError(LATE_BACKUPS.format(how="sharded with fully_shard", what="FSDP",
                                               wrapping="fully_shard", how2="call fully_shard"))
