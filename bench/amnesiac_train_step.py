"""Train step (forward + backward) of AmnesiacHATResNet18 in stage 'train_with_backup' with 1 and 3
backup tasks, against the unmasked ResNet18's train step and a plain 'train' step of the same class:
batch 32, 3x32x32, CPU, shared batch norm in training mode (running statistics updated). Each
backup count runs twice: the selected forward (the default: one layer call per routed layer,
amnesiac_routing) and the sequential one (both sides' modules, as CLArena; `--base clarena`).

* time: medians of interleaved rounds: every round runs every case once under every setting (1 and
  2 intra-op threads, specc.flush_denormals off and on), so that machine noise hits all alike;
  ratios to the unmasked ResNet18 step of the same setting, printed beside issue 22's goals;
* peak memory: a fresh subprocess per case and repetition; the figure is `ru_maxrss` after one step
  minus `ru_maxrss` before it (model and input already built), i.e. the step's growth of the
  process's peak resident set (activations, gradients, workspaces).

Loss: the sum of the main feature plus, in 'train_with_backup', of every backup feature. Gradients
are reset to None before each step (as `optimizer.zero_grad()` does).

Run from the repository root:
python bench/amnesiac_train_step.py [--repeats N] [--memory-repeats N] [--threads 1 2] [--clock wall|cpu]
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
from _timing import interleaved  # noqa: E402

import specc  # noqa: E402
from generated.resnet18 import ResNet18  # noqa: E402
from generated.resnet18_amnesiac_hat import AmnesiacHATResNet18  # noqa: E402

CASES = {
    # name: (number of backup tasks (None: the unmasked ResNet18; 0: a plain 'train' step),
    #        sequential backup paths, issue 22's goal as a ratio to the unmasked step)
    "unmasked ResNet18": (None, False, None),
    "AmnesiacHAT train (no backup)": (0, False, None),
    "train_with_backup, 1 backup": (1, False, 2.2),
    "  sequential (before), 1 backup": (1, True, 2.2),
    "train_with_backup, 3 backups": (3, False, 4.4),
    "  sequential (before), 3 backups": (3, True, 4.4),
}
BASELINE = "unmasked ResNet18"
ARGS = dict(s_max=400.0, batch_idx=3, num_batches=10)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def build(case: str, batch: int):
    n_backups, sequential, _ = CASES[case]
    torch.manual_seed(0)
    if n_backups is None:
        net = ResNet18(input_channels=3, output_dim=512)
    else:
        net = AmnesiacHATResNet18(input_channels=3, output_dim=512, gate="sigmoid", batch_normalization="shared")
        stored_masks(net, n_backups)
        net.setup_task_id(max(n_backups, 1) + 1)
        if n_backups:
            net.instantiate_backup_backbones(list(range(1, n_backups + 1)))
        net._specc_sequential_backups = sequential
    net.train()
    return net, torch.randn(batch, 3, 32, 32)


def stepper(case: str, net, x, threads: int, flush: bool, clock):
    n_backups = CASES[case][0]

    def step() -> float:
        torch.set_num_threads(threads)
        with specc.flush_denormals(flush):
            for p in net.parameters():
                p.grad = None
            t = clock()
            if n_backups is None:
                loss = net(x, "train")[0].sum()
            elif n_backups:
                f, backup_features, _, _ = net(x, "train_with_backup", **ARGS)
                loss = f.sum() + sum(b.sum() for b in backup_features.values())
            else:
                loss = net(x, "train", **ARGS)[0].sum()
            loss.backward()
            return clock() - t

    return step


def memory_child(case: str, batch: int) -> None:
    """Runs in a fresh process: print the step's ru_maxrss growth in KiB."""
    net, x = build(case, batch)
    step = stepper(case, net, x, torch.get_num_threads(), False, time.perf_counter)
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(after - before)


def measure_memory(batch: int, repeats: int) -> dict[str, list[float]]:
    out = {case: [] for case in CASES}
    for _ in range(repeats):  # interleaved as well
        for case in CASES:
            r = subprocess.run([sys.executable, __file__, "--memory-child", case, "--batch", str(batch)],
                               check=True, capture_output=True, text=True)
            out[case].append(int(r.stdout.split()[-1]) / 1024)  # KiB -> MiB
    return out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--memory-repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="intra-op thread counts")
    ap.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                    help="cpu: this process's CPU time (with 1 thread: the step's own time on a loaded machine)")
    ap.add_argument("--memory-child")
    a = ap.parse_args()
    if a.memory_child:
        torch.set_num_threads(1)
        memory_child(a.memory_child, a.batch)
        return
    print(f"CPU: {cpu_name()} ({torch.get_num_threads()} intra-op threads available)")

    if a.memory_repeats:
        torch.set_num_threads(1)
        mem = measure_memory(a.batch, a.memory_repeats)
        base = statistics.median(mem["AmnesiacHAT train (no backup)"])
        print(f"step peak memory (ru_maxrss after - before one step, fresh process per case, "
              f"median of {a.memory_repeats}), batch {a.batch}, 3x32x32; ratio to AmnesiacHAT's 'train' step")
        for case, ms in mem.items():
            med = statistics.median(ms)
            print(f"  {case:<34} median {med:9.1f} MiB   ratio {med / base:5.2f}   "
                  f"(runs: {', '.join(f'{m:.1f}' for m in ms)})")

    built = {case: build(case, a.batch) for case in CASES}
    settings = [(threads, flush) for threads in a.threads for flush in (False, True)]
    steps = {(case, s): stepper(case, *built[case], *s, CLOCKS[a.clock]) for case in CASES for s in settings}
    for step in steps.values():  # warm-up
        step()
    times = interleaved(steps, a.repeats, settle=True)
    print(f"\ntrain step time (forward + backward), batch {a.batch}, 3x32x32, medians of {a.repeats} interleaved "
          f"rounds ({a.clock} clock); ratio to the unmasked ResNet18 step of the same setting")
    header = "".join(f" | {t} thr, flush {'on ' if f else 'off'}" for t, f in settings)
    print(f"  {'case':<34}{header} | goal")
    for case in CASES:
        cells = []
        for s in settings:
            med = statistics.median(times[(case, s)])
            base = statistics.median(times[(BASELINE, s)])
            cells.append(f"{med * 1000:7.0f} ms {med / base:5.2f}x")
        goal = CASES[case][2]
        print(f"  {case:<34} | " + " | ".join(cells) + f" | {'' if goal is None else f'<= {goal}x'}")


if __name__ == "__main__":
    main()
