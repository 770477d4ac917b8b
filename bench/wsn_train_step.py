"""Train step of WSNMaskMLP 784-2000-2000-64 (batch 64, mask_percentage 0.5, CPU) with specc's gate
(a radix select, specc.runtime.selection) against the same step with a torch.quantile gate, side by side.
Goal: at least 3x faster (ratio <= 0.33). Run from the repo root: python bench/wsn_train_step.py"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from _timing import interleaved, report  # noqa: E402

from generated.mlp_wsn import WSNMaskMLP  # noqa: E402


class QuantileGate(torch.autograd.Function):
    """The reference gate: a full torch.quantile threshold, straight-through backward."""

    @staticmethod
    def forward(ctx, scores, percentage):
        threshold = torch.quantile(scores.flatten(), 1 - percentage)
        return (scores >= threshold).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def main(repeats: int = 9) -> None:
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
            t = time.perf_counter()
            f, wm, bm, _ = net(x, "train", mask_percentage=0.5)
            f.sum().backward()
            return time.perf_counter() - t
        return run

    # Same masks from both gates (the definition), checked once before timing.
    _, wm_fast, _, _ = fast(x, "train", mask_percentage=0.5)
    _, wm_slow, _, _ = slow(x, "train", mask_percentage=0.5)
    assert all(torch.equal(wm_fast[k], wm_slow[k]) for k in wm_fast)
    times = interleaved({"torch.quantile gate": step(slow), "specc gate (radix select)": step(fast)}, repeats)
    ratio = report("WSNMaskMLP 784-2000-2000-64 train step, batch 64, c=0.5", times, "torch.quantile gate")
    print(f"  speed-up {1 / ratio:.1f}x (goal >= 3x: {'met' if ratio <= 1 / 3 else 'NOT met'})")


if __name__ == "__main__":
    main()
