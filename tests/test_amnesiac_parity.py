"""Parity of the AmnesiacHAT backbones (AmnesiacHATMLP, AmnesiacHATResNet18/50): generated class,
runtime module (`specc.build`) and the independent reference `tests/reference/amnesiac.py`
(written from CONTRACT.md; it imports nothing from specc).

Set-up (`prepare`): tasks 1..n get random N(0,1) task embeddings and store their binary masks (and
batch norms, when independent); task n+1 is current with random embeddings; backups for 1..n are
instantiated; every batch norm (main, per-task copies, backups) gets random affine parameters and
running statistics. The reference runs on a deep copy of the same network, reading its modules by
the contract's names.

Comparisons in stage 'train_with_backup':

* generated vs runtime: always `torch.equal` (same seed, same assembled code).
* backup features vs reference: always `torch.equal`. The backup path has no folded operation:
  every routed mix is `m_b * backup(x) + (1 - m_b) * main(x)`, then `* m`, in the contract's order.
* main feature, activations, batch-norm state after the step vs reference: `torch.equal` (the
  mask multiplies the batch norm's output, as CLArena does; the HAT pass's optional
  `fold_batch_norm` is off). ResNets run in eval mode in float32 and, for one case, in train mode
  in float64.
* masks: always `torch.equal`.
* every other stage, and the main outputs of 'train_with_backup' vs HAT's 'train': `torch.equal`
  to HATMaskMLP / HATMaskResNet18 (generated) with the same weights.
"""
from __future__ import annotations

import importlib
from copy import deepcopy

import pytest
import torch
from torch import nn

from conftest import SPECS
from reference import amnesiac as ref

import specc

KINDS = {
    # kind: (module stem, class, HAT stem, HAT class, plain stem, plain class, args, input shape)
    "mlp": ("mlp_amnesiac_hat", "AmnesiacHATMLP", "mlp_hat", "HATMaskMLP", "mlp", "MLP",
            dict(input_dim=20, hidden_dims=[16, 8], output_dim=4), (6, 4, 5)),
    "resnet18": ("resnet18_amnesiac_hat", "AmnesiacHATResNet18", "resnet18_hat", "HATMaskResNet18", "resnet18",
                 "ResNet18", dict(input_channels=3, output_dim=512), (2, 3, 32, 32)),
    "resnet50": ("resnet50_amnesiac_hat", "AmnesiacHATResNet50", "resnet50_hat", "HATMaskResNet50", "resnet50",
                 "ResNet50", dict(input_channels=3, output_dim=2048), (2, 3, 32, 32)),
}
TRAIN_ARGS = dict(s_max=4.0, batch_idx=3, num_batches=5)  # fractional masks
ATOL = RTOL = 1e-6


def _cls(stem: str, name: str):
    return getattr(importlib.import_module(f"generated.{stem}"), name)


def make(kind: str, form: str = "generated", **overrides) -> nn.Module:
    stem, name, *_, args, _ = KINDS[kind]
    kwargs = {**args, "gate": "sigmoid", **overrides}
    if form == "runtime":
        return specc.build(SPECS / f"{stem}.cl", **kwargs)
    return _cls(stem, name)(**kwargs)


def make_hat(kind: str, **overrides) -> nn.Module:
    _, _, stem, name, *_, args, _ = KINDS[kind]
    return _cls(stem, name)(**{**args, "gate": "sigmoid", **overrides})


def make_plain(kind: str, **overrides) -> nn.Module:
    *_, stem, name, args, _ = KINDS[kind]
    return _cls(stem, name)(**{**args, **overrides})


def randomize_bns(net: nn.Module, g: torch.Generator) -> None:
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                shape = mod.weight.shape
                mod.weight.copy_(torch.rand(shape, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(shape, generator=g) * 0.1)
                mod.running_mean.copy_(torch.randn(shape, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(shape, generator=g) + 0.5)


def randomize_embeddings(net: nn.Module, g: torch.Generator) -> None:
    with torch.no_grad():
        for te in net.task_embedding_t.values():
            te.weight.copy_(torch.randn(te.weight.shape, generator=g))


def prepare(net: nn.Module, n_backups: int, seed: int = 0) -> nn.Module:
    """Tasks 1..n finished (masks, batch norms stored), task n+1 current, backups of 1..n."""
    g = torch.Generator().manual_seed(seed)
    for t in range(1, n_backups + 2):
        net.setup_task_id(t)
        randomize_embeddings(net, g)
        if t <= n_backups:
            net.store_mask()
            if net.batch_normalization == "independent":
                net.store_bn()
    net.instantiate_backup_backbones(list(range(1, n_backups + 1)))
    randomize_bns(net, g)
    return net


def built(kind: str, n_backups: int, forms=("generated", "runtime"), **overrides) -> dict[str, nn.Module]:
    out = {}
    for form in forms:
        torch.manual_seed(0)
        out[form] = prepare(make(kind, form, **overrides), n_backups)
    return out


def same(a: torch.Tensor, b: torch.Tensor, exact: bool) -> bool:
    if exact:
        return torch.equal(a, b)
    return a.shape == b.shape and a.dtype == b.dtype and torch.allclose(a, b, atol=ATOL, rtol=RTOL)


def run_reference(kind: str, net: nn.Module, x: torch.Tensor, mask: dict) -> tuple:
    backups = {b: net.backup_backbones[f"{b}"] for b in net.backup_task_ids}
    fn = ref.mlp_reference if kind == "mlp" else ref.resnet_reference
    return fn(x, net, backups, net.masks, mask)


def check_against_reference(kind: str, nets: dict[str, nn.Module], x: torch.Tensor) -> None:
    """Forward every form in 'train_with_backup' and the reference on a copy of the generated net
    (taken before any forward); compare outputs and the state left behind."""
    ref_net = deepcopy(nets["generated"])
    outs = {form: net(x, "train_with_backup", **TRAIN_ARGS) for form, net in nets.items()}
    feature, backup_features, mask, activations = outs["generated"]
    with torch.no_grad():
        r_feature, r_backup, r_acts = run_reference(kind, ref_net, x, {k: v.detach() for k, v in mask.items()})

    backup_ids = nets["generated"].backup_task_ids
    for form, (f, bf, m, a) in outs.items():
        # generated == runtime, bit for bit
        assert torch.equal(f, feature), form
        assert list(bf) == backup_ids, form
        assert all(torch.equal(bf[b], backup_features[b]) for b in backup_ids), form
        assert list(m) == list(mask) and all(torch.equal(m[k], mask[k]) for k in mask), form
        assert list(a) == list(activations) and all(torch.equal(a[k], activations[k]) for k in a), form
    assert list(mask) == nets["generated"].weighted_layer_names
    for b in backup_ids:
        assert torch.equal(backup_features[b], r_backup[b]), (b, (backup_features[b] - r_backup[b]).abs().max())
    assert same(feature, r_feature, True), (feature - r_feature).abs().max()
    assert list(activations) == list(r_acts)
    for k in r_acts:
        assert same(activations[k], r_acts[k], True), k
    # the state a forward changes (batch-norm running statistics of main and backup networks)
    r_state = ref_net.state_dict()
    for form, net in nets.items():
        sd = net.state_dict()
        assert list(sd) == list(r_state), form
        for k, v in sd.items():
            assert same(v, r_state[k], True), (form, k)
            assert torch.equal(v, nets["generated"].state_dict()[k]), (form, k, "!= generated")


# ---------------------------------------------------------------------------------------------
# forward parity with the reference
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("n_backups", [1, 2])
@pytest.mark.parametrize("bn", [None, "shared", "independent"])
def test_mlp_train_with_backup_matches_reference(bn, n_backups, train):
    nets = built("mlp", n_backups, batch_normalization=bn)
    for net in nets.values():
        net.train(train)
    x = torch.randn(*KINDS["mlp"][-1], generator=torch.Generator().manual_seed(1))
    check_against_reference("mlp", nets, x)


RESNET_CASES = [
    # (kind, batch norm, backups, train mode, float64)
    ("resnet18", None, 2, True, False),
    ("resnet18", "shared", 1, False, False),
    ("resnet18", "shared", 2, True, True),
    ("resnet18", "independent", 1, False, False),
    ("resnet50", "shared", 1, False, False),
    ("resnet50", None, 1, True, False),
]


@pytest.mark.parametrize("kind,bn,n_backups,train,f64", RESNET_CASES,
                         ids=[f"{k}-{b}-{n}bk-{'train' if t else 'eval'}{'-f64' if d else ''}"
                              for k, b, n, t, d in RESNET_CASES])
def test_resnet_train_with_backup_matches_reference(kind, bn, n_backups, train, f64):
    # ResNet-50: generated only against the reference (runtime == generated on ResNet-50 is
    # checked in test_runtime_equals_generated_same_seed), to keep the suite fast on two cores.
    forms = ("generated",) if kind == "resnet50" else ("generated", "runtime")
    nets = built(kind, n_backups, forms, batch_normalization=bn)
    x = torch.randn(*KINDS[kind][-1], generator=torch.Generator().manual_seed(1))
    for net in nets.values():
        net.train(train)
        if f64:
            net.double()
    check_against_reference(kind, nets, x.double() if f64 else x)


# ---------------------------------------------------------------------------------------------
# every other stage: what HAT returns
# ---------------------------------------------------------------------------------------------


OTHER_STAGES = [
    ("train", TRAIN_ARGS),
    ("validation", dict(s_max=2.0)),
    ("test", dict(test_task_id=1)),
    ("unlearning_test", {}),
]


@pytest.mark.parametrize("kind,bn", [("mlp", None), ("mlp", "shared"), ("mlp", "independent"),
                                     ("resnet18", "shared")])
def test_other_stages_equal_hat(kind, bn):
    n_backups = 2
    am = built(kind, n_backups, ("generated",), batch_normalization=bn)["generated"]
    hat = make_hat(kind, batch_normalization=bn)
    for t in range(1, n_backups + 2):
        hat.setup_task_id(t)
    hat_state = {k: v for k, v in am.state_dict().items() if not k.startswith("backup_backbones.")}
    assert list(hat.state_dict()) == list(hat_state)
    hat.load_state_dict(hat_state, strict=True)
    hat.masks = deepcopy(am.masks)
    x = torch.randn(*KINDS[kind][-1], generator=torch.Generator().manual_seed(1))
    stages = OTHER_STAGES if kind == "mlp" else [OTHER_STAGES[0], OTHER_STAGES[2]]
    for train in (True, False):
        am.train(train)
        hat.train(train)
        for stage, args in stages:
            out, expected = am(x, stage, **args), hat(x, stage, **args)
            assert len(out) == 3, stage
            (f, m, a), (ef, em, ea) = out, expected
            assert torch.equal(f, ef), (stage, train)
            assert list(m) == list(em) and all(torch.equal(m[k], em[k]) for k in m), (stage, train)
            assert list(a) == list(ea) and all(torch.equal(a[k], ea[k]) for k in a), (stage, train)
    # 'train_with_backup': the main outputs are HAT's 'train' outputs (last: in train mode its
    # backup paths also update the main batch norms' running statistics)
    for train in (False, True):
        am.train(train)
        hat.train(train)
        f, bf, m, a = am(x, "train_with_backup", **TRAIN_ARGS)
        ef, em, ea = hat(x, "train", **TRAIN_ARGS)
        assert torch.equal(f, ef) and list(bf) == [1, 2]
        assert all(torch.equal(m[k], em[k]) for k in em) and list(m) == list(em)
        assert all(torch.equal(a[k], ea[k]) for k in ea) and list(a) == list(ea)


# ---------------------------------------------------------------------------------------------
# structure: state_dict keys, backup classes, kwargs, disable_unlearning, same seed
# ---------------------------------------------------------------------------------------------


STRUCTURE_CASES = [("mlp", None, 1), ("mlp", "shared", 2), ("mlp", "independent", 2),
                   ("resnet18", None, 1), ("resnet18", "independent", 2), ("resnet50", "shared", 1)]


@pytest.mark.parametrize("kind,bn,n_backups", STRUCTURE_CASES)
def test_state_dict_keys_and_backup_classes(kind, bn, n_backups):
    am = built(kind, n_backups, ("generated",), batch_normalization=bn)["generated"]
    hat = make_hat(kind, batch_normalization=bn)
    for t in range(1, n_backups + 2):
        hat.setup_task_id(t)
    plain_kwargs = {**KINDS[kind][-2], "batch_normalization": bn is not None}
    plain_keys = list(make_plain(kind, **plain_kwargs).state_dict())

    expected = list(hat.state_dict()) + [f"backup_backbones.{b}.{k}" for b in range(1, n_backups + 1)
                                         for k in plain_keys]
    assert list(am.state_dict()) == expected
    assert list(am.backup_backbones) == [f"{b}" for b in range(1, n_backups + 1)]
    assert am.backup_task_ids == list(range(1, n_backups + 1))
    for backup in am.backup_backbones.values():
        assert isinstance(backup, am.original_backbone_class)
        assert list(backup.state_dict()) == plain_keys
    # the backups' constructor arguments: the plain class's, batch norm as a bool
    assert list(am.original_backbone_class(**am.backup_backbone_kwargs).state_dict()) == plain_keys
    assert am.backup_backbone_kwargs["batch_normalization"] is (bn is not None)


@pytest.mark.parametrize("kind", ["mlp", "resnet18"])
def test_disable_unlearning(kind):
    for form in ("generated", "runtime"):
        am = make(kind, form, batch_normalization="shared", disable_unlearning=True)
        assert am.disable_unlearning is True
        assert not hasattr(am, "backup_backbone_kwargs")
        assert not hasattr(am, "backup_backbones")
        assert list(am.state_dict()) == list(make_hat(kind, batch_normalization="shared").state_dict())
    am = make(kind, batch_normalization="shared")
    assert am.disable_unlearning is False and hasattr(am, "backup_backbone_kwargs")


@pytest.mark.parametrize("kind,bn", [("mlp", "independent"), ("resnet50", "shared")])
def test_runtime_equals_generated_same_seed(kind, bn):
    nets = built(kind, 2 if kind == "mlp" else 1, batch_normalization=bn)
    gen, rt = nets["generated"], nets["runtime"]
    sg, sr = gen.state_dict(), rt.state_dict()
    assert list(sg) == list(sr)
    assert all(torch.equal(sg[k], sr[k]) for k in sg)
    assert gen.backup_backbone_kwargs == rt.backup_backbone_kwargs
    assert gen.masks.keys() == rt.masks.keys()
    assert all(torch.equal(gen.masks[t][k], rt.masks[t][k]) for t in gen.masks for k in gen.masks[t])
    if kind == "mlp":  # ResNet-50 forwards: generated == runtime shown on ResNet-18 above
        x = torch.randn(*KINDS[kind][-1])
        (f, bf, _, _), (rf, rbf, _, _) = (n(x, "train_with_backup", **TRAIN_ARGS) for n in (gen, rt))
        assert torch.equal(f, rf) and all(torch.equal(bf[b], rbf[b]) for b in bf)


@pytest.mark.parametrize("bn", [None, "shared"])
def test_backup_is_a_plain_mlp(bn):
    """A backup backbone computes what the plain generated MLP computes with its weights."""
    am = built("mlp", 1, ("generated",), batch_normalization=bn)["generated"]
    plain = make_plain("mlp", batch_normalization=bn is not None)
    backup = am.backup_backbones["1"]
    plain.load_state_dict(backup.state_dict(), strict=True)
    x = torch.randn(*KINDS["mlp"][-1])
    for train in (False, True):
        backup.train(train)
        plain.train(train)
        (f, a), (pf, pa) = backup(x), plain(x)
        assert torch.equal(f, pf)
        assert list(a) == list(pa) and all(torch.equal(a[k], pa[k]) for k in a)
