"""Backbones and train steps shared by the speed benchmarks: ResNet-18 family at batch 32, 3x32x32,
every masked network carrying the unmasked network's weights; CLArena's classes when importable."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
for p in (str(ROOT), str(ROOT / "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

import specc  # noqa: E402

KW = dict(input_channels=3, output_dim=512)
# time.perf_counter (wall) or time.process_time (this process's CPU time: with one intra-op thread,
# the time the step computed, whatever else the machine's cores were doing meanwhile)
CLOCK = {"clock": time.perf_counter}


def use_clock(name: str) -> None:
    CLOCK["clock"] = {"wall": time.perf_counter, "cpu": time.process_time}[name]
S_MAX = 400.0
NUM_BATCHES = 10


def clarena_backbones():
    """CLArena's `clarena.backbones` (torchvision stubbed), or None with the reason printed."""
    try:
        from clarena_client.loader import import_clarena

        return import_clarena().backbones
    except Exception as e:  # noqa: BLE001 - the benchmarks run without CLArena
        print(f"(CLArena not importable: {e}; its columns are left out)")
        return None


def same_weights(net: torch.nn.Module, source: torch.nn.Module) -> torch.nn.Module:
    """`net` with `source`'s parameters and buffers where the names match."""
    own = net.state_dict()
    own.update({k: v for k, v in source.state_dict().items() if k in own and own[k].shape == v.shape})
    net.load_state_dict(own)
    return net


def hat_args(batch_idx: int) -> dict:
    return dict(s_max=S_MAX, batch_idx=batch_idx, num_batches=NUM_BATCHES)


def train_step(net: torch.nn.Module, x: torch.Tensor, kind: str, batch_idx: int = 1, flush: bool = False,
               backups: int = 0):
    """A timed train step (forward, loss = sum of the features, backward; gradients reset first) of
    a plain ('plain'), HAT ('hat') or WSN ('wsn') backbone; `flush`: with specc.flush_denormals."""

    def run() -> float:
        with specc.flush_denormals(flush):
            for p in net.parameters():
                p.grad = None
            clock = CLOCK["clock"]
            t = clock()
            if kind == "plain":
                loss = net(x, "train")[0].sum()
            elif kind == "hat":
                loss = net(x, "train", **hat_args(batch_idx))[0].sum()
            elif kind == "backup":
                f, backup_features, _, _ = net(x, "train_with_backup", **hat_args(batch_idx))
                loss = f.sum() + sum(b.sum() for b in backup_features.values())
            elif kind == "wsn":
                loss = net(x, "train", mask_percentage=0.5)[0].sum()
            else:
                raise ValueError(kind)
            loss.backward()
            return clock() - t

    return run


def stored_masks(net, n_tasks: int) -> None:
    """Give an AmnesiacHAT/HAT network `n_tasks` finished tasks with N(0, 1) embeddings."""
    for t in range(1, n_tasks + 1):
        net.setup_task_id(t)
        with torch.no_grad():
            for te in net.task_embedding_t.values():
                te.weight.normal_()
        net.store_mask()
