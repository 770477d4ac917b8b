"""HAT's cost over its annealing schedule, on CPU: train steps (forward + backward, batch 32,
3x32x32) of HATMaskResNet18 and AmnesiacHATResNet18 (stage 'train') against the unmasked ResNet18
with the same weights, at batch_idx 1, 3 and 10 of 10 (s_max 400), in default mode and with
`specc.flush_denormals()`, and CLArena's HATMaskResNet18 when CLArena is importable; WSNMaskResNet18
(mask_percentage 0.5, no schedule: the same step at each point) for the effect of flushing on WSN.

HAT's mask sigmoid(s * e) makes subnormal floats once s is large; x86 CPUs process those tens of
times slower. Default mode computes CLArena's values bit for bit (so it meets the same subnormals);
flush_denormals turns them into zeros. Every case runs once per round, rounds interleaved, medians
reported; ratios are to the unmasked ResNet18 in default mode at the same batch_idx.

Goals (issue 22): HAT's default step (specc's bases flush subnormals in the network's own forward
and backward) <= 1.10x the unmasked step at every point, with no call by the user; WSN's step
(mask_percentage 0.5) <= 1.30x. Printed last, row by row beside the goal, for each thread count.
Earlier goals: with flush_denormals, HAT and AmnesiacHAT <= 1.10x the unmasked network (with
flush_denormals too) at every point.

Run from the repository root:
  python bench/hat_schedule.py [--repeats N] [--threads N[,N...]] [--clock wall|cpu] [--table]
`--table`: only the cases of issue 22's rows (unmasked, specc HAT at batch_idx 3 and 10, WSN), in
default mode: a few minutes where the whole schedule takes many.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _backbones import KW, clarena_backbones, same_weights, train_step, use_clock  # noqa: E402

from generated.resnet18 import ResNet18  # noqa: E402
from generated.resnet18_amnesiac_hat import AmnesiacHATResNet18  # noqa: E402
from generated.resnet18_hat import HATMaskResNet18  # noqa: E402
from generated.resnet18_wsn import WSNMaskResNet18  # noqa: E402

POINTS = (1, 3, 10)


def build(batch: int):
    torch.manual_seed(0)
    plain = ResNet18(**KW)
    nets = {"unmasked": plain,
            "specc HAT": same_weights(HATMaskResNet18(**KW, gate="sigmoid", batch_normalization="shared"), plain),
            "specc AmnesiacHAT": same_weights(AmnesiacHATResNet18(**KW, gate="sigmoid",
                                                                  batch_normalization="shared"), plain)}
    nets["specc WSN"] = same_weights(WSNMaskResNet18(**KW), plain)  # no schedule: the same step at each point
    clarena = clarena_backbones()
    if clarena is not None:
        nets["CLArena HAT"] = same_weights(clarena.HATMaskResNet18(**KW, gate="sigmoid",
                                                                   batch_normalization="shared"), plain)
    # The same task embeddings (N(0, 1), CLArena's default initialisation) in every HAT network.
    emb = nets["specc HAT"].task_embedding_t
    for name, net in nets.items():
        if name not in ("unmasked", "specc WSN"):
            same_weights(net, nets["specc HAT"])
            net.setup_task_id(1)
            assert all(torch.equal(net.task_embedding_t[k].weight, emb[k].weight) for k in emb)
        net.train()
    nets["specc WSN"].setup_task_id(1)
    return nets, torch.randn(batch, 3, 32, 32)


# issue 22's rows: (label, network, batch_idx, goal); ratios to the unmasked step at the same point
TABLE = [("HAT, batch_idx 3 of 10 (s_max 400)", "specc HAT", 3, 1.10),
         ("HAT, batch_idx 10 of 10", "specc HAT", 10, 1.10),
         ("WSN, mask_percentage 0.5", "specc WSN", 3, 1.30)]


def measure(nets, x, repeats: int, points, flushes) -> dict:
    cases = {}
    for b in points:
        for name, net in nets.items():
            kind = {"unmasked": "plain", "specc WSN": "wsn"}.get(name, "hat")
            for flush in flushes:
                cases[(b, name, flush)] = train_step(net, x, kind, batch_idx=b, flush=flush)
    for run in cases.values():  # warm-up
        run()
    times = {k: [] for k in cases}
    for _ in range(repeats):  # interleaved: every case once per round
        for k, run in cases.items():
            times[k].append(run())
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def print_table(med: dict, threads: int) -> None:
    print(f"\n  issue 22 ({threads} thread(s)), default settings, ratio to the unmasked ResNet-18 step "
          f"measured interleaved in this run:")
    print(f"  {'step':<38}{'ms':>9}{'unmasked ms':>13}{'ratio':>8}{'goal':>8}")
    for label, name, b, goal in TABLE:
        ms, base = med[(b, name, False)], med[(b, "unmasked", False)]
        r = ms / base
        print(f"  {label:<38}{ms:>9.1f}{base:>13.1f}{r:>7.2f}x{'<= ' + str(goal) + 'x':>9}  "
              f"{'met' if r <= goal else 'NOT met'}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", default="1",
                    help="intra-op threads, one count or several (1,2): each measured in turn")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: the process's CPU time (meaningful with --threads 1)")
    ap.add_argument("--table", action="store_true", help="only issue 22's rows (default mode)")
    a = ap.parse_args()
    use_clock(a.clock)
    nets, x = build(a.batch)
    if a.table:
        nets = {k: v for k, v in nets.items() if k in ("unmasked", "specc HAT", "specc WSN")}
    for threads in [int(t) for t in str(a.threads).split(",")]:
        torch.set_num_threads(threads)
        if a.table:
            print_table(measure(nets, x, a.repeats, (3, 10), (False,)), threads)
        else:
            med = measure(nets, x, a.repeats, POINTS, (False, True))
            report(nets, a, med)
            print_table(med, threads)


def report(nets, a, med) -> None:
    names = list(nets)
    print(f"train step (forward + backward) medians in ms ({a.clock} clock), batch {a.batch}, 3x32x32, "
          f"{torch.get_num_threads()} thread(s), s_max 400, {a.repeats} interleaved rounds; "
          f"(x) = ratio to the unmasked network, same mode")
    for flush in (False, True):
        print(f"\n  {'flush_denormals' if flush else 'default mode'}:")
        print("  " + f"{'batch_idx':>10}" + "".join(f"{n:>24}" for n in names))
        for b in POINTS:
            base = med[(b, "unmasked", flush)]
            row = "".join(f"{med[(b, n, flush)]:>15.1f} ({med[(b, n, flush)] / base:4.2f}x)" for n in names)
            print("  " + f"{b:>10}" + row)
    print("\n  flush_denormals / default, same network:")
    for b in POINTS:
        print("  " + f"{b:>10}" + "".join(f"{med[(b, n, True)] / med[(b, n, False)]:>23.2f}x" for n in names))

    worst = max(med[(b, n, True)] / med[(b, "unmasked", True)] for b in POINTS
                for n in ("specc HAT", "specc AmnesiacHAT"))
    print(f"\n  goal: with flush_denormals, HAT and AmnesiacHAT <= 1.10x unmasked at every point: worst "
          f"{worst:.2f}x: {'met' if worst <= 1.10 else 'NOT met'}")
    if "CLArena HAT" in nets:
        worst_c = max(med[(b, "specc HAT", False)] / med[(b, "CLArena HAT", False)] for b in POINTS)
        print(f"  goal: default specc HAT <= CLArena HAT at every point: worst {worst_c:.2f}x: "
              f"{'met' if worst_c <= 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
