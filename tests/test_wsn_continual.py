"""A two-task WSN run on synthetic data, the way the WSN algorithm uses the backbone.

Task 1: new scores (`initialize_parameter_score`), a few SGD steps on weights and scores in stage
'train' with mask_percentage 0.5; then task 1's binary masks (`get_mask` at the end) and its test
outputs (stage 'test' with `test_mask` = task 1's masks) are recorded.
Task 2: new scores, a few SGD steps in which the weight (and bias) entries kept by task 1's mask are
frozen (their gradients zeroed after backward). Task 1's test outputs must then be bit-identical.
Control: the same run without freezing changes them (so the check can fail)."""
from __future__ import annotations

from copy import deepcopy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from generated.mlp_wsn import WSNMaskMLP
from generated.resnet18_wsn import WSNMaskResNet18

C = 0.5
STEPS = {"mlp": 3, "resnet18": 2}
N_CLASSES = 4
LR = 0.05


def make(kind: str) -> nn.Module:
    torch.manual_seed(0)
    if kind == "mlp":
        return WSNMaskMLP(input_dim=20, hidden_dims=[32, 32], output_dim=8)
    return WSNMaskResNet18(input_channels=3, output_dim=512, batch_normalization=None)


def data(kind: str, task: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + task)
    shape = (4, 20) if kind == "mlp" else (4, 3, 16, 16)
    return torch.randn(shape, generator=g), torch.randint(0, N_CLASSES, (4,), generator=g)


def head_for(kind: str, task: int) -> nn.Linear:
    torch.manual_seed(200 + task)
    return nn.Linear(8 if kind == "mlp" else 512, N_CLASSES)


def layer_params(m: nn.Module, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    layer = m.get_layer_by_name(name)
    return layer.weight, layer.bias


def sgd_step(params, lr: float) -> None:
    """Plain SGD (no momentum, no weight decay), written out: torch.optim's first use imports
    torch._dynamo, seconds of start-up on the test machine."""
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p.add_(p.grad, alpha=-lr)


def train_task(m, kind: str, task: int, frozen: tuple[dict, dict] | None) -> None:
    m.setup_task_id(task)
    torch.manual_seed(300 + task)
    m.initialize_parameter_score("default")
    head = head_for(kind, task)
    params = [*m.parameters(), *head.parameters()]
    x, y = data(kind, task)
    m.train()
    for _ in range(STEPS[kind]):
        for p in params:
            p.grad = None
        f, _, _, _ = m(x, "train", C)
        loss = F.cross_entropy(head(f), y)
        assert torch.isfinite(loss)
        loss.backward()
        if frozen is not None:
            wmask, bmask = frozen
            for name in m.weighted_layer_names:
                w, b = layer_params(m, name)
                if w.grad is not None:
                    w.grad.masked_fill_(wmask[name].view_as(w).bool(), 0)
                if b is not None and b.grad is not None:
                    b.grad.masked_fill_(bmask[name].bool(), 0)
        sgd_step(params, LR)


def binary_masks(m) -> tuple[dict, dict]:
    with torch.no_grad():
        wm, bm = m.get_mask("train", C)
    wm = {k: v.detach().clone() for k, v in wm.items()}
    bm = {k: v.detach().clone() for k, v in bm.items()}
    for v in [*wm.values(), *bm.values()]:
        assert bool(((v == 0) | (v == 1)).all())
    return wm, bm


def eval_test_stage(m, kind: str, masks) -> tuple[torch.Tensor, dict]:
    m.eval()
    x, _ = data(kind, 1)
    with torch.no_grad():
        f, wm, bm, acts = m(x, "test", C, test_mask=masks)
    assert wm is masks[0] and bm is masks[1]
    return f.clone(), {k: v.clone() for k, v in acts.items()}




@pytest.fixture(scope="module", params=["mlp", "resnet18"])
def after_task1(request):
    kind = request.param
    m = make(kind)
    start = {k: v.clone() for k, v in m.state_dict().items()}
    train_task(m, kind, 1, frozen=None)
    # task 1 really trained its weights and its scores
    changed = [k for k, v in m.state_dict().items() if not torch.equal(v, start[k])]
    assert any(k.startswith("weight_score_t.") for k in changed)
    assert any(not k.startswith(("weight_score_t.", "bias_score_t.")) for k in changed)
    masks = binary_masks(m)
    outs = eval_test_stage(m, kind, masks)
    # the recorded outputs are deterministic
    again = eval_test_stage(m, kind, masks)
    assert torch.equal(outs[0], again[0])
    return kind, m, masks, outs


def _task2(after_task1, freeze: bool):
    kind, m1, masks1, outs1 = after_task1
    m = deepcopy(m1)
    w_before = {n: layer_params(m, n)[0].detach().clone() for n in m.weighted_layer_names}
    train_task(m, kind, 2, frozen=masks1 if freeze else None)
    return kind, m, masks1, outs1, w_before


def test_frozen_task1_weights_keep_task1_outputs_bit_identical(after_task1):
    kind, m, masks1, (f1, acts1), w_before = _task2(after_task1, freeze=True)
    wm1, _ = masks1
    # task 2 got its own masks and trained the entries task 1 left free
    wm2, _ = binary_masks(m)
    assert any(not torch.equal(wm2[n], wm1[n]) for n in m.weighted_layer_names)
    moved_free = False
    for n in m.weighted_layer_names:
        w = layer_params(m, n)[0].detach()
        keep = wm1[n].view_as(w).bool()
        merged = torch.where(keep, w_before[n], w)
        assert torch.equal(merged, w), n  # the entries kept by task 1 are untouched
        moved_free |= not torch.equal(merged, w_before[n])  # some free entries moved
    assert moved_free
    f, acts = eval_test_stage(m, kind, masks1)
    assert torch.equal(f, f1)
    assert list(acts) == list(acts1)
    for k in acts1:
        assert torch.equal(acts[k], acts1[k]), k


def test_without_freezing_task1_outputs_change(after_task1):
    kind, m, masks1, (f1, _), _ = _task2(after_task1, freeze=False)
    f, _ = eval_test_stage(m, kind, masks1)
    assert not torch.equal(f, f1)


@pytest.mark.parametrize("kind", ["mlp", "resnet18"])
def test_initialize_parameter_score_gives_every_layer_new_scores(kind):
    """'default' (Kaiming uniform, a=sqrt(5): |score| <= 1/sqrt(fan_in) for weights and biases),
    'U01' and 'N01' re-draw the weight and bias scores of every weighted layer."""
    m = make(kind)
    for mode in ("default", "U01", "N01"):
        before = {k: v.clone() for k, v in m.state_dict().items()}
        torch.manual_seed(5)
        m.initialize_parameter_score(mode)
        sd = m.state_dict()
        for n in m.weighted_layer_names:
            ws, bs = sd[f"weight_score_t.{n}.weight"], sd[f"bias_score_t.{n}.weight"]
            assert not torch.equal(ws, before[f"weight_score_t.{n}.weight"]), (mode, n)
            assert not torch.equal(bs, before[f"bias_score_t.{n}.weight"]), (mode, n)
            if mode == "default":
                bound = 1 / ws.shape[1] ** 0.5
                for s in (ws, bs):
                    assert float(s.abs().max()) <= bound * (1 + 1e-6), (n, float(s.abs().max()), bound)
                assert float(ws.abs().max()) > 0.5 * bound
            elif mode == "U01":
                assert float(ws.min()) >= 0 and float(ws.max()) <= 1 and float(bs.min()) >= 0
            elif mode == "N01":
                assert float(ws.min()) < 0 < float(ws.max())
        # nothing but the scores changes
        for k, v in sd.items():
            if not k.startswith(("weight_score_t.", "bias_score_t.")):
                assert torch.equal(v, before[k]), k
