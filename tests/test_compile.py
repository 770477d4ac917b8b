"""torch.compile of specc's backbones (issue 14): no graph break in any scheme's forward, no
recompile per batch (only when the stage or the structure changes), results equal to eager; and
the two exact computations that make this possible (the WSN gate's rank in plain Python, HAT's
gate scale as a tensor) bit for bit what they replace.

Most compiles use the "eager" / "aot_eager" backends (TorchDynamo's capture; AOTAutograd's
forward and backward graphs): seconds. Every compile uses fullgraph=True (a graph break raises).
A HAT train step also goes through inductor (C++ code generation, tens of seconds; skipped without
a C compiler); bench/compile_step.py compiles every scheme with inductor."""
from __future__ import annotations

import math
import random
import shutil
import struct

import pytest
import torch
from torch import nn

import specc
from generated.mlp_amnesiac_hat import AmnesiacHATMLP
from generated.mlp_hat import HATMaskMLP
from generated.mlp_wsn import WSNMaskMLP
from specc.runtime.gates import _to_float32, rank_parts
from specc.runtime.schemes.hat import gate_scale, masks_from_scale

S_MAX = 400.0
N = 6  # batches per epoch in the tests


class SmallConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _trained_tasks(net, tasks=(1, 2)):
    """Finished tasks with N(0, 1) embeddings (masks stored, batch norms stored)."""
    for t in tasks:
        net.setup_task_id(t)
        with torch.no_grad():
            for te in net.task_embedding_t.values():
                te.weight.normal_()
        net.store_mask()
        net.store_bn()
    return net


def hat_mlp(bn=None):
    torch.manual_seed(0)
    return _trained_tasks(HATMaskMLP(input_dim=6, hidden_dims=[8], output_dim=5, gate="sigmoid",
                                     batch_normalization=bn))


def hat_conv():
    torch.manual_seed(0)
    return _trained_tasks(specc.mask(SmallConv(), "hat", batch_normalization="independent", output_dim=5))


def amnesiac_mlp():
    torch.manual_seed(0)
    net = _trained_tasks(AmnesiacHATMLP(input_dim=6, hidden_dims=[8], output_dim=5, gate="sigmoid",
                                        batch_normalization="independent"))
    net.setup_task_id(3)
    net.instantiate_backup_backbones([1, 2])
    return net


def wsn_mlp():
    torch.manual_seed(0)
    net = WSNMaskMLP(input_dim=6, hidden_dims=[8], output_dim=5)
    net.setup_task_id(1)
    return net


def wsn_conv():
    torch.manual_seed(0)
    net = specc.mask(SmallConv(), "wsn", batch_normalization="independent", output_dim=5)
    net.setup_task_id(1)
    net.store_bn()
    return net


def x_for(net):
    g = torch.Generator().manual_seed(1)
    return torch.randn(4, 2, 5, 5, generator=g) if isinstance(net, SmallConv) else torch.randn(4, 6, generator=g)


def stages(kind: str, net) -> dict[str, tuple[tuple, dict]]:
    """(args, kwargs) after the input, per stage (a train stage twice, other batch_idx)."""
    if kind == "wsn":
        wm, bm = net.get_mask("train", mask_percentage=0.5)
        test_mask = ({k: v.detach() for k, v in wm.items()}, {k: None if v is None else v.detach()
                                                             for k, v in bm.items()})
        return {"train": (("train",), dict(mask_percentage=0.5)),
                "validation": (("validation",), dict(mask_percentage=0.5)),
                "test": (("test",), dict(mask_percentage=0.5, test_mask=test_mask, test_task_id=1))}
    out = {"train": (("train",), dict(s_max=S_MAX, batch_idx=2, num_batches=N)),
           "validation": (("validation",), dict(s_max=S_MAX)),
           "test": (("test",), dict(test_task_id=1)),
           "unlearning_test": (("unlearning_test",), dict(test_task_id=2))}
    if kind == "amnesiac":
        out["train_with_backup"] = (("train_with_backup",), dict(s_max=S_MAX, batch_idx=2, num_batches=N))
    return out


NETS = {"hat_mlp": ("hat", lambda: hat_mlp()), "hat_mlp_shared": ("hat", lambda: hat_mlp("shared")),
        "hat_conv_independent": ("hat", hat_conv), "amnesiac_mlp": ("amnesiac", amnesiac_mlp),
        "wsn_mlp": ("wsn", wsn_mlp), "wsn_conv_independent": ("wsn", wsn_conv)}


def _tensors(out):
    """The tensors of a forward's result, flattened in order (dict values in key order)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for k in out for t in _tensors(out[k])]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return []


# -- the exact pieces -------------------------------------------------------------------------------
def test_to_float32_rounds_as_c_does():
    def c_round(v):
        return struct.unpack("f", struct.pack("f", v))[0]

    rng = random.Random(0)
    values = [rng.random() * 2.0 ** rng.randint(-155, 40) for _ in range(20000)]
    for f in [c_round(v) for v in values[:5000]] + [1.0, 2.0 ** -126, 2.0 ** -149, 3 * 2.0 ** -150]:
        m, e = math.frexp(f)
        ulp_half = math.ldexp(1.0, e - (24 - max(0, -125 - e)) - 1)
        values += [f + ulp_half, f - ulp_half]  # exact ties: to even
    for v in values + [0.0, -0.0, 2.0 ** -151, 1e-46]:
        assert _to_float32(v) == c_round(v) and math.copysign(1, _to_float32(v)) == math.copysign(1, c_round(v)), v


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_rank_parts_equal_torch_rank_arithmetic(dtype):
    """The gate's rank without reading a tensor back equals the rank computed with tensors, as
    torch.quantile does: q in the scores' dtype (float64 beyond float32/float64) times n - 1."""
    rng = random.Random(1)
    qs = [0.0, 1.0, 0.5, 0.1, 0.7, 1 / 3, 0.9999999] + [rng.random() for _ in range(300)]
    ns = [1, 2, 3, 7, 100, 4001, 2**20 + 3, 2**24, 2**24 + 1, 10**8] + [rng.randint(1, 2**24) for _ in range(50)]
    for q in qs:
        for n in ns:
            rank_dtype = dtype if dtype in (torch.float32, torch.float64) and n <= 2**24 else torch.float64
            rank = torch.tensor(q, dtype=rank_dtype) * (n - 1)
            lo, hi, weight = rank_parts(q, n, dtype)
            assert (lo, hi, weight) == (int(rank.floor()), int(rank.ceil()), float(rank - int(rank.floor()))), (q, n)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("s_max", [S_MAX, 400, 7.3])
def test_gate_scale_tensor_gives_get_masks_bits(dtype, s_max):
    """HAT's masks from the scale tensor (what the compiled forward reads) equal get_mask's (a
    Python float times the embedding), bit for bit, over the whole schedule and in validation."""
    net = hat_mlp()
    net.setup_task_id(3)
    with torch.no_grad():
        for te in net.task_embedding_t.values():
            te.weight.copy_(torch.randn(te.weight.shape) * 3)
    net.to(dtype)
    for b in range(1, N + 1):
        want = net.get_mask("train", s_max=s_max, batch_idx=b, num_batches=N)
        got = masks_from_scale(net, gate_scale(net, "train", s_max, b, N, None))
        assert all(torch.equal(got[k], want[k]) for k in want), b
    want = net.get_mask("validation", s_max=s_max)
    got = masks_from_scale(net, gate_scale(net, "validation", s_max, None, None, None))
    assert all(torch.equal(got[k], want[k]) for k in want)


# -- TorchDynamo: graph breaks, recompiles ---------------------------------------------------------
@pytest.mark.parametrize("name", ["hat_conv_independent", "amnesiac_mlp", "wsn_conv_independent"])
def test_no_graph_break_in_any_stage(name):
    import torch._dynamo

    kind, build = NETS[name]
    net = build()
    for stage, (args, kwargs) in stages(kind, net).items():
        torch._dynamo.reset()
        explained = torch._dynamo.explain(net)(x_for(net), *args, **kwargs)
        assert explained.graph_break_count == 0, (stage, explained.break_reasons)
        assert explained.graph_count == 1, stage


def _compiled_afresh(name: str):
    """(kind, network, its torch.compile (eager backend, fullgraph), input, dynamo's counters),
    dynamo reset and its counters cleared."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    kind, build = NETS[name]
    net = build()
    torch._dynamo.reset()
    counters.clear()
    return kind, net, torch.compile(net, backend="eager", fullgraph=True), x_for(net), counters


@pytest.mark.parametrize("name", ["hat_mlp", "hat_conv_independent", "amnesiac_mlp", "wsn_mlp"])
def test_recompiles_only_when_the_stage_changes(name):
    """fullgraph=True; a whole epoch of batch_idx (the gate's scale changes every batch), then the
    other stages, then training again: one graph per stage."""
    kind, net, compiled, x, counters = _compiled_afresh(name)
    all_stages = stages(kind, net)
    train = "train_with_backup" if kind == "amnesiac" else "train"
    for b in range(1, N + 1):
        args, kwargs = all_stages[train]
        compiled(x, *args, **(kwargs | ({"batch_idx": b} if kind != "wsn" else {})))
    assert counters["stats"]["unique_graphs"] == 1
    for args, kwargs in all_stages.values():
        compiled(x, *args, **kwargs)
    graphs = counters["stats"]["unique_graphs"]
    assert 1 < graphs <= len(all_stages)  # stages that compute the same graph share it
    for b in range(1, N + 1):  # every stage again, all of the schedule: nothing new
        for args, kwargs in all_stages.values():
            compiled(x, *args, **(kwargs | ({"batch_idx": b} if "batch_idx" in kwargs else {})))
    assert counters["stats"]["unique_graphs"] == graphs


@pytest.mark.parametrize("name", ["hat_mlp", "amnesiac_mlp"])
def test_one_graph_whatever_the_gates_numbers(name):
    """Issue 22 (compiled HATMaskMLP not faster than eager): neither s_max nor the schedule's
    length nor batch_idx reaches the graph's guards (the eager frame hands it one 0-d tensor):
    several s_max values, epochs of several lengths, every batch_idx, in training and
    validation, compile one graph per stage (or one for both), no graph break, nothing new after
    the first s_max's epoch."""
    kind, net, compiled, x, counters = _compiled_afresh(name)
    train = "train_with_backup" if kind == "amnesiac" else "train"
    graphs = None
    for s_max in (400.0, 100.0, 7.5, 1e4):
        for num_batches in (3, 7):
            for b in range(1, num_batches + 1):
                compiled(x, train, s_max=s_max, batch_idx=b, num_batches=num_batches)
        compiled(x, "validation", s_max=s_max)
        if graphs is None:  # both stages seen once (validation may share training's graph)
            graphs = counters["stats"]["unique_graphs"]
            assert 1 <= graphs <= 2
    assert counters["stats"]["unique_graphs"] == graphs
    assert not counters["graph_break"]


# -- compiled equals eager -----------------------------------------------------------------------------
def _step(model, net, x, args, kwargs):
    """Forward, then backward of a loss touching every output tensor; (outputs, gradients)."""
    net.zero_grad()
    out = model(x, *args, **kwargs)
    tensors = _tensors(out)
    loss = sum((t.float() ** 2).mean() for t in tensors if t.requires_grad)
    if isinstance(loss, torch.Tensor):
        loss.backward()
    grads = {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}
    return [t.detach().clone() for t in tensors], grads


def _assert_close(got, want, tol):
    outs, grads = got
    outs_w, grads_w = want
    assert len(outs) == len(outs_w) and grads.keys() == grads_w.keys()
    for a, b in zip(outs, outs_w):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    for k in grads:
        torch.testing.assert_close(grads[k], grads_w[k], rtol=tol, atol=tol, msg=k)


@pytest.mark.parametrize("name", ["hat_conv_independent", "amnesiac_mlp", "wsn_conv_independent"])
def test_compiled_equals_eager_in_every_stage(name):
    """AOTAutograd's forward and backward graphs (backend aot_eager) against eager, every stage."""
    import torch._dynamo

    kind, build = NETS[name]
    torch._dynamo.reset()
    net = build()
    compiled = torch.compile(net, backend="aot_eager", fullgraph=True)
    x = x_for(net)
    for stage, (args, kwargs) in stages(kind, net).items():
        net.train(stage.startswith("train") or stage == "validation")
        want = _step(net, net, x, args, kwargs)
        got = _step(compiled, net, x, args, kwargs)
        _assert_close(got, want, 1e-6)
    net.train()


@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                    reason="inductor needs a C compiler on CPU")
@pytest.mark.parametrize("name", ["hat_mlp"])
def test_inductor_train_step_equals_eager(name):
    """A train step through inductor's generated C++ (fused masks and gates) against eager."""
    import torch._dynamo

    kind, build = NETS[name]
    torch._dynamo.reset()
    net = build()
    compiled = torch.compile(net, fullgraph=True)
    x = x_for(net)
    args, kwargs = stages(kind, net)["train"]
    for b in (1, 4):  # two points of the schedule, one graph
        kw = kwargs | ({"batch_idx": b} if kind != "wsn" else {})
        _assert_close(_step(compiled, net, x, args, kw), _step(net, net, x, args, kw), 1e-5)
