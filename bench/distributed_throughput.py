"""Data-parallel throughput on CPU: HATMaskResNet18 train steps (forward, backward, HAT's gradient
rules, SGD step; batch 32, 3x32x32, stage 'train') in one process against two processes under
DistributedDataParallel (gloo on 127.0.0.1, 16 samples each), in samples per second.

Cases, interleaved round by round (the two DDP ranks wait for the parent's signal, so only one
case computes at a time):
  1 process, 1 thread   |   1 process, N threads (N = the cores)   |   2 processes x 1 thread (DDP)

Run from the repository root: python bench/distributed_throughput.py [--rounds N] [--steps N]
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _backbones import KW, hat_args  # noqa: E402

BATCH = 32


def build():
    from generated.resnet18_hat import HATMaskResNet18

    torch.manual_seed(0)
    net = HATMaskResNet18(**KW, gate="sigmoid", batch_normalization="independent")
    net.setup_task_id(1)
    return net


def steps(model, net, x, n: int) -> list[float]:
    """`n` train steps; their durations."""
    from specc.runtime import rules

    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    cum = {k: torch.zeros(net.get_layer_by_name(k).weight.shape[0]) for k in net.weighted_layer_names}
    out = []
    for i in range(n):
        b = 1 + i % 10
        t = time.perf_counter()
        opt.zero_grad()
        model(x, "train", **hat_args(b))[0].pow(2).mean().backward()
        rules.clip_hat_gradients(net, cum)
        rules.compensate_hat_embedding_gradients(net, 400.0, b, 10, clamp_threshold=50.0)
        opt.step()
        out.append(time.perf_counter() - t)
    return out


def worker(rank: int, port: int, commands, results) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    os.environ["GLOO_SOCKET_IFNAME"] = os.environ.get("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    net = build()
    model = DDP(net)
    x = torch.randn(BATCH // 2, 3, 32, 32)
    while True:
        n = commands[rank].get()
        if n is None:
            break
        dist.barrier()
        results.put((rank, steps(model, net, x, n)))
    dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4)
    a = ap.parse_args()
    import torch.multiprocessing as mp

    cores = os.cpu_count() or 1
    ctx = mp.get_context("spawn")
    commands, results = [ctx.Queue(), ctx.Queue()], ctx.Queue()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [ctx.Process(target=worker, args=(r, port, commands, results)) for r in range(2)]
    for p in procs:
        p.start()
    net = build()
    x = torch.randn(BATCH, 3, 32, 32)
    times: dict[str, list[float]] = {"1 process, 1 thread": [], f"1 process, {cores} threads": [],
                                     "2 processes x 1 thread (DDP)": []}
    try:
        for r in range(a.rounds + 1):  # round 0: warm-up
            for threads, name in ((1, "1 process, 1 thread"), (cores, f"1 process, {cores} threads")):
                torch.set_num_threads(threads)
                t = steps(net, net, x, a.steps)
                if r:
                    times[name] += t
            for q in commands:
                q.put(a.steps)
            per_rank = dict(results.get(timeout=600) for _ in range(2))
            if r:  # a DDP step lasts as long as its slower rank
                times["2 processes x 1 thread (DDP)"] += [max(u, v) for u, v in zip(per_rank[0], per_rank[1])]
    finally:
        for q in commands:
            q.put(None)
        for p in procs:
            p.join(timeout=60)
    base = BATCH / statistics.median(times["1 process, 1 thread"])
    print(f"HATMaskResNet18 train step throughput, global batch {BATCH}, 3x32x32, {cores} cores, "
          f"{a.rounds} interleaved rounds of {a.steps} steps")
    for name, ts in times.items():
        rate = BATCH / statistics.median(ts)
        print(f"  {name:<32} median step {statistics.median(ts) * 1000:8.1f} ms   {rate:7.1f} samples/s   "
              f"x{rate / base:4.2f}")


if __name__ == "__main__":
    main()
