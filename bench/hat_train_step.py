"""Train step (forward + backward) of HATMaskResNet18 against the unmasked ResNet18 with the same
weights: batch 32, 3x32x32, CPU, stage 'train'. Goal: ratio <= 1.00. Run: python bench/hat_train_step.py"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from _timing import interleaved, report  # noqa: E402

from generated.resnet18 import ResNet18  # noqa: E402
from generated.resnet18_hat import HATMaskResNet18  # noqa: E402


def main(repeats: int = 15, batch: int = 32) -> None:
    torch.manual_seed(0)
    plain = ResNet18(input_channels=3, output_dim=512)
    hat = HATMaskResNet18(input_channels=3, output_dim=512, gate="sigmoid", batch_normalization="shared")
    hat.load_state_dict({**hat.state_dict(), **plain.state_dict()})
    hat.setup_task_id(1)
    x = torch.randn(batch, 3, 32, 32)

    def step_plain():
        t = time.perf_counter()
        f, _ = plain(x, "train")
        f.sum().backward()
        return time.perf_counter() - t

    def step_hat():
        t = time.perf_counter()
        f, _, _ = hat(x, "train", s_max=400.0, batch_idx=3, num_batches=10)
        f.sum().backward()
        return time.perf_counter() - t

    for _ in range(3):  # warm-up
        step_plain(), step_hat()
    times = interleaved({"ResNet18 train step": step_plain, "HATMaskResNet18 train step": step_hat}, repeats)
    report(f"train step, batch {batch}, 3x32x32, {torch.get_num_threads()} threads", times,
           "ResNet18 train step", goal=1.00)


if __name__ == "__main__":
    main()
