"""Shared helpers of the benchmarks: interleaved repetitions, medians, ratios measured in one run."""
from __future__ import annotations

import statistics
import subprocess
import sys
import time


def time_command(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def interleaved(cases: dict[str, callable], repeats: int, settle: bool = False) -> dict[str, list[float]]:
    """Run every case once per round, `repeats` rounds, so that machine noise hits all alike.
    `settle`: collect garbage before each case (not timed) and start each round at the next case,
    so that no case pays for the garbage of the one before it or always runs in the same place."""
    import gc

    out = {name: [] for name in cases}
    names = list(cases)
    for r in range(repeats):
        for name in (names[r % len(names):] + names[:r % len(names)]) if settle else names:
            if settle:
                gc.collect()
            out[name].append(cases[name]())
    return out


def report(title: str, times: dict[str, list[float]], baseline: str, goal: float | None = None) -> float:
    base = statistics.median(times[baseline])
    print(title)
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:<40} median {med * 1000:9.1f} ms   ratio {med / base:5.2f}")
    worst = max(statistics.median(ts) / base for n, ts in times.items() if n != baseline)
    if goal is not None:
        print(f"  goal: ratio <= {goal}: {'met' if worst <= goal else 'NOT met'}")
    return worst


PY = sys.executable
