"""Data-parallel training of specc's backbones (issue 15): 2 processes, gloo on 127.0.0.1.

One spawn runs every scenario (starting processes costs seconds; the scenarios milliseconds) and
writes each rank's findings; the tests below read them. Scenarios:

- each scheme x batch-norm mode under DistributedDataParallel with default settings (no
  find_unused_parameters), 2 tasks x 3 steps with HAT's / WSN's gradient rules, against one
  process: on the concatenated batch where there is no batch norm; with batch norm, on the two
  halves averaged (what data parallelism computes: each rank normalises its own half);
- masks, stored statistics and test-stage outputs equal on every rank; stored statistics the
  average of the ranks' own;
- AmnesiacHAT backups created after wrapping (DDP) or sharding (FSDP2): a clear error;
- FSDP2 (fully_shard) HAT and WSN with specc.runtime.rules against DDP; mask-reading methods on
  sharded parameters;
- torch.compile of DDP-wrapped HAT / WSN backbones: no graph break.

Skipped, with the reason, where processes or gloo cannot be started.
"""
from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path

import pytest
import torch

WORLD = 2
HALF = 4  # samples per rank and step
TASKS = (1, 2)
STEPS = 3
S_MAX = 400.0
TIMEOUT_S = 240
TOL = 1e-6

DDP_CASES = [("hat", None), ("hat", "shared"), ("hat", "independent"),
             ("amnesiac", None), ("amnesiac", "shared"), ("amnesiac", "independent"),
             ("wsn", None), ("wsn_conv", None), ("wsn_conv", "independent")]


# -- models and data (same code in every process) -------------------------------------------------
class SmallConv(torch.nn.Module):
    """Bias-free convs with batch norms (WSN scores bias-less layers, as on ResNets)."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(4)
        self.conv2 = torch.nn.Conv2d(4, 5, 3, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(5)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return torch.flatten(self.pool(x), 1)


def make(kind: str, bn):
    import specc
    from generated.mlp_amnesiac_hat import AmnesiacHATMLP
    from generated.mlp_hat import HATMaskMLP
    from generated.mlp_wsn import WSNMaskMLP

    torch.manual_seed(0)
    if kind == "hat":
        return HATMaskMLP(input_dim=6, hidden_dims=[8], output_dim=5, gate="sigmoid", batch_normalization=bn)
    if kind == "amnesiac":
        return AmnesiacHATMLP(input_dim=6, hidden_dims=[8], output_dim=5, gate="sigmoid", batch_normalization=bn)
    if kind == "wsn":
        return WSNMaskMLP(input_dim=6, hidden_dims=[8], output_dim=5)
    return specc.mask(SmallConv(), "wsn", batch_normalization=bn, output_dim=5)


def batch(kind: str, task: int, step: int):
    g = torch.Generator().manual_seed(1000 * task + step)
    shape = (2, 5, 5) if kind == "wsn_conv" else (6,)
    return torch.randn(WORLD * HALF, *shape, generator=g), torch.randn(WORLD * HALF, 5, generator=g)


def is_hat(kind: str) -> bool:
    return kind in ("hat", "amnesiac")


def loss_of(kind: str, out, target):
    feature = out[0]
    loss = ((feature - target) ** 2).mean()
    if kind == "amnesiac" and len(out) == 4:  # 'train_with_backup': (feature, backups, mask, activations)
        loss = loss + sum(((b - target) ** 2).mean() for b in out[1].values())
    return loss


def train(kind: str, bn, wrap, chunks, rank_of_halves=None, on_store=None):
    """2 tasks x 3 steps with the scheme's gradient rules. `wrap(net)` -> the module to call
    (DDP, FSDP or the net); `chunks(x)` -> the parts of a global batch this process computes
    on (the loss is their mean). Returns the net and its stored masks."""
    from specc.runtime import rules

    net = make(kind, bn)
    cum = {n: torch.zeros(net.get_layer_by_name(n).weight.shape[0]) for n in net.weighted_layer_names}
    cum_w = {n: torch.zeros(net.weight_score_t[n].weight.shape) for n in net.weighted_layer_names} \
        if not is_hat(kind) else None
    cum_b = {n: torch.zeros(net.bias_score_t[n].weight.shape[1]) if net.get_layer_by_name(n).bias is not None
             else None for n in net.weighted_layer_names} if not is_hat(kind) else None
    for task in TASKS:
        net.setup_task_id(task)
        backup = kind == "amnesiac" and task == 2
        if backup:
            net.instantiate_backup_backbones([1])  # before wrapping
        model = wrap(net)
        opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.05)
        for step in range(1, STEPS + 1):
            x, y = batch(kind, task, step)
            opt.zero_grad()
            losses = []
            for xs, ys in chunks(x, y):
                if is_hat(kind):
                    stage = "train_with_backup" if backup else "train"
                    out = model(xs, stage, s_max=S_MAX, batch_idx=step, num_batches=STEPS)
                else:
                    out = model(xs, "train", mask_percentage=0.5)
                losses.append(loss_of(kind, out, ys))
            (sum(losses) / len(losses)).backward()
            if is_hat(kind):
                rules.clip_hat_gradients(net, cum)
                rules.compensate_hat_embedding_gradients(net, S_MAX, step, STEPS, clamp_threshold=50.0)
            else:
                rules.clip_wsn_gradients(net, cum_w, cum_b)
            opt.step()
        if on_store is not None:
            on_store(net, task)
        if is_hat(kind):
            mask = net.store_mask()
            cum = {n: torch.maximum(cum[n], mask[n]) for n in cum}
        else:
            wm, bm = net.get_mask("train", mask_percentage=0.5)
            net.stored_wsn = getattr(net, "stored_wsn", {}) | {task: (wm, bm)}
            cum_w = {n: torch.maximum(cum_w[n], wm[n].detach()) for n in cum_w}
            cum_b = {n: None if cum_b[n] is None else torch.maximum(cum_b[n], bm[n].detach()) for n in cum_b}
        if bn is not None or kind == "wsn_conv":
            net.store_bn()
    return net


def params(net) -> dict[str, torch.Tensor]:
    from specc.runtime.distributed import full

    return {k: full(v.detach()).clone() for k, v in net.named_parameters()}


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys(), (set(a) ^ set(b))
    return max([(a[k] - b[k]).abs().max().item() if a[k].numel() else 0.0 for k in a], default=0.0)


def stage_outputs(kind: str, net) -> dict[str, torch.Tensor]:
    """What each task's test stage gives on a fixed input (batch norms: the stored copies)."""
    x = batch(kind, 9, 9)[0]
    out = {}
    with torch.no_grad():
        net.eval()
        for task in TASKS:
            if is_hat(kind):
                out[f"task{task}"] = net(x, "test", test_task_id=task)[0]
            else:
                wm, bm = net.stored_wsn[task]
                out[f"task{task}"] = net(x, "test", mask_percentage=0.5, test_mask=(wm, bm), test_task_id=task)[0]
        net.train()
    return out


def norm_stats(net) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items() if "running" in k}


def mask_state(kind: str, net) -> dict[str, torch.Tensor]:
    if is_hat(kind):
        return {f"{t}/{n}": m for t, ms in net.masks.items() for n, m in ms.items()}
    return {f"{t}/w/{n}": m for t, (wm, _) in net.stored_wsn.items() for n, m in wm.items()}


# -- the scenarios, run in each rank ----------------------------------------------------------------
def _gather(obj):
    import torch.distributed as dist

    out = [None] * WORLD
    dist.all_gather_object(out, obj)
    return out


def scenario_ddp(rank: int, kind: str, bn) -> dict:
    from torch.nn.parallel import DistributedDataParallel as DDP

    own = lambda x, y: [(x[rank * HALF:(rank + 1) * HALF], y[rank * HALF:(rank + 1) * HALF])]  # noqa: E731
    before_store = {}

    def record(net, task):  # the ranks' own statistics, before store_bn averages them
        before_store[task] = norm_stats(net)

    net = train(kind, bn, lambda n: DDP(n), own, on_store=record)
    result = {"masks": _gather(mask_state(kind, net)), "stats": _gather(norm_stats(net)),
              "test": _gather(stage_outputs(kind, net)), "before_store": _gather(before_store)}
    # One process: the concatenated batch, or both halves where batch norm is used. Every rank runs
    # it (store_bn averages across ranks, a collective; the ranks' references are equal).
    norms = bn is not None or kind == "wsn_conv"
    halves = lambda x, y: [(x[:HALF], y[:HALF]), (x[HALF:], y[HALF:])]  # noqa: E731
    whole = lambda x, y: [(x, y)]  # noqa: E731
    ref = train(kind, bn, lambda n: n, halves if norms else whole)
    result["param_diff"] = max_diff(params(net), params(ref))
    return result


def scenario_late_backups(rank: int, how: str) -> dict:
    from generated.mlp_amnesiac_hat import AmnesiacHATMLP

    torch.manual_seed(0)
    net = AmnesiacHATMLP(input_dim=6, hidden_dims=[8], output_dim=5, gate="sigmoid")
    net.setup_task_id(1)
    net.store_mask()
    net.setup_task_id(2)
    try:
        if how == "ddp":  # noticed at the first forward (DDP gives no sign before)
            from torch.nn.parallel import DistributedDataParallel as DDP

            model = DDP(net)
            net.instantiate_backup_backbones([1])  # too late
            model(torch.randn(HALF, 6), "train_with_backup", s_max=S_MAX, batch_idx=1, num_batches=STEPS)
        else:  # noticed when they are created
            from torch.distributed.fsdp import fully_shard

            fully_shard(net)
            net.instantiate_backup_backbones([1])  # too late
    except RuntimeError as e:
        return {"error": str(e)}
    return {"error": None}


def scenario_fsdp(rank: int, kind: str, bn) -> dict:
    """FSDP2 against DDP, both with specc.runtime.rules; then the mask-reading methods on shards."""
    from torch.distributed.fsdp import fully_shard
    from torch.nn.parallel import DistributedDataParallel as DDP

    own = lambda x, y: [(x[rank * HALF:(rank + 1) * HALF], y[rank * HALF:(rank + 1) * HALF])]  # noqa: E731
    # AmnesiacHAT's backups must exist before sharding: its backbone is sharded for task 2, after
    # instantiate_backup_backbones, and trained under DDP for task 1 (as on the other side).
    first_task = 2 if kind == "amnesiac" else 1
    calls = []

    def shard(n):
        calls.append(n)
        if len(calls) < first_task:
            return DDP(n, broadcast_buffers=False)
        if len(calls) == first_task:
            fully_shard(n)
        return n

    fsdp = train(kind, bn, shard, own)
    # FSDP does not broadcast buffers: each rank's running statistics follow its own halves until
    # store_bn averages them; the same in DDP with broadcast_buffers=False
    ddp = train(kind, bn, lambda n: DDP(n, broadcast_buffers=False), own)
    result = {"param_diff": max_diff(params(fsdp), params(ddp)),
              "sharded": type(next(iter(fsdp.parameters()))).__name__,
              "test_diff": max_diff(stage_outputs(kind, fsdp), stage_outputs(kind, ddp))}
    if is_hat(kind):
        result["mask_diff"] = max_diff(mask_state(kind, fsdp), mask_state(kind, ddp))
        got = fsdp.get_mask("train", s_max=S_MAX, batch_idx=2, num_batches=STEPS)  # outside forward: shards
        want = ddp.get_mask("train", s_max=S_MAX, batch_idx=2, num_batches=STEPS)
        result["get_mask_diff"] = max_diff(got, want)
        result["store_mask_diff"] = max_diff(fsdp.te_to_binary_mask(), ddp.te_to_binary_mask())
        name = fsdp.weighted_layer_names[-1]
        a = fsdp.get_layer_measure_parameter_wise(fsdp.masks[1], name, "min")
        b = ddp.get_layer_measure_parameter_wise(ddp.masks[1], name, "min")
        result["measure_diff"] = max(max_diff({"w": a[0]}, {"w": b[0]}), max_diff({"b": a[1]}, {"b": b[1]}))
    else:
        got = fsdp.get_mask("train", mask_percentage=0.5)[0]
        want = ddp.get_mask("train", mask_percentage=0.5)[0]
        result["get_mask_diff"] = max_diff({k: v.detach() for k, v in got.items()},
                                           {k: v.detach() for k, v in want.items()})
        result["mask_diff"] = max_diff(mask_state(kind, fsdp), mask_state(kind, ddp))
    return result


def scenario_compile_ddp(rank: int, kind: str) -> dict:
    """The backbone compiled with fullgraph=True inside DDP (a graph break in its forward would
    raise), and DDP compiled as a whole (torch.compile(DDP(net))), whose graph breaks must all be
    DDP's own (its logger and forward bookkeeping, there for any module): train steps against
    eager DDP."""
    import torch._dynamo
    from torch._dynamo.utils import counters
    from torch.nn.parallel import DistributedDataParallel as DDP

    def step_grads(m, step):
        x, y = batch(kind, 1, step)
        x, y = x[rank * HALF:(rank + 1) * HALF], y[rank * HALF:(rank + 1) * HALF]
        if is_hat(kind):
            out = m(x, "train", s_max=S_MAX, batch_idx=step, num_batches=STEPS)
        else:
            out = m(x, "train", mask_percentage=0.5)
        loss_of(kind, out, y).backward()
        grads = {k.replace("_orig_mod.", ""): p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}
        m.zero_grad()
        return grads

    def fresh():
        net = make(kind, None)
        net.setup_task_id(1)
        return net

    torch._dynamo.reset()
    counters.clear()
    inner = DDP(torch.compile(fresh(), backend="aot_eager", fullgraph=True))
    outer = torch.compile(DDP(fresh()), backend="aot_eager")
    eager = DDP(fresh())
    diff = 0.0
    for step in (1, 2, 3):
        want = step_grads(eager, step)
        diff = max(diff, max_diff(step_grads(inner, step), want), max_diff(step_grads(outer, step), want))
    reasons = list(counters["graph_break"])
    ddp_own = ("_inside_ddp_forward", "Logger")
    return {"grad_diff": diff, "graphs": counters["stats"]["unique_graphs"],
            "other_breaks": [r for r in reasons if not any(k in r for k in ddp_own)],
            "breaks": sum(counters["graph_break"].values())}


def worker(rank: int, out_dir: str, port: int) -> None:
    root = str(Path(__file__).resolve().parent.parent)
    sys.path[:0] = [root, str(Path(root) / "tests")]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    import torch.distributed as dist

    try:
        dist.init_process_group("gloo", rank=rank, world_size=WORLD, init_method=f"tcp://127.0.0.1:{port}",
                                timeout=__import__("datetime").timedelta(seconds=60))
    except Exception as e:  # noqa: BLE001 - reported as a skip
        Path(out_dir, f"init_failed{rank}").write_text(repr(e))
        return
    results = {}
    scenarios = [(("ddp", k, bn), lambda k=k, bn=bn: scenario_ddp(rank, k, bn)) for k, bn in DDP_CASES]
    scenarios += [(("late", how), lambda how=how: scenario_late_backups(rank, how)) for how in ("ddp", "fsdp")]
    scenarios += [(("fsdp", k, bn), lambda k=k, bn=bn: scenario_fsdp(rank, k, bn))
                  for k, bn in (("hat", "independent"), ("amnesiac", None), ("wsn", None))]
    scenarios += [(("compile", k), lambda k=k: scenario_compile_ddp(rank, k)) for k in ("hat", "amnesiac", "wsn")]
    for key, run in scenarios:
        t = time.perf_counter()
        try:
            results[key] = run()
        except Exception:  # noqa: BLE001 - reported per scenario
            results[key] = {"exception": traceback.format_exc()}
        results[key]["seconds"] = time.perf_counter() - t
        dist.barrier()  # a failed scenario on one rank must not leave the other waiting in a collective
    torch.save(results, Path(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(fn, out_dir: str, timeout: float) -> None:
    """Run fn(rank, out_dir, port) in WORLD fresh processes; skip when they cannot be started."""
    import torch.multiprocessing as mp

    try:
        ctx = mp.start_processes(fn, args=(out_dir, _free_port()), nprocs=WORLD, join=False, start_method="spawn")
    except (OSError, RuntimeError) as e:
        pytest.skip(f"cannot spawn processes here: {e!r}")
    deadline = time.monotonic() + timeout
    try:
        while not ctx.join(timeout=max(0.1, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {WORLD} processes did not finish in {timeout} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    failed = sorted(Path(out_dir).glob("init_failed*"))
    if failed:
        pytest.skip(f"torch.distributed (gloo on 127.0.0.1) cannot start here: {failed[0].read_text()}")


@pytest.fixture(scope="module")
def ranks():
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available in this build of torch")
    with tempfile.TemporaryDirectory() as tmp:
        spawn(worker, tmp, TIMEOUT_S)
        return [torch.load(Path(tmp, f"rank{r}.pt"), weights_only=False) for r in range(WORLD)]


def _ok(ranks, key) -> list[dict]:
    out = [r[key] for r in ranks]
    for r, res in enumerate(out):
        assert "exception" not in res, f"rank {r}, {key}:\n{res['exception']}"
    return out


def _equal_across(gathered: list[dict]) -> float:
    return max(max_diff(gathered[0], g) for g in gathered[1:])


@pytest.mark.parametrize("kind,bn", DDP_CASES, ids=[f"{k}-{bn}" for k, bn in DDP_CASES])
def test_ddp_default_settings_match_one_process(ranks, kind, bn):
    r0, _ = _ok(ranks, ("ddp", kind, bn))
    assert r0["param_diff"] <= TOL, r0["param_diff"]


@pytest.mark.parametrize("kind,bn", DDP_CASES, ids=[f"{k}-{bn}" for k, bn in DDP_CASES])
def test_ddp_masks_statistics_and_test_results_equal_on_every_rank(ranks, kind, bn):
    r0, _ = _ok(ranks, ("ddp", kind, bn))
    assert _equal_across(r0["masks"]) == 0.0
    assert _equal_across(r0["stats"]) == 0.0
    assert _equal_across(r0["test"]) == 0.0
    assert r0["masks"][0], "no mask stored"


@pytest.mark.parametrize("kind,bn", [c for c in DDP_CASES if c[1] is not None or c[0] == "wsn_conv"],
                         ids=lambda c: str(c))
def test_store_bn_averages_the_ranks_statistics(ranks, kind, bn):
    r0, _ = _ok(ranks, ("ddp", kind, bn))
    import re

    copy_key = re.compile(r"bn\w*s\.(\d+)\.")  # fc_bns.2.0.running_mean, bn1s.2.running_mean
    before = r0["before_store"]  # per rank: {task: statistics before store_bn}
    last = max(TASKS)
    own = [{k: v for k, v in b[last].items() if not copy_key.search(k)} for b in before]  # the live ones
    assert own[0] and max_diff(own[0], own[1]) > 0, "the ranks' own statistics should differ (else nothing is tested)"
    mean = {k: (own[0][k] + own[1][k]) / 2 for k in own[0]}
    stats = r0["stats"][0]
    assert max_diff({k: stats[k] for k in mean}, mean) <= 1e-6
    if bn == "independent":  # the stored copy of the last task is the averaged live one
        stored = {k: v for k, v in stats.items() if (m := copy_key.search(k)) and m.group(1) == str(last)}
        assert stored
        for k, v in stored.items():
            live = re.sub(r"(bn\w*)s\.\d+\.", r"\1.", k)
            assert torch.equal(v, stats[live]), k


@pytest.mark.parametrize("how", ["ddp", "fsdp"])
def test_backups_created_after_wrapping_raise_a_clear_error(ranks, how):
    for res in _ok(ranks, ("late", how)):
        assert res["error"] is not None, "late backups trained silently"
        assert "instantiate_backup_backbones() before" in res["error"]


@pytest.mark.parametrize("kind,bn", [("hat", "independent"), ("amnesiac", None), ("wsn", None)])
def test_fsdp2_with_specc_gradient_rules_matches_ddp(ranks, kind, bn):
    for res in _ok(ranks, ("fsdp", kind, bn)):
        assert res["sharded"] == "DTensor"
        assert res["param_diff"] <= TOL, res["param_diff"]
        assert res["test_diff"] <= TOL
        assert res["mask_diff"] == 0.0
        assert res["get_mask_diff"] <= TOL
        if kind == "hat":
            assert res["store_mask_diff"] == 0.0 and res["measure_diff"] == 0.0


@pytest.mark.parametrize("kind", ["hat", "amnesiac", "wsn"])
def test_compiled_ddp_backbone_has_no_graph_break(ranks, kind):
    for res in _ok(ranks, ("compile", kind)):
        assert res["other_breaks"] == [], res["other_breaks"]
        assert res["graphs"] >= 1
        assert res["grad_diff"] <= 1e-5
