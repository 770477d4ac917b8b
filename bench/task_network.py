"""Per-task inference: task 1's network (specc.task_network) of a HAT ResNet-18 with half of every
layer's units kept, against the masked backbone's test stage and the unmasked ResNet-18's eval
forward (same weights), batch 32, 3x32x32, CPU, no_grad, eval mode; interleaved rounds, medians.
Goal: the task network >= 2.5x faster than the unmasked eval (ratio <= 0.40).
Run from the repo root: python bench/task_network.py [rounds] [threads] (threads: default 1; on a
machine shared with other work, torch's intra-op threads spin-wait for each other and time noise)."""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT))
from _timing import interleaved, report  # noqa: E402

import specc  # noqa: E402
from generated.resnet18 import ResNet18  # noqa: E402
from generated.resnet18_hat import HATMaskResNet18  # noqa: E402


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except Exception:
        return "unknown CPU"


def _half_kept(hat: HATMaskResNet18) -> None:
    """Exactly half of every layer's units kept (random ones), as stored masks of task 1."""
    hat.setup_task_id(1)
    for embedding in hat.task_embedding_t.values():
        units = embedding.weight.shape[1]
        signs = torch.ones(units)
        signs[torch.randperm(units)[: units // 2]] = -1
        embedding.weight.data = signs.view(1, -1)
    hat.store_mask()


def main(rounds: int = 15, threads: int = 1, batch: int = 32) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    plain = ResNet18(input_channels=3, output_dim=512).eval()
    hat = HATMaskResNet18(input_channels=3, output_dim=512, gate="sigmoid", batch_normalization="shared")
    hat.load_state_dict({**hat.state_dict(), **plain.state_dict()})
    _half_kept(hat)
    hat.eval()
    x = torch.randn(batch, 3, 32, 32)
    t = time.perf_counter()
    net = specc.task_network(hat, 1, x[:1])
    built = time.perf_counter() - t
    with torch.no_grad():
        ref = hat(x, "test", test_task_id=1)[0]
        err = ((net(x) - ref).abs().max() / ref.abs().max()).item()

    def timed(fn):
        def case():
            with torch.no_grad():
                t0 = time.perf_counter()
                fn()
                return time.perf_counter() - t0
        return case

    cases = {
        "unmasked ResNet18 eval": timed(lambda: plain(x)),
        "HAT test stage (masked backbone)": timed(lambda: hat(x, "test", test_task_id=1)),
        "task 1's network (specc.task_network)": timed(lambda: net(x)),
    }
    for case in cases.values():  # warm-up
        case()
    print(f"CPU: {_cpu()}; torch {torch.__version__}, {torch.get_num_threads()} threads; batch {batch}, 3x32x32; "
          f"{rounds} interleaved rounds")
    kept = sum(int(m.sum()) for m in hat.masks[1].values())
    total = sum(m.numel() for m in hat.masks[1].values())
    params = sum(p.numel() for p in net.parameters()) / sum(p.numel() for p in plain.parameters())
    print(f"units kept {kept}/{total}; task network: {params:.2f}x the parameters, built in {built:.2f} s, "
          f"max error {err:.1e} (relative to the test stage)")
    times = interleaved(cases, rounds, settle=True)
    report("eval forward, ratio to the unmasked network:", times, "unmasked ResNet18 eval")
    speedup = statistics.median(times["unmasked ResNet18 eval"]) / statistics.median(
        times["task 1's network (specc.task_network)"])
    print(f"  task network speed-up over the unmasked eval: {speedup:.2f}x (goal >= 2.5x: "
          f"{'met' if speedup >= 2.5 else 'NOT met'})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    main(args.repeats, args.threads, args.batch)
