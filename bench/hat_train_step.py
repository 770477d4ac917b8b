"""Train step (forward + backward) of HATMaskResNet18 against the unmasked ResNet18 with the same
weights: batch 32, 3x32x32, CPU, stage 'train', batch norm "shared". Goal: ratio <= 1.00.
Also measured: the same HAT network compiled with `mask hat(fold_batch_norm = true)`.
Run from the repo root: python bench/hat_train_step.py"""
from __future__ import annotations

import sys
import tempfile
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


def _folded_hat():
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "resnet18_hat_folded.cl"
        spec.write_text(f'include "{ROOT / "specs" / "resnet18.cl"}"\n'
                        "backbone HATMaskResNet18Folded = ResNet18\n"
                        'mask hat(gate = "sigmoid", batch_normalization = "shared", fold_batch_norm = true)\n')
        return specc.build(spec, input_channels=3, output_dim=512)


def main(repeats: int = 25, batch: int = 32) -> None:
    torch.manual_seed(0)
    plain = ResNet18(input_channels=3, output_dim=512)
    hat = HATMaskResNet18(input_channels=3, output_dim=512, gate="sigmoid", batch_normalization="shared")
    folded = _folded_hat()
    for net in (hat, folded):
        net.load_state_dict({**net.state_dict(), **plain.state_dict()})
        net.setup_task_id(1)
    x = torch.randn(batch, 3, 32, 32)

    def step(net, masked):
        def run():
            t = time.perf_counter()
            if masked:
                f = net(x, "train", s_max=400.0, batch_idx=3, num_batches=10)[0]
            else:
                f = net(x, "train")[0]
            f.sum().backward()
            return time.perf_counter() - t
        return run

    cases = {"ResNet18 train step": step(plain, False), "HATMaskResNet18 train step": step(hat, True),
             "HATMaskResNet18, fold_batch_norm": step(folded, True)}
    for run in cases.values():  # warm-up
        run()
    times = interleaved(cases, repeats)
    report(f"train step, batch {batch}, 3x32x32, {torch.get_num_threads()} threads", times,
           "ResNet18 train step", goal=1.00)


if __name__ == "__main__":
    main()
