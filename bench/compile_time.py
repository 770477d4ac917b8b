"""`specc compile specs/resnet152.cl` (and the masked resnet152_wsn.cl) against `python -c "import
torch"` (goal: ratio <= 1.3), and `specc check` on every spec against 0.5 s. Also shown:
specs/resnet152_hat.cl, whose `prepare(...)` makes compile import torch and run the masking pass
(no goal: that is the price of a prepared structure, paid once at compile time).
Run from the repo root: python bench/compile_time.py"""
from __future__ import annotations

import glob
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import PY, interleaved, report, time_command  # noqa: E402

SPECC = str(Path(PY).with_name("specc"))


def main(repeats: int = 7) -> None:
    out = tempfile.mkdtemp()
    try:
        times = interleaved({
            "python -c 'import torch'": lambda: time_command([PY, "-c", "import torch"]),
            "specc compile specs/resnet152.cl": lambda: time_command([SPECC, "compile", "specs/resnet152.cl", "-o", out]),
            "specc compile specs/resnet152_wsn.cl": lambda: time_command([SPECC, "compile", "specs/resnet152_wsn.cl", "-o", out]),
        }, repeats)
        prepared = "specc compile specs/resnet152_hat.cl (prepare: imports torch, runs the pass)"
        times[prepared] = [time_command([SPECC, "compile", "specs/resnet152_hat.cl", "-o", out]) for _ in range(3)]
        report("compile time vs the torch import floor", {k: v for k, v in times.items() if k != prepared},
               "python -c 'import torch'", goal=1.3)
        print(f"  {prepared}: median {statistics.median(times[prepared]) * 1000:.0f} ms")
        checks = {}
        for spec in sorted(glob.glob("specs/*.cl")):
            checks[spec] = statistics.median(time_command([SPECC, "check", spec]) for _ in range(3))
        worst = max(checks, key=checks.get)
        print(f"specc check: slowest {worst} {checks[worst] * 1000:.0f} ms over {len(checks)} specs "
              f"(goal well under 500 ms: {'met' if checks[worst] < 0.5 else 'NOT met'})")
    finally:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
