"""Train step (forward + backward, loss = sum of the features) of ViT-S/16 (timm's layout: 384 features,
12 blocks of 6 heads) masked by WSN (every linear scored, mask_percentage 0.5) and by HAT, against the
unmasked ViT-S/16 with the same weights, side by side: interleaved rounds in one process, medians, ratio
to the unmasked step. Small images by default (64x64: 16 patches + the class token) so that a run takes
a minute or two on 2 CPU cores.

The HAT row needs `mask hat` on a ViT: it is measured when a specs/vit_*_hat.cl exists and its `mask hat(...)`
declaration compiles on ViT-S/16, and skipped with the reason otherwise. `--ln` adds WSN with
`mask_layer_norms = true`.

Run from the repo root: python bench/vit_train_step.py [--img 64] [--batch 16] [--repeats 7] [--threads 1]
[--clock cpu|wall] [--ln]"""
from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _backbones import ROOT, same_weights, train_step, use_clock  # noqa: E402
from _timing import interleaved, report  # noqa: E402

import specc  # noqa: E402
from generated.vit_s16 import ViT_S16  # noqa: E402


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def masked_vit_s16(mask_line: str, tmp: Path, name: str, **kwargs) -> torch.nn.Module:
    """ViT-S/16 under the masking declaration `mask_line`, compiled from a temporary spec."""
    spec = tmp / f"{name.lower()}.cl"
    spec.write_text(f'include "{ROOT / "specs" / "vit_s16.cl"}"\nbackbone {name} = ViT_S16\n{mask_line}\n')
    return specc.build(spec, **kwargs)


def hat_vit(tmp: Path, img: int):
    """HAT's ViT-S/16 from the `mask hat(...)` of a specs/vit_*_hat.cl, or (None, why not)."""
    specs = sorted((ROOT / "specs").glob("vit_*_hat.cl"))
    if not specs:
        return None, "no specs/vit_*_hat.cl yet (`mask hat` on a vision transformer)"
    text = specs[0].read_text()
    found = re.search(r"^mask hat\(.*?\)", text, re.M | re.S)
    if found is None:
        return None, f"{specs[0].name} has no `mask hat(...)` line"
    try:
        return masked_vit_s16(found.group(0), tmp, "HATMaskViT_S16", output_dim=384, img_size=img,
                              gate="sigmoid"), None
    except Exception as e:  # noqa: BLE001 - reported, the other rows still run
        return None, f"{specs[0].name}'s `{found.group(0)}` does not build on ViT-S/16: {e}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--img", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    ap.add_argument("--ln", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    use_clock(a.clock)
    torch.manual_seed(0)
    plain = ViT_S16(output_dim=384, img_size=a.img)
    nets = {}
    with tempfile.TemporaryDirectory() as tmp:
        nets["WSN, mask_percentage 0.5"] = (masked_vit_s16("mask wsn()", Path(tmp), "WSNMaskViT_S16",
                                                           output_dim=384, img_size=a.img), "wsn")
        if a.ln:
            nets["WSN + layer norms, mask_percentage 0.5"] = (masked_vit_s16(
                "mask wsn(mask_layer_norms = true)", Path(tmp), "WSNMaskViT_S16LN", output_dim=384,
                img_size=a.img), "wsn")
        hat, why_not = hat_vit(Path(tmp), a.img)
    if hat is not None:
        nets["HAT, batch_idx 1 of 10 (s_max 400)"] = (hat, "hat")
    x = torch.randn(a.batch, 3, a.img, a.img)
    cases = {"unmasked ViT-S/16": train_step(plain, x, "plain")}
    for label, (net, kind) in nets.items():
        same_weights(net, plain)
        net.setup_task_id(1)
        cases[label] = train_step(net, x, kind)
    for run in cases.values():  # warm-up: first-touch allocations, the WSN selection's hints
        run()
    times = interleaved(cases, a.repeats, settle=True)
    tokens = (a.img // 16) ** 2 + 1
    report(f"ViT-S/16 train step ({cpu_name()}; torch {torch.__version__}, {a.threads} thread(s), {a.clock} "
           f"clock): batch {a.batch}, 3x{a.img}x{a.img} ({tokens} tokens), medians of {a.repeats} "
           "interleaved rounds", times, "unmasked ViT-S/16")
    if hat is None:
        print(f"  HAT: skipped: {why_not}")


if __name__ == "__main__":
    main()
