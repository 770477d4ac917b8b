"""Train step (forward + backward) of AmnesiacHATResNet18 in stage 'train_with_backup' with 1 and 3
backup tasks, against a plain 'train' step of the same class: batch 32, 3x32x32, CPU, shared batch
norm. Reports, measured side by side in one run:

* time: median of interleaved repetitions (every case once per round), in this process;
* peak memory: a fresh subprocess per case and repetition; the figure is
  `ru_maxrss` after one step minus `ru_maxrss` before it (model and input already built), i.e. the
  step's growth of the process's peak resident set (activations, gradients, workspaces).

Loss: the sum of the main feature plus, in 'train_with_backup', of every backup feature. Gradients
are reset to None before each step (as `optimizer.zero_grad()` does).

Run from the repository root: python bench/amnesiac_train_step.py [--repeats N] [--memory-repeats N] [--threads N]
"""
from __future__ import annotations

import argparse
import gc
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from _backbones import stored_masks  # noqa: E402
from _timing import interleaved, report  # noqa: E402

from generated.resnet18_amnesiac_hat import AmnesiacHATResNet18  # noqa: E402

CASES = {
    # name: number of backup tasks (0: plain 'train' step)
    "train (no backup)": 0,
    "train_with_backup, 1 backup": 1,
    "train_with_backup, 3 backups": 3,
}
BASELINE = "train (no backup)"
ARGS = dict(s_max=400.0, batch_idx=3, num_batches=10)


def build(n_backups: int, batch: int):
    torch.manual_seed(0)
    net = AmnesiacHATResNet18(input_channels=3, output_dim=512, gate="sigmoid", batch_normalization="shared")
    stored_masks(net, n_backups)
    net.setup_task_id(max(n_backups, 1) + 1)
    if n_backups:
        net.instantiate_backup_backbones(list(range(1, n_backups + 1)))
    net.train()
    x = torch.randn(batch, 3, 32, 32)

    def step() -> float:
        for p in net.parameters():
            p.grad = None
        t = time.perf_counter()
        if n_backups:
            f, backup_features, _, _ = net(x, "train_with_backup", **ARGS)
            loss = f.sum() + sum(b.sum() for b in backup_features.values())
        else:
            f, _, _ = net(x, "train", **ARGS)
            loss = f.sum()
        loss.backward()
        return time.perf_counter() - t

    return net, step


def memory_child(case: str, batch: int) -> None:
    """Runs in a fresh process: print the step's ru_maxrss growth in KiB."""
    _, step = build(CASES[case], batch)
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(after - before)


def measure_memory(batch: int, repeats: int, threads: int) -> dict[str, list[float]]:
    out = {case: [] for case in CASES}
    for _ in range(repeats):  # interleaved as well
        for case in CASES:
            r = subprocess.run([sys.executable, __file__, "--memory-child", case, "--batch", str(batch),
                                "--threads", str(threads)],
                               check=True, capture_output=True, text=True)
            out[case].append(int(r.stdout.split()[-1]) / 1024)  # KiB -> MiB
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--memory-repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1,
                    help="intra-op threads (1: stable ratios on a shared 2-core machine)")
    ap.add_argument("--memory-child")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.memory_child:
        memory_child(a.memory_child, a.batch)
        return

    mem = measure_memory(a.batch, a.memory_repeats, a.threads)
    base = statistics.median(mem[BASELINE])
    print(f"AmnesiacHATResNet18 step peak memory (ru_maxrss after - before one step, fresh process per case, "
          f"median of {a.memory_repeats}), batch {a.batch}, 3x32x32")
    for case, ms in mem.items():
        med = statistics.median(ms)
        print(f"  {case:<40} median {med:9.1f} MiB   ratio {med / base:5.2f}   "
              f"(runs: {', '.join(f'{m:.1f}' for m in ms)})")

    steps = {case: build(n, a.batch)[1] for case, n in CASES.items()}
    for _ in range(2):  # warm-up
        for s in steps.values():
            s()
    times = interleaved(steps, a.repeats)
    report(f"AmnesiacHATResNet18 step time (forward + backward), batch {a.batch}, 3x32x32, "
           f"{torch.get_num_threads()} threads, median of {a.repeats} interleaved", times, BASELINE)


if __name__ == "__main__":
    main()
