"""A small continual-learning run with HAT on a compiled HATMaskMLP (20-16-8-4, synthetic data).

Task 1 is trained (stage 'train', s_max=400, batch_idx / num_batches), its mask and batch norms are
stored, and its test outputs (stage 'test', test_task_id=1, eval mode) recorded. Task 2 is then
set up (`setup_task_id(2)`, `initialize_independent_bn()`, fresh task embeddings) and trained with
HAT's gradient rule: after backward, each weighted layer's weight gradient is multiplied by
1 - weight_measure and its bias gradient by 1 - bias_measure, where (weight_measure, bias_measure)
= get_layer_measure_parameter_wise(task 1's stored mask, layer, 'min'). Task 2's optimizer holds
the backbone and task 2's head only. Task 1's test outputs must then be bit-identical to before;
without the gradient rule they must change (so the test can fail).
"""
from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import SPECS

import specc

ARGS = dict(input_dim=20, hidden_dims=[16, 8], output_dim=4, gate="sigmoid")
CLASSES = 3
S_MAX = 400
NUM_BATCHES, BATCH = 4, 16
EPOCHS = 8  # 32 steps per task
LR = 0.1


def make(form: str, bn: str | None) -> nn.Module:
    if form == "generated":
        return importlib.import_module("generated.mlp_hat").HATMaskMLP(**ARGS, batch_normalization=bn)
    return specc.build(SPECS / "mlp_hat.cl", **ARGS, batch_normalization=bn)


def task_data(seed: int, shift: float):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(NUM_BATCHES * BATCH, 20, generator=g) + shift
    y = torch.randint(0, CLASSES, (NUM_BATCHES * BATCH,), generator=g)
    return x, y


def train_task(backbone, head, x, y, protect: dict[str, torch.Tensor] | None) -> list[float]:
    opt = torch.optim.SGD(list(backbone.parameters()) + list(head.parameters()), lr=LR)
    backbone.train()
    losses = []
    for _ in range(EPOCHS):
        for b in range(NUM_BATCHES):
            xb, yb = x[b * BATCH:(b + 1) * BATCH], y[b * BATCH:(b + 1) * BATCH]
            opt.zero_grad()
            feature, _, _ = backbone(xb, "train", s_max=S_MAX, batch_idx=b + 1, num_batches=NUM_BATCHES)
            loss = F.cross_entropy(head(feature), yb)
            loss.backward()
            if protect is not None:  # HAT: no update of the parameters task 1 uses
                for name in backbone.weighted_layer_names:
                    layer = backbone.get_layer_by_name(name)
                    weight_measure, bias_measure = backbone.get_layer_measure_parameter_wise(protect, name, "min")
                    layer.weight.grad.mul_(1 - weight_measure)
                    if layer.bias is not None:
                        layer.bias.grad.mul_(1 - bias_measure)
            opt.step()
            losses.append(loss.item())
    return losses


def task1_outputs(backbone, head, x):
    backbone.eval()
    with torch.no_grad():
        feature, mask, activations = backbone(x, "test", test_task_id=1)
        logits = head(feature)
    return feature.clone(), logits.clone(), {k: v.clone() for k, v in activations.items()}


def run(form: str, bn: str | None, protect: bool):
    torch.manual_seed(0)
    backbone = make(form, bn)
    head1, head2 = nn.Linear(4, CLASSES), nn.Linear(4, CLASSES)
    x1, y1 = task_data(1, 0.0)
    x2, y2 = task_data(2, 1.0)

    backbone.setup_task_id(1)
    losses1 = train_task(backbone, head1, x1, y1, protect=None)
    mask1 = backbone.store_mask()
    backbone.store_bn()
    before = task1_outputs(backbone, head1, x1)
    head1_state = {k: v.clone() for k, v in head1.state_dict().items()}

    backbone.setup_task_id(2)
    backbone.initialize_independent_bn()
    backbone.initialize_task_embedding("N01")
    losses2 = train_task(backbone, head2, x2, y2, protect=backbone.masks[1] if protect else None)
    after = task1_outputs(backbone, head1, x1)

    assert all(torch.equal(v, head1_state[k]) for k, v in head1.state_dict().items())
    return mask1, before, after, losses1, losses2


def outputs_equal(a, b) -> bool:
    (fa, la, aa), (fb, lb, ab) = a, b
    return (torch.equal(fa, fb) and torch.equal(la, lb) and list(aa) == list(ab)
            and all(torch.equal(aa[k], ab[k]) for k in aa))


@pytest.mark.parametrize("form", ["generated", "runtime"])
@pytest.mark.parametrize("bn", [None, "independent"])
def test_hat_protects_task1(form, bn):
    mask1, before, after, losses1, losses2 = run(form, bn, protect=True)
    # the run is meaningful: both tasks learn, and task 1 leaves free units for task 2
    assert sum(losses1[-NUM_BATCHES:]) < sum(losses1[:NUM_BATCHES])
    assert sum(losses2[-NUM_BATCHES:]) < sum(losses2[:NUM_BATCHES])
    used = sum(int(m.sum()) for m in mask1.values())
    assert 0 < used < sum(m.numel() for m in mask1.values())
    # task 1 is untouched, bit for bit
    assert outputs_equal(before, after)


@pytest.mark.parametrize("form", ["generated"])
@pytest.mark.parametrize("bn", [None, "independent"])
def test_without_the_gradient_rule_task1_changes(form, bn):
    _, before_p, _, _, _ = run(form, bn, protect=True)
    _, before, after, _, _ = run(form, bn, protect=False)
    assert outputs_equal(before, before_p)  # the same task-1 phase in both runs
    assert not torch.equal(before[0], after[0])
    assert not torch.equal(before[1], after[1])
