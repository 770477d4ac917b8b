"""WSN's train step on the CPU, two tables from one run.

1. WSNMaskMLP 784-2000-2000-64 (batch 64, mask_percentage 0.5) with specc's gate against the same step
   with a torch.quantile gate. Goal: at least 3x faster (ratio <= 0.33).
2. Issue 22's row: WSNMaskResNet18 (batch 32, 3x32x32, mask_percentage 0.5) against the unmasked
   ResNet18 with the same weights, now (the bracket select, specc.runtime.bracket, and the masked
   weights' autograd.Function, specc.runtime.schemes.wsn.MaskedWeight) and as before them (the radix
   select, specc.runtime.selection, and `weight * mask` under autograd), interleaved.
   Goal: WSN <= 1.30x the unmasked step.

The masks of every variant are checked equal before timing. Run from the repo root:
  python bench/wsn_train_step.py [--repeats N] [--threads N] [--clock wall|cpu] [--only mlp|resnet]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
import _backbones  # noqa: E402
from _timing import interleaved, report  # noqa: E402

from generated.mlp_wsn import WSNMaskMLP  # noqa: E402
from specc.runtime import gates  # noqa: E402
from specc.runtime.schemes import wsn  # noqa: E402


class QuantileGate(torch.autograd.Function):
    """The reference gate: a full torch.quantile threshold, straight-through backward."""

    @staticmethod
    def forward(ctx, scores, percentage):
        threshold = torch.quantile(scores.flatten(), 1 - percentage)
        return (scores >= threshold).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def mlp_table(repeats: int) -> None:
    torch.manual_seed(0)
    fast = WSNMaskMLP(input_dim=784, hidden_dims=[2000, 2000], output_dim=64)
    slow = WSNMaskMLP(input_dim=784, hidden_dims=[2000, 2000], output_dim=64)
    slow.load_state_dict(fast.state_dict())
    slow.gate_fn = QuantileGate
    for net in (fast, slow):
        net.setup_task_id(1)
    x = torch.randn(64, 784)

    def step(net):
        def run():
            clock = _backbones.CLOCK["clock"]
            t = clock()
            f, wm, bm, _ = net(x, "train", mask_percentage=0.5)
            f.sum().backward()
            return clock() - t
        return run

    # Same masks from both gates (the definition), checked once before timing.
    _, wm_fast, _, _ = fast(x, "train", mask_percentage=0.5)
    _, wm_slow, _, _ = slow(x, "train", mask_percentage=0.5)
    assert all(torch.equal(wm_fast[k], wm_slow[k]) for k in wm_fast)
    times = interleaved({"torch.quantile gate": step(slow), "specc gate": step(fast)}, repeats)
    ratio = report("WSNMaskMLP 784-2000-2000-64 train step, batch 64, c=0.5", times, "torch.quantile gate")
    print(f"  speed-up {1 / ratio:.1f}x (goal >= 3x: {'met' if ratio <= 1 / 3 else 'NOT met'})")


def _as_before(run):
    """`run` with the gate's radix select and the plain `weight * mask` product (before issue 22's
    second round), restored after."""
    def before():
        select, masked = gates.SELECT, wsn._masked
        gates.SELECT, wsn._masked = gates.order_statistics, lambda weight, mask: weight * mask
        try:
            return run()
        finally:
            gates.SELECT, wsn._masked = select, masked
    return before


def resnet_table(repeats: int) -> None:
    from generated.resnet18 import ResNet18
    from generated.resnet18_wsn import WSNMaskResNet18

    torch.manual_seed(0)
    plain = ResNet18(**_backbones.KW)
    now = _backbones.same_weights(WSNMaskResNet18(**_backbones.KW), plain)
    before = WSNMaskResNet18(**_backbones.KW)
    before.load_state_dict(now.state_dict())  # the scores too
    for net in (now, before):
        net.setup_task_id(1)
    x = torch.randn(32, 3, 32, 32)
    cases = {"unmasked ResNet18": _backbones.train_step(plain, x, "plain"),
             "WSN before (radix, w * m)": _as_before(_backbones.train_step(before, x, "wsn")),
             "WSN now": _backbones.train_step(now, x, "wsn")}
    masks_now = now.get_mask("train", mask_percentage=0.5)[0]
    masks_before = _as_before(lambda: before.get_mask("train", mask_percentage=0.5)[0])()
    assert all(torch.equal(masks_now[k], masks_before[k]) for k in masks_now)
    for run in cases.values():  # warm-up (and each gate's first, unhinted selection)
        run()
    times = interleaved(cases, repeats, settle=True)
    base = times["unmasked ResNet18"]
    print(f"WSNMaskResNet18 train step vs the unmasked ResNet18, batch 32, 3x32x32, c=0.5, "
          f"{torch.get_num_threads()} thread(s), {repeats} interleaved rounds (per-round ratios):")
    for name, ts in times.items():
        ratios = sorted(t / b for t, b in zip(ts, base))
        print(f"  {name:<28} median {statistics.median(ts) * 1000:8.1f} ms   ratio median "
              f"{statistics.median(ratios):.2f}x (min {ratios[0]:.2f}, max {ratios[-1]:.2f})")
    r = statistics.median(t / b for t, b in zip(times["WSN now"], base))
    print(f"  goal: WSN <= 1.30x the unmasked step: {'met' if r <= 1.30 else 'NOT met'} ({r:.2f}x)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: the process's CPU time (meaningful with --threads 1)")
    ap.add_argument("--only", choices=("mlp", "resnet"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    _backbones.use_clock(a.clock)
    if a.only != "resnet":
        mlp_table(a.repeats)
    if a.only != "mlp":
        resnet_table(a.repeats)


if __name__ == "__main__":
    main()
