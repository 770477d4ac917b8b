"""Parity of the WSN backbones: generated class, runtime module (`specc.build`) and the independent
reference (`tests/reference/wsn.py`, written from CONTRACT.md with its own torch.quantile gate).

Same weights and scores (state dicts loaded strictly, key lists compared in order) -> the same
feature, weight masks, bias masks and activations, bit for bit (`torch.equal`), in the stages
'train', 'validation' and 'test' (the latter with a given binary `test_mask` pair), and the same
gradients on weights and scores."""
from __future__ import annotations

import importlib
import inspect

import pytest
import torch
from torch import nn

from conftest import PRETRAINED, SPECS, constructor_parameters
from reference import wsn as ref

import specc
from specc.builder import runtime_class
from specc.frontend.load import load_program

FORMS = ("generated", "runtime", "reference")

MLP_ARGS = dict(input_dim=20, hidden_dims=[16, 8], output_dim=4)
RESNET_ARGS = dict(input_channels=3, output_dim=512)

MLP_VARIANTS = {
    "default": {},
    "no_bias": dict(bias=False),
    "no_activation": dict(activation_layer=None),
    "tanh": dict(activation_layer=nn.Tanh),
    "dropout": dict(dropout=0.3),
    "empty_hidden": dict(hidden_dims=[]),
}


def make(form: str, kind: str, **overrides) -> nn.Module:
    stem, cls_name, args = {
        "mlp": ("mlp_wsn", "WSNMaskMLP", MLP_ARGS),
        "resnet18": ("resnet18_wsn", "WSNMaskResNet18", RESNET_ARGS),
    }[kind]
    kwargs = {**args, **overrides}
    if form == "generated":
        return getattr(importlib.import_module(f"generated.{stem}"), cls_name)(**kwargs)
    if form == "runtime":
        return specc.build(SPECS / f"{stem}.cl", **kwargs)
    return getattr(ref, cls_name)(**kwargs)


def randomize(model: nn.Module, seed: int) -> None:
    """N(0,1) scores, non-trivial batch-norm parameters and statistics (each per-task copy gets its
    own values, so using the wrong copy shows); weights keep their initialisation."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            leaf = name.rsplit(".", 1)[-1]
            if not t.is_floating_point():
                continue
            if name.startswith(("weight_score_t.", "bias_score_t.")):
                t.copy_(torch.randn(t.shape, generator=g))
            elif leaf == "running_var":
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif leaf == "running_mean":
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif "bn" in name and leaf == "weight":
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif "bn" in name and leaf == "bias":
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)


def sync(models: dict[str, nn.Module], seed: int = 0) -> None:
    randomize(models["generated"], seed)
    sd = models["generated"].state_dict()
    for form, m in models.items():
        assert list(m.state_dict().keys()) == list(sd.keys()), form
        m.load_state_dict(sd, strict=True)


def run_all(models, x, stage, c, grad=False, **kwargs):
    outs = {}
    for form, m in models.items():
        torch.manual_seed(1234)  # same dropout draws in every form
        with torch.enable_grad() if grad else torch.no_grad():
            outs[form] = m(x, stage, c, **kwargs)
    return outs


def assert_same_dict(a: dict, b: dict, what: str) -> None:
    assert list(a.keys()) == list(b.keys()), what
    for k in a:
        if a[k] is None or b[k] is None:
            assert a[k] is None and b[k] is None, (what, k)
        else:
            assert torch.equal(a[k], b[k]), (what, k)


def assert_same_outputs(outs: dict[str, tuple], where: str) -> None:
    f0, wm0, bm0, a0 = outs["reference"]
    for form, (f, wm, bm, a) in outs.items():
        assert torch.equal(f, f0), (form, where, "feature", (f - f0).abs().max())
        assert_same_dict(wm, wm0, f"{form} {where} weight_mask")
        assert_same_dict(bm, bm0, f"{form} {where} bias_mask")
        assert_same_dict(a, a0, f"{form} {where} activations")


def assert_same_state(models) -> None:
    base = models["reference"].state_dict()
    for form, m in models.items():
        sd = m.state_dict()
        assert list(sd.keys()) == list(base.keys()), form
        for k in sd:
            assert torch.equal(sd[k], base[k]), (form, k)


def assert_same_grads(models, where: str) -> None:
    grads = {f: dict(m.named_parameters()) for f, m in models.items()}
    base = grads["reference"]
    for form, g in grads.items():
        assert list(g.keys()) == list(base.keys()), form
        for n, p in g.items():
            gb = base[n].grad
            assert (p.grad is None) == (gb is None), (form, where, n)
            if gb is not None:
                assert torch.equal(p.grad, gb), (form, where, n, "grad")
    for m in models.values():
        m.zero_grad(set_to_none=True)


def binary(masks: dict) -> dict:
    return {k: (None if v is None else v.detach().clone()) for k, v in masks.items()}


# ---------------------------------------------------------------------------------------------
# structure
# ---------------------------------------------------------------------------------------------

SIGNATURES = {
    ("mlp_wsn", "WSNMaskMLP"): [
        ("input_dim", inspect.Parameter.empty), ("hidden_dims", inspect.Parameter.empty),
        ("output_dim", inspect.Parameter.empty), ("activation_layer", nn.ReLU), ("bias", True),
        ("dropout", None)],
    ("resnet18_wsn", "WSNMaskResNet18"): [
        ("input_channels", inspect.Parameter.empty), ("output_dim", inspect.Parameter.empty),
        ("activation_layer", nn.ReLU), ("batch_normalization", "independent"), ("bias", False)] + PRETRAINED,
}


@pytest.mark.parametrize("stem,cls_name", sorted(SIGNATURES))
def test_constructor_signature(stem, cls_name):
    gen = getattr(importlib.import_module(f"generated.{stem}"), cls_name)
    rt = runtime_class(load_program(SPECS / f"{stem}.cl"))
    for cls in (gen, rt):
        assert cls.__name__ == cls_name
        assert constructor_parameters(cls) == SIGNATURES[(stem, cls_name)]


@pytest.mark.parametrize("variant", sorted(MLP_VARIANTS))
def test_mlp_structure_and_score_shapes(variant):
    kw = MLP_VARIANTS[variant]
    models = {f: make(f, "mlp", **kw) for f in FORMS}
    r = models["reference"]
    n_layers = len(kw.get("hidden_dims", MLP_ARGS["hidden_dims"])) + 1
    names = [f"fc/{i}" for i in range(n_layers)]
    for form, m in models.items():
        assert m.weighted_layer_names == names, form
        assert list(m.state_dict().keys()) == list(r.state_dict().keys()), form
        assert [n for n, _ in m.named_modules()] == [n for n, _ in r.named_modules()], form
        assert list(m.weight_score_t.keys()) == names and list(m.bias_score_t.keys()) == names
        for name in names:
            layer = m.get_layer_by_name(name) if form != "reference" else r.fc[int(name[3:])]
            assert isinstance(layer, nn.Linear)
            assert tuple(m.weight_score_t[name].weight.shape) == tuple(layer.weight.shape)
            assert tuple(m.bias_score_t[name].weight.shape) == (1, layer.weight.size(0))
            assert (layer.bias is None) == (kw.get("bias", True) is False)
        assert m.output_dim == MLP_ARGS["output_dim"]
    # the score dicts come before the architecture (CLArena's WSNMaskMLP)
    keys = list(models["generated"].state_dict().keys())
    assert keys[0].startswith("weight_score_t.") and keys[-1].startswith("fc.")


def test_resnet18_structure_and_score_shapes():
    plain = importlib.import_module("generated.cl_resnet18").CLResNet18(input_channels=3, output_dim=512)
    models = {f: make(f, "resnet18") for f in FORMS}
    assert len(plain.weighted_layer_names) == 17
    shortcuts = [f"conv{i}x/0/identity_downsample" for i in (3, 4, 5)]
    expected = []
    for name in plain.weighted_layer_names:
        expected.append(name)
        stage = name.split("/")[0]
        if name.endswith("/0/conv2") and stage in ("conv3x", "conv4x", "conv5x"):
            expected.append(f"{stage}/0/identity_downsample")  # conv1, conv2, then the shortcut
    assert [n for n in expected if n not in plain.weighted_layer_names] == shortcuts
    r = models["reference"]
    assert r.weighted_layer_names == expected  # the reference agrees with the brief
    gen, rt = models["generated"], models["runtime"]
    for form, m in models.items():
        assert m.weighted_layer_names == expected, form
        assert list(m.weight_score_t.keys()) == expected, form
        assert list(m.bias_score_t.keys()) == expected, form
    # state dict keys: generated == runtime == reference (incl. per-task bn copies once set up)
    assert list(gen.state_dict().keys()) == list(rt.state_dict().keys()) == list(r.state_dict().keys())
    for m in models.values():
        m.setup_task_id(1)
    assert list(gen.state_dict().keys()) == list(rt.state_dict().keys()) == list(r.state_dict().keys())
    assert any(".conv_bn1s.1." in k for k in gen.state_dict())
    for name in expected:
        conv = gen.get_layer_by_name(name)
        assert isinstance(conv, nn.Conv2d) and conv.bias is None
        o, i, kh, kw = conv.weight.shape
        for m in (gen, rt):
            assert tuple(m.weight_score_t[name].weight.shape) == (o, i * kh * kw), name
            assert tuple(m.bias_score_t[name].weight.shape) == (1, o), name
    ds = gen.get_layer_by_name("conv3x/0/identity_downsample")
    assert tuple(ds.weight.shape) == (128, 64, 1, 1) and ds.stride == (2, 2)
    assert tuple(gen.weight_score_t["conv3x/0/identity_downsample"].weight.shape) == (128, 64)
    assert tuple(gen.weight_score_t["conv1"].weight.shape) == (64, 3 * 7 * 7)


@pytest.mark.parametrize("depth", [34, 50])
def test_deeper_resnets_score_every_conv(depth):
    """Every Conv2d of the network (shortcuts included) is a weighted layer with (out, in*k*k) scores."""
    m = getattr(importlib.import_module(f"generated.resnet{depth}_wsn"),
                f"WSNMaskResNet{depth}")(input_channels=3, output_dim=2048)
    convs = [n.replace(".", "/") for n, mod in m.named_modules() if isinstance(mod, nn.Conv2d)]
    assert m.weighted_layer_names == convs
    assert sum(n.endswith("identity_downsample") for n in convs) == (3 if depth == 34 else 4)
    for n in convs:
        w = m.get_layer_by_name(n).weight
        assert tuple(m.weight_score_t[n].weight.shape) == (w.shape[0], w[0].numel())
        assert tuple(m.bias_score_t[n].weight.shape) == (1, w.shape[0])


# ---------------------------------------------------------------------------------------------
# forward parity
# ---------------------------------------------------------------------------------------------


def _check_stages(models, x, c: float) -> None:
    """train (train mode, with gradients), validation (eval mode), test (eval and train mode) with
    the binary masks of the validation stage as the given test_mask pair."""
    for m in models.values():
        m.setup_task_id(1)
    sync(models)

    for m in models.values():
        m.train()
    outs = run_all(models, x, "train", c, grad=True)
    assert_same_outputs(outs, "train")
    for f, _, _, _ in outs.values():
        (f * torch.linspace(-1, 1, f.numel()).view_as(f)).sum().backward()
    assert_same_grads(models, "train")
    assert_same_state(models)  # running statistics updated alike

    for m in models.values():
        m.eval()
    outs = run_all(models, x, "validation", c)
    assert_same_outputs(outs, "validation")
    wm, bm = binary(outs["reference"][1]), binary(outs["reference"][2])
    for v in list(wm.values()) + [v for v in bm.values() if v is not None]:
        assert bool(((v == 0) | (v == 1)).all())
    kept = sum(float(v.sum()) for v in wm.values())
    assert 0 < kept < sum(v.numel() for v in wm.values())

    for train_mode in (False, True):
        for m in models.values():
            m.train(train_mode)
        # test with another keep fraction: the given masks must be used, not the scores
        outs = run_all(models, x, "test", 0.9, test_mask=(wm, bm))
        assert_same_outputs(outs, f"test train={train_mode}")
        for form, (_, twm, tbm, _) in outs.items():
            assert twm is wm and tbm is bm, form
        assert_same_state(models)


@pytest.mark.parametrize("variant", sorted(MLP_VARIANTS))
@pytest.mark.parametrize("c", [0.5, 0.1])
def test_mlp_parity_all_stages(variant, c):
    models = {f: make(f, "mlp", **MLP_VARIANTS[variant]) for f in FORMS}
    x = torch.randn(6, 4, 5, generator=torch.Generator().manual_seed(7))  # flattened to 20
    _check_stages(models, x, c)


def test_mlp_no_bias_still_computes_bias_masks():
    models = {f: make(f, "mlp", bias=False) for f in FORMS}
    sync(models)
    x = torch.randn(3, 20)
    for form, m in models.items():
        _, wm, bm, _ = m(x, "train", 0.5)
        assert list(bm.keys()) == m.weighted_layer_names, form
        for name in m.weighted_layer_names:
            assert bm[name] is not None and tuple(bm[name].shape) == (wm[name].shape[0],), (form, name)
        assert not any(k.endswith(".bias") and k.startswith("fc.") for k in m.state_dict()), form


def test_mlp_dropout_is_active_in_train_mode_only():
    models = {f: make(f, "mlp", dropout=0.5) for f in ("generated", "reference")}
    sync(models)
    x = torch.randn(8, 20)
    for m in models.values():
        m.train()
    a = run_all(models, x, "train", 0.5)
    torch.manual_seed(999)
    b = models["generated"](x, "train", 0.5)
    assert not torch.equal(a["generated"][0], b[0])  # another seed, other draws: dropout is on
    for m in models.values():
        m.eval()
    e1 = run_all(models, x, "train", 0.5)
    torch.manual_seed(999)
    assert torch.equal(models["generated"](x, "train", 0.5)[0], e1["generated"][0])
    assert torch.equal(e1["generated"][0], e1["reference"][0])


def test_resnet18_parity_all_stages():
    """Whole WSNMaskResNet18 (default: independent batch norm) vs the reference: every block,
    shortcut convs included, in 'train' (with gradients), 'validation' and 'test'."""
    models = {f: make(f, "resnet18") for f in FORMS}
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    _check_stages(models, x, 0.5)


@pytest.mark.parametrize("bn,bias", [(None, False), (None, True), ("shared", False)])
def test_resnet18_other_bn_modes_test_stage_parity(bn, bias):
    """batch_normalization None (also with conv biases) and "shared": the 'test' stage with random
    binary masks, eval and train mode. (The gate stages are covered above; the reference's
    torch.quantile gate on 11M scores is the slow part of this file.)"""
    models = {f: make(f, "resnet18", batch_normalization=bn, bias=bias) for f in FORMS}
    for m in models.values():
        m.setup_task_id(1)
    sync(models)
    g = torch.Generator().manual_seed(8)
    gen = models["generated"]
    wm = {n: (torch.rand(gen.weight_score_t[n].weight.shape, generator=g) < 0.5).float()
          for n in gen.weighted_layer_names}
    bm = {n: (torch.rand(gen.bias_score_t[n].weight.shape[1], generator=g) < 0.5).float()
          for n in gen.weighted_layer_names}
    x = torch.randn(2, 3, 32, 32, generator=g)
    for train_mode in (False, True):
        for m in models.values():
            m.train(train_mode)
        assert_same_outputs(run_all(models, x, "test", 0.5, test_mask=(wm, bm)), f"train={train_mode}")
    assert_same_state(models)


def test_resnet18_independent_bn_uses_the_test_task_copy():
    """'test' runs the per-task batch-norm copy of test_task_id (else the current task's)."""
    models = {f: make(f, "resnet18") for f in FORMS}
    for m in models.values():
        m.setup_task_id(1)
        m.setup_task_id(2)
    sync(models)  # copies 1 and 2 and the live bn all get different statistics
    for m in models.values():
        m.eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    g = models["generated"]
    wm = {n: torch.ones_like(g.weight_score_t[n].weight) for n in g.weighted_layer_names}
    bm = {n: torch.ones(g.bias_score_t[n].weight.shape[1]) for n in g.weighted_layer_names}
    res = {}
    for tid in (1, 2, None):
        outs = run_all(models, x, "test", 0.5, test_mask=(wm, bm), test_task_id=tid)
        assert_same_outputs(outs, f"test_task_id={tid}")
        res[tid] = outs["generated"][0]
    assert not torch.equal(res[1], res[2])
    assert torch.equal(res[None], res[2])  # current task is 2


def test_resnet18_store_bn_and_initialize_independent_bn():
    """store_bn copies the live batch norms under the current task (the 'test' stage then uses
    them, in every form alike); initialize_independent_bn resets the live ones to construction."""
    models = {f: make(f, "resnet18") for f in FORMS}
    for m in models.values():
        m.setup_task_id(1)
    sync(models)  # live bn and copy 1 differ
    for m in models.values():
        m.store_bn()
    assert_same_state(models)
    gen = models["generated"]
    sd = gen.state_dict()
    live = [k for k in sd if ".conv_bn1." in k or ".conv_bn2." in k or k.startswith("conv_bn1.")]
    assert len(live) == 17 * 5
    for k in live:
        copy_key = k.replace("conv_bn1.", "conv_bn1s.1.").replace("conv_bn2.", "conv_bn2s.1.")
        assert torch.equal(sd[k], sd[copy_key]), k
    for m in models.values():
        m.eval()
    wm = {n: torch.ones_like(gen.weight_score_t[n].weight) for n in gen.weighted_layer_names}
    bm = {n: torch.ones(gen.bias_score_t[n].weight.shape[1]) for n in gen.weighted_layer_names}
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    assert_same_outputs(run_all(models, x, "test", 0.5, test_mask=(wm, bm)), "after store_bn")

    fresh = make("generated", "resnet18").state_dict()
    stored = {k: v.clone() for k, v in gen.state_dict().items()}
    gen.initialize_independent_bn()
    sd = gen.state_dict()
    for k in sd:
        if k in live:
            assert torch.equal(sd[k], fresh[k]), k  # the live bn is back to construction
        else:
            assert torch.equal(sd[k], stored[k]), k  # everything else (the copies) is kept
