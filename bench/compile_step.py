"""Eager against torch.compile (inductor, fullgraph=True) train steps (forward + backward, batch 32,
3x32x32, CPU) of the ResNet-18 family: the unmasked ResNet18, HATMaskResNet18 (stage 'train', over
the schedule: batch_idx 1..10 of 10, s_max 400, one compiled graph for all of them),
AmnesiacHATResNet18 ('train_with_backup', 1 backup) and WSNMaskResNet18 (mask_percentage 0.5); and
the unmasked MLP, HATMaskMLP and WSNMaskMLP 3072-1000-1000-256 on the same input.

On CPU, inductor lays convolutions out channels-last whenever oneDNN is available; in a training
step of a network whose parameters are contiguous (NCHW), converting their gradients back costs
more than fusion saves (the unmasked ResNet18 too). `--options '{"layout_optimization": false}'`
keeps the network's layout; `--channels-last` puts networks and input in channels-last instead.

Reports, per network: the first compiled call (compilation included), then the medians of
interleaved eager and compiled steps and their ratio, and how many graphs dynamo compiled (1 per
network: the gate's scale changes every batch without a recompile). Goal: compiled <= eager.

Run from the repository root:
  python bench/compile_step.py [--repeats N] [--threads N] [--nets hat,wsn,...] [--clock wall|cpu]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _backbones import KW, same_weights, stored_masks, train_step, use_clock  # noqa: E402

NETS = ("plain", "hat", "amnesiac", "wsn", "mlp", "hat_mlp", "wsn_mlp")
MLP = dict(input_dim=3 * 32 * 32, hidden_dims=[1000, 1000], output_dim=256)


def build(name: str):
    from generated.resnet18 import ResNet18
    from generated.resnet18_amnesiac_hat import AmnesiacHATResNet18
    from generated.resnet18_hat import HATMaskResNet18
    from generated.resnet18_wsn import WSNMaskResNet18

    torch.manual_seed(0)
    if name == "mlp":  # the unmasked MLP: what inductor makes of the same matrix products
        from generated.mlp import MLP as PlainMLP

        return PlainMLP(**MLP), "plain"
    if name.endswith("_mlp"):
        from generated.mlp_hat import HATMaskMLP
        from generated.mlp_wsn import WSNMaskMLP

        net = HATMaskMLP(**MLP, gate="sigmoid") if name == "hat_mlp" else WSNMaskMLP(**MLP)
        net.setup_task_id(1)
        return net, name[:3]
    plain = ResNet18(**KW)
    if name == "plain":
        return plain, "plain"
    if name == "hat":
        net = same_weights(HATMaskResNet18(**KW, gate="sigmoid", batch_normalization="shared"), plain)
        net.setup_task_id(1)
        return net, "hat"
    if name == "amnesiac":
        net = same_weights(AmnesiacHATResNet18(**KW, gate="sigmoid", batch_normalization="shared"), plain)
        stored_masks(net, 1)
        net.setup_task_id(2)
        net.instantiate_backup_backbones([1])
        return net, "backup"
    net = same_weights(WSNMaskResNet18(**KW), plain)
    net.setup_task_id(1)
    return net, "wsn"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1,
                    help="intra-op threads (1: stable ratios on a shared 2-core machine)")
    ap.add_argument("--nets", default=",".join(NETS))
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: the process's CPU time (meaningful with --threads 1)")
    ap.add_argument("--options", default="{}", help="inductor options (JSON), passed to torch.compile")
    ap.add_argument("--channels-last", action="store_true", help="networks and input in channels_last memory format")
    a = ap.parse_args()
    unknown = sorted(set(a.nets.split(",")) - set(NETS))
    if unknown:
        ap.error(f"unknown network(s) {', '.join(unknown)}; choose from {', '.join(NETS)}")
    options = json.loads(a.options)
    use_clock(a.clock)
    layout = torch.channels_last if a.channels_last else torch.contiguous_format
    torch.set_num_threads(a.threads)
    from torch._dynamo import reset as dynamo_reset
    from torch._dynamo.utils import counters

    x = torch.randn(a.batch, 3, 32, 32).to(memory_format=layout)
    print(f"train step (forward + backward), batch {a.batch}, 3x32x32, {a.threads} thread(s); "
          f"medians of {a.repeats} interleaved rounds; torch.compile options: {options or 'default'}"
          f"{'; channels_last' if a.channels_last else ''}")
    print(f"  {'network':<22}{'first compiled call':>20}{'eager ms':>11}{'compiled ms':>13}{'ratio':>8}{'graphs':>8}")
    for name in a.nets.split(","):
        eager, kind = build(name)
        compiled_net, _ = build(name)
        eager, compiled_net = eager.to(memory_format=layout), compiled_net.to(memory_format=layout)
        dynamo_reset()
        counters.clear()
        compiled = torch.compile(compiled_net, fullgraph=True, options=options or None)
        t = time.perf_counter()
        train_step(_Call(compiled, compiled_net), x, kind, batch_idx=1)()
        first = time.perf_counter() - t
        points = list(range(1, 11)) if kind in ("hat", "backup") else [1]
        cases = {}
        for b in points:
            cases[("eager", b)] = train_step(eager, x, kind, batch_idx=b)
            cases[("compiled", b)] = train_step(_Call(compiled, compiled_net), x, kind, batch_idx=b)
        for run in cases.values():  # warm-up, every point of the schedule once
            run()
        times = {"eager": [], "compiled": []}
        for r in range(a.repeats):
            b = points[r % len(points)]
            for mode in ("eager", "compiled"):
                times[mode].append(cases[(mode, b)]())
        e, c = statistics.median(times["eager"]) * 1000, statistics.median(times["compiled"]) * 1000
        print(f"  {name:<22}{first:>19.1f}s{e:>11.1f}{c:>13.1f}{c / e:>8.2f}{counters['stats']['unique_graphs']:>8}")


class _Call:
    """The compiled module called as the backbone (parameters and gradients live in `net`)."""

    def __init__(self, compiled, net):
        self.compiled, self.net = compiled, net

    def __call__(self, *args, **kwargs):
        return self.compiled(*args, **kwargs)

    def parameters(self):
        return self.net.parameters()


if __name__ == "__main__":
    main()
