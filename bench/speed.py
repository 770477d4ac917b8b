"""The whole speed picture in one run: each benchmark below in a fresh process, one after the other,
each printing medians and ratios of cases measured side by side (interleaved) in that process.

  hat_schedule.py            HAT over its schedule: default, flush_denormals, CLArena, unmasked; WSN
  compile_step.py            eager against torch.compile (inductor), HAT / AmnesiacHAT / WSN / unmasked
  wsn_train_step.py          the WSN gate (a selection) against a torch.quantile gate
  vit_train_step.py          ViT-S/16: WSN (and HAT, once a ViT takes `mask hat`) against the unmasked ViT
  amnesiac_train_step.py     AmnesiacHAT with 0 / 1 / 3 backups: time and peak memory
  distributed_throughput.py  1 process against 2 DDP processes (gloo), samples per second

Run from the repository root: python bench/speed.py [--skip NAME,...] [--threads N]
(compile_step.py compiles four ResNet-18s: minutes on a small CPU; `--skip compile_step` leaves it out)
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["hat_schedule", "compile_step", "wsn_train_step", "vit_train_step", "amnesiac_train_step",
           "distributed_throughput"]
TAKES_THREADS = {"hat_schedule", "compile_step", "amnesiac_train_step", "vit_train_step"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip", default="")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    for name in BENCHES:
        if name in skip:
            continue
        argv = [sys.executable, str(HERE / f"{name}.py")]
        if name in TAKES_THREADS:
            argv += ["--threads", str(a.threads)]
        print(f"\n=== {name} ===", flush=True)
        t = time.perf_counter()
        subprocess.run(argv, check=False, cwd=HERE.parent)
        print(f"({name}: {time.perf_counter() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
