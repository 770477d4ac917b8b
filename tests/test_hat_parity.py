"""Parity of the HAT backbones: generated class, runtime module (`specc.build`) and the independent
reference (`tests/reference/hat.py`, written from CONTRACT.md and the seed).

With the same weights, task embeddings and stored masks (state dicts loaded; key lists compared in
order), the three forms must return the same feature, mask and activations in every stage, in eval
and train mode, for every batch-norm mode, and leave the same state (batch-norm running statistics,
per-task copies) behind.

Comparisons are `torch.equal` (bit for bit), in float32, in every stage: generated vs runtime (the
same assembled code) and compiled vs reference (the same operations in the same order: the mask
multiplies the batch norm's output, as CLArena does). The HAT pass can instead fold a mask into
the batch norm's affine parameters (`mask hat(fold_batch_norm = true)`, off by default), which
rounds differently; `test_fractional_mask_after_bn_bit_exact` guards the default.

ResNet-50 forwards compare generated vs reference only (runtime runs the very same compiled
function; it is compared to generated for ResNet-50 in `test_structure_and_same_seed_init`), to
keep the suite fast on two cores.
"""
from __future__ import annotations

import importlib
import inspect
from contextlib import nullcontext
from copy import deepcopy

import pytest
import torch
from torch import nn

from conftest import PRETRAINED, SPECS, constructor_parameters
from reference import hat as ref

import specc
from specc.builder import runtime_class
from specc.frontend.load import load_program

FORMS = ("generated", "runtime", "reference")

KINDS = {
    # kind: (spec stem, class name, constructor args, input shape)
    "mlp": ("mlp_hat", "HATMaskMLP", dict(input_dim=20, hidden_dims=[16, 8], output_dim=4), (6, 4, 5)),
    "resnet18": ("resnet18_hat", "HATMaskResNet18", dict(input_channels=3, output_dim=512), (2, 3, 32, 32)),
    # batch 4: train-mode batch norm over only 2 values per channel (conv5x is 1x1 at 32x32) is so
    # ill-conditioned that even float64 rounding differences grow past 1e-6 over ResNet-50's depth
    "resnet50": ("resnet50_hat", "HATMaskResNet50", dict(input_channels=3, output_dim=2048), (4, 3, 32, 32)),
}

MLP_VARIANTS = {
    "default": {},
    "dropout": dict(dropout=0.3),
    "no_bias": dict(bias=False),
    "no_activation": dict(activation_layer=None),
    "tanh": dict(activation_layer=nn.Tanh),
    "empty_hidden": dict(hidden_dims=[]),
    "one_unit_output": dict(hidden_dims=[16], output_dim=1),  # masks squeeze to 0-d tensors
}

STAGES = [
    ("train", dict(s_max=400, batch_idx=1, num_batches=5)),  # s = 1/s_max: soft masks ~ 0.5
    ("train", dict(s_max=4.0, batch_idx=3, num_batches=5)),
    ("train", dict(s_max=400, batch_idx=5, num_batches=5)),  # s = s_max
    ("validation", dict(s_max=2.0)),
    ("test", dict(test_task_id=1)),
    ("unlearning_test", {}),
]
RESNET_STAGES = {
    "resnet18": [STAGES[1], STAGES[4], STAGES[5]],
    "resnet50": [STAGES[1], STAGES[4]],
}


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def make(form: str, kind: str, gate: str = "sigmoid", **overrides) -> nn.Module:
    stem, cls_name, args, _ = KINDS[kind]
    kwargs = {**args, "gate": gate, **overrides}
    if form == "generated":
        return getattr(importlib.import_module(f"generated.{stem}"), cls_name)(**kwargs)
    if form == "runtime":
        return specc.build(SPECS / f"{stem}.cl", **kwargs)
    return getattr(ref, cls_name)(**kwargs)


FORWARD_FORMS = {"resnet50": ("generated", "reference")}


def make_all(kind: str, **overrides) -> dict[str, nn.Module]:
    torch.manual_seed(0)  # deterministic whatever ran before (the states are synced anyway)
    return {f: make(f, kind, **overrides) for f in FORWARD_FORMS.get(kind, FORMS)}


def differ(a: tuple, b: tuple) -> bool:
    """Two forward results differ in some recorded activation (a masked-out feature can be all
    zeros for both)."""
    return any(not torch.allclose(a[2][k], b[2][k]) for k in a[2])


def randomize(model: nn.Module, seed: int) -> None:
    """Non-trivial batch-norm parameters / statistics and fresh N(0,1) task embeddings (so the
    binary masks contain zeros and ones); weights keep their initialisation."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            leaf = name.rsplit(".", 1)[-1]
            if not t.is_floating_point():
                continue
            if name.startswith("task_embedding_t."):
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
    """Same state everywhere: the generated model's (randomized) state dict is loaded strictly into
    the others after checking that the key lists agree, in order."""
    randomize(models["generated"], seed)
    resync(models)


def resync(models: dict[str, nn.Module]) -> None:
    """Load the generated model's current state (incl. per-task copies) into the other forms."""
    sd = models["generated"].state_dict()
    for form, m in models.items():
        assert list(m.state_dict().keys()) == list(sd.keys()), form
        m.load_state_dict(sd, strict=True)


ATOL = RTOL = 1e-6


def same(a: torch.Tensor, b: torch.Tensor, exact: bool) -> bool:
    if exact or torch.equal(a, b):  # equal: the fast path for the many untouched weights
        return torch.equal(a, b)
    return a.shape == b.shape and a.dtype == b.dtype and torch.allclose(a, b, atol=ATOL, rtol=RTOL)


def _base(d: dict) -> str:
    return "reference" if "reference" in d else "generated"


def assert_same_state(models: dict[str, nn.Module], exact: bool = True) -> None:
    """Same state_dict keys (in order) and values; generated == runtime always bit for bit."""
    base = models[_base(models)].state_dict()
    gen = models["generated"].state_dict()
    for form, m in models.items():
        sd = m.state_dict()
        assert list(sd.keys()) == list(base.keys()), form
        for k in sd:
            assert same(sd[k], base[k], exact), (form, k)
            assert form == "reference" or torch.equal(sd[k], gen[k]), (form, k, "!= generated")


def assert_same_bn_state(models: dict[str, nn.Module], exact: bool = True) -> None:
    """Like assert_same_state, restricted to the batch-norm entries (the only state a forward
    changes): cheap enough to run after every forward of a ResNet-50."""
    sds = {f: {k: v for k, v in m.state_dict().items() if "bn" in k} for f, m in models.items()}
    base, gen = sds[_base(sds)], sds["generated"]
    for form, sd in sds.items():
        assert list(sd) == list(base), form
        for k in sd:
            assert same(sd[k], base[k], exact), (form, k)
            assert form == "reference" or torch.equal(sd[k], gen[k]), (form, k, "!= generated")


def assert_same_output(outs: dict[str, tuple], where: str = "", exact: bool = True) -> None:
    """generated == runtime bit for bit; both == reference (exactly, or within 1e-6 in float64 where
    the batch-norm fold legitimately reorders the rounding, see the module docstring). The masks
    are always compared exactly."""
    f0, m0, a0 = outs[_base(outs)]
    fg, _, ag = outs["generated"]
    for form, (f, m, a) in outs.items():
        assert same(f, f0, exact), (form, where, "feature", (f - f0).abs().max())
        assert form == "reference" or torch.equal(f, fg), (form, where, "feature != generated")
        assert list(m.keys()) == list(m0.keys()), (form, where, "mask keys")
        for k in m0:
            assert torch.equal(m[k], m0[k]), (form, where, "mask", k)
        assert list(a.keys()) == list(a0.keys()), (form, where, "activation keys")
        for k in a0:
            assert same(a[k], a0[k], exact), (form, where, "activation", k)
            assert form == "reference" or torch.equal(a[k], ag[k]), (form, where, "activation != generated", k)


def assert_same_grads(models: dict[str, nn.Module], exact: bool, where: str = "") -> None:
    grads = {f: [(n, p.grad) for n, p in m.named_parameters()] for f, m in models.items()}
    base, gen = grads[_base(grads)], grads["generated"]
    for form, gl in grads.items():
        assert [n for n, _ in gl] == [n for n, _ in base], form
        for (n, gp), (_, gb), (_, gg) in zip(gl, base, gen):
            assert (gp is None) == (gb is None), (form, where, n)
            if gb is not None:
                assert same(gp, gb, exact), (form, where, n, "grad")
                assert form == "reference" or torch.equal(gp, gg), (form, where, n, "grad != generated")
    for m in models.values():
        m.zero_grad(set_to_none=True)


def run_all(models, x, stage, grad=False, **kwargs) -> dict[str, tuple]:
    outs = {}
    for form, m in models.items():
        torch.manual_seed(1234)  # same dropout draws in every form
        with nullcontext() if grad else torch.no_grad():
            outs[form] = m(x, stage, **kwargs)
    return outs


def named_modules_without_gate(m: nn.Module) -> list[str]:
    return [n for n, _ in m.named_modules() if n != "gate_fn"]


def input_of(kind: str, seed: int = 7) -> torch.Tensor:
    return torch.randn(KINDS[kind][3], generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------
# structure
# ---------------------------------------------------------------------------------------------


CONTRACT_SIGNATURES = {
    "mlp_hat": [("input_dim", inspect.Parameter.empty), ("hidden_dims", inspect.Parameter.empty),
                ("output_dim", inspect.Parameter.empty), ("gate", inspect.Parameter.empty),
                ("activation_layer", nn.ReLU), ("batch_normalization", None), ("bias", True),
                ("dropout", None)],
    **{f"resnet{d}_hat": [("input_channels", inspect.Parameter.empty),
                          ("output_dim", inspect.Parameter.empty), ("gate", inspect.Parameter.empty),
                          ("activation_layer", nn.ReLU), ("batch_normalization", None), ("bias", False)]
       + (PRETRAINED if d == 18 else [])
       for d in (18, 34, 50, 101, 152)},
}


@pytest.mark.parametrize("stem", sorted(CONTRACT_SIGNATURES))
def test_constructor_signature(stem):
    cls_name = "HATMaskMLP" if stem == "mlp_hat" else f"HATMaskResNet{stem[6:-4]}"
    gen = getattr(importlib.import_module(f"generated.{stem}"), cls_name)
    rt = runtime_class(load_program(SPECS / f"{stem}.cl"))
    for cls in (gen, rt):
        assert cls.__name__ == cls_name
        assert constructor_parameters(cls) == CONTRACT_SIGNATURES[stem]


@pytest.mark.parametrize("kind,bn", [(k, b) for k in ("mlp", "resnet18", "resnet50")
                                     for b in (None, "shared", "independent")
                                     if (k, b) != ("resnet50", "shared")])  # ⊂ independent
def test_structure_and_same_seed_init(kind, bn):
    """Same state_dict keys (in order), module tree (ignoring where `gate_fn` sits, checked by test_gate_fn_registered_after_architecture
    below), weighted layers and task-embedding keys/sizes; and with the same torch seed the three
    forms draw identical initial weights (runtime == generated, and both == reference)."""
    models = {}
    for f in FORMS:
        torch.manual_seed(42)
        models[f] = make(f, kind, batch_normalization=bn)
    r = models["reference"]
    for form, m in models.items():
        assert m.weighted_layer_names == r.weighted_layer_names, form
        assert named_modules_without_gate(m) == named_modules_without_gate(r), form
        assert list(m.task_embedding_t.keys()) == m.weighted_layer_names, form
        for name in m.weighted_layer_names:
            layer = m.get_layer_by_name(name)
            assert isinstance(layer, (nn.Linear, nn.Conv2d)), (form, name)
            assert tuple(m.task_embedding_t[name].weight.shape) == (1, layer.weight.size(0))
        assert m.masks == {} and m.processed_task_ids == [] and m.gate == "sigmoid"
        assert isinstance(m.gate_fn, nn.Sigmoid)
        assert m.output_dim == KINDS[kind][2]["output_dim"]
    assert_same_state(models)
    # the per-task copies follow the same names in every form
    for m in models.values():
        m.setup_task_id(1)
        m.setup_task_id(2)
    assert_same_state(models)
    bn_copy_keys = [k for k in r.state_dict() if "_bns." in k or "bn1s." in k or "bn2s." in k or "bn3s." in k]
    if bn == "independent":
        assert bn_copy_keys and all(".1." in k or ".2." in k for k in bn_copy_keys)
    else:
        assert bn_copy_keys == []
    # runtime == generated on the same seed, without any loading: same test-stage forward
    x = input_of(kind)
    outs = {}
    for f in ("generated", "runtime"):
        models[f].eval()
        models[f].store_mask()
        with torch.no_grad():
            outs[f] = models[f](x, "test", test_task_id=2)
    assert_same_output(outs, "same seed")


def test_gate_fn_registered_after_architecture():
    for form in ("generated", "runtime"):
        names = [n for n, _ in make(form, "mlp", dropout=0.1).named_modules()]
        assert names.index("gate_fn") > names.index("fc_dropout"), form


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_weighted_layer_names_equal_plain_resnet(depth):
    plain = importlib.import_module(f"generated.resnet{depth}")
    with torch.device("meta"):  # names only: skip the weight initialisation
        p = getattr(plain, f"ResNet{depth}")(input_channels=3, output_dim=10, batch_normalization=False)
        g = getattr(importlib.import_module(f"generated.resnet{depth}_hat"),
                    f"HATMaskResNet{depth}")(input_channels=3, output_dim=10, gate="sigmoid")
        rt = specc.build(SPECS / f"resnet{depth}_hat.cl", input_channels=3, output_dim=10, gate="sigmoid")
        r = getattr(ref, f"HATMaskResNet{depth}")(input_channels=3, output_dim=10, gate="sigmoid")
    for m in (g, rt, r):
        assert m.weighted_layer_names == p.weighted_layer_names
        assert list(m.task_embedding_t.keys()) == p.weighted_layer_names
        assert [k for k in m.state_dict() if not k.startswith("task_embedding_t.")] == \
            [k for k in p.state_dict()]


# ---------------------------------------------------------------------------------------------
# forward parity: None and shared batch norm
# ---------------------------------------------------------------------------------------------


def _check_all_stages(models, x, stages=STAGES, grad: bool = False):
    """Every stage, in eval then train mode.

    Every stage is compared bit for bit (module docstring)."""
    for m in models.values():
        m.setup_task_id(1)
        m.store_mask()
    for form, m in models.items():
        for k, v in m.masks[1].items():
            assert torch.equal(v, models["reference"].masks[1][k]), (form, k)
    ones = sum(float(v.sum()) for v in models["reference"].masks[1].values())
    assert 0 < ones < sum(v.numel() for v in models["reference"].masks[1].values())
    for train_mode in (False, True):
        for stage, kwargs in stages:
            where = f"{stage} {kwargs} train={train_mode}"
            for m in models.values():
                m.train(train_mode)
            outs = run_all(models, x, stage, grad=grad, **kwargs)
            assert_same_output(outs, where)
            assert_same_bn_state(models)
            if stage == "test":
                for form, m in models.items():  # the stored dict itself, as in the seed
                    assert outs[form][1] is m.masks[1], form
            if grad and stage == "train":
                for out in outs.values():
                    out[0].square().sum().backward()
                assert_same_grads(models, True, where)


@pytest.mark.parametrize("bn", [None, "shared"])
@pytest.mark.parametrize("variant", sorted(MLP_VARIANTS))
def test_mlp_parity(variant, bn):
    models = make_all("mlp", batch_normalization=bn, **MLP_VARIANTS[variant])
    sync(models)
    _check_all_stages(models, input_of("mlp"), grad=True)


def test_mlp_embedding_gradients_flow():
    m = make("generated", "mlp")
    m.setup_task_id(1)
    feat, mask, _ = m(input_of("mlp"), "train", s_max=4.0, batch_idx=2, num_batches=3)
    feat.sum().backward()
    for name in m.weighted_layer_names:
        assert m.task_embedding_t[name].weight.grad is not None
        assert m.task_embedding_t[name].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("bn", [None, "shared"])
@pytest.mark.parametrize("kind", ["resnet18", "resnet50"])
def test_resnet_parity(kind, bn):
    models = make_all(kind, batch_normalization=bn)
    sync(models)
    _check_all_stages(models, input_of(kind), RESNET_STAGES[kind], grad=(kind == "resnet18" and bn is None))


def test_resnet18_variants_parity():
    """activation None and bias True, with shared batch norm."""
    models = make_all("resnet18", batch_normalization="shared", activation_layer=None, bias=True)
    sync(models)
    _check_all_stages(models, input_of("resnet18"), [STAGES[2], STAGES[4]])


@pytest.mark.parametrize("kind", ["mlp", "resnet18"])
def test_shared_and_none_bn_helpers_are_noops(kind):
    """store_bn / initialize_independent_bn do nothing unless batch norm is independent (CLArena:
    "Applies only when `batch_normalization` is 'independent'"); setup_task_id makes no copies."""
    for bn in (None, "shared"):
        for form in ("generated", "runtime"):
            m = make(form, kind, batch_normalization=bn)
            randomize(m, 3)
            m.setup_task_id(1)
            before = {k: v.clone() for k, v in m.state_dict().items()}
            m.store_bn()
            m.initialize_independent_bn()  # must not reset a shared batch norm
            after = m.state_dict()
            assert list(after) == list(before), (form, bn)
            assert all(torch.equal(after[k], before[k]) for k in before), (form, bn)


@pytest.mark.parametrize("bn", ["shared", "independent"])
def test_fractional_mask_after_bn_bit_exact(bn):
    torch.manual_seed(0)
    models = {f: make(f, "mlp", batch_normalization=bn) for f in ("generated", "reference")}
    sync({**models, "runtime": make("runtime", "mlp", batch_normalization=bn)})
    x = input_of("mlp")
    for m in models.values():
        m.eval()
        m.setup_task_id(1)
    outs = {f: m(x, "train", s_max=400, batch_idx=1, num_batches=5) for f, m in models.items()}
    assert torch.equal(outs["generated"][0], outs["reference"][0])
    for k in outs["reference"][2]:
        assert torch.equal(outs["generated"][2][k], outs["reference"][2][k]), k


# ---------------------------------------------------------------------------------------------
# independent batch norm: two tasks
# ---------------------------------------------------------------------------------------------


def _is_live_bn(name: str) -> bool:
    """A live batch-norm entry (`fc_bn.0.weight`, `conv2x.0.conv_bn1.bias`), not a per-task copy
    (`fc_bns.1.0.weight`, `conv2x.0.conv_bn1s.1.bias`)."""
    parts = name.split(".")
    bn_parts = [p for p in parts if p.startswith(("fc_bn", "conv_bn"))]
    return bool(bn_parts) and not any(p.endswith("s") for p in bn_parts)


def _live_bn_params(m: nn.Module):
    return [p for n, p in m.named_parameters() if _is_live_bn(n)]


def _live_bn_state(m: nn.Module) -> dict[str, torch.Tensor]:
    return {n: t for n, t in m.state_dict().items() if _is_live_bn(n)}


def _bn_copies(m: nn.Module) -> dict[str, torch.Tensor]:
    """The per-task batch-norm copies."""
    return {n: t for n, t in m.state_dict().items() if "bn" in n and not _is_live_bn(n)}


def _nudge_live_bn(models, amount: float) -> None:
    """An identical 'optimizer step' on the live batch norms of every form."""
    with torch.no_grad():
        for m in models.values():
            for p in _live_bn_params(m):
                p.mul_(1 + amount).add_(amount)


def _set_embeddings(models, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    values = {n: torch.randn(e.weight.shape, generator=g)
              for n, e in models["reference"].task_embedding_t.items()}
    with torch.no_grad():
        for m in models.values():
            for n, e in m.task_embedding_t.items():
                e.weight.copy_(values[n])


def _bn_default(name: str, t: torch.Tensor) -> torch.Tensor:
    """A freshly constructed BatchNorm's entry."""
    leaf = name.rsplit(".", 1)[-1]
    return torch.ones_like(t) if leaf in ("weight", "running_var") else torch.zeros_like(t)


@pytest.mark.parametrize("kind", ["mlp", "resnet18", "resnet50"])
def test_independent_bn_two_tasks(kind):
    """Two tasks with independent batch norm, following the training loop's calls: setup_task_id,
    train-mode forwards (live running statistics move), an optimizer-like change of the live
    affine parameters, store_bn / store_mask, then task 2 with initialize_independent_bn.

    Task 1's test output after task 2 must be bit-identical to the one before (in every form);
    each stage uses the right copy (or the live modules); everything is compared bit for bit.
    ResNet-50 takes the main path only (the optional checks are marked `full`)."""
    full = kind != "resnet50"
    models = make_all(kind, batch_normalization="independent")
    sync(models)
    x1, x2 = input_of(kind, 1), input_of(kind, 2)
    train_kw = dict(s_max=400, batch_idx=3, num_batches=4)

    # ---- task 1
    for m in models.values():
        m.setup_task_id(1)
        m.train()
    assert_same_state(models)  # the copies made by setup_task_id are named alike everywhere
    assert_same_output(run_all(models, x1, "train", **train_kw), "t1 train")
    _nudge_live_bn(models, 0.1)
    if full:
        assert_same_output(run_all(models, x1, "validation", s_max=400), "t1 validation")
    for m in models.values():
        m.store_bn()
        m.store_mask()
        m.eval()
    assert_same_bn_state(models)
    t1_before = run_all(models, x1, "test", test_task_id=1)
    assert_same_output(t1_before, "t1 test")
    # setting up an existing task again keeps its stored copy (the live batch norms differ now)
    _nudge_live_bn(models, 0.05)
    copies_before = {f: deepcopy(_bn_copies(m)) for f, m in models.items()}
    for m in models.values():
        m.setup_task_id(1)
    for f, m in models.items():
        after = _bn_copies(m)
        assert list(after) == list(copies_before[f]), f
        assert all(torch.equal(v, copies_before[f][k]) for k, v in after.items()), f

    # ---- task 2
    for m in models.values():
        m.setup_task_id(2)
        m.initialize_independent_bn()
    assert_same_bn_state(models)
    for form, m in models.items():  # live batch norms back to their construction state
        live = _live_bn_state(m)
        assert live and all(torch.equal(t, _bn_default(k, t)) for k, t in live.items()), form
    _set_embeddings(models, 99)
    for m in models.values():
        m.train()
    # train / validation use the live modules even when a test_task_id is passed
    assert_same_output(run_all(models, x2, "train", test_task_id=1, **train_kw), "t2 train")
    _nudge_live_bn(models, -0.2)
    if full:
        assert_same_output(run_all(models, x2, "validation", s_max=400, test_task_id=1), "t2 validation")
    for m in models.values():
        m.store_bn()
        m.store_mask()
    # move the live batch norms away from task 2's stored copy
    run_all(models, x1, "train", **train_kw)
    _nudge_live_bn(models, 0.3)
    for m in models.values():
        m.eval()
    assert_same_bn_state(models)

    # ---- test: each task uses its own copy
    t1_after = run_all(models, x1, "test", test_task_id=1)
    assert_same_output(t1_after, "t1 test after t2")
    for form in models:  # bit-identical to before task 2, in every form
        assert_same_output({"generated": t1_after[form], "reference": t1_before[form]}, f"t1 {form}")
    t2 = run_all(models, x1, "test", test_task_id=2)
    assert_same_output(t2, "t2 test")
    assert differ(t2["reference"], t1_after["reference"])
    # unlearning_test: the copy of test_task_id, or of the current task (2) when None ...
    u_none = run_all(models, x1, "unlearning_test")
    assert_same_output(u_none, "unlearning None")
    if full:
        assert_same_output(run_all(models, x1, "unlearning_test", test_task_id=1), "unlearning t1")
        u2 = run_all(models, x1, "unlearning_test", test_task_id=2)
        for form in models:
            assert torch.equal(u_none[form][0], u2[form][0]), form
        # ... and not the live modules
        live = run_all(models, x1, "validation", s_max=400)
        assert differ(live["reference"], t2["reference"])

    # ---- test stage in train mode: task 1's copy normalises with batch statistics and updates
    # its own running statistics, never the live ones
    for m in models.values():
        m.train()
    live_now = {f: deepcopy(_live_bn_state(m)) for f, m in models.items()}
    assert_same_output(run_all(models, x2, "test", test_task_id=1), "t1 test, train mode")
    assert_same_bn_state(models)
    for f, m in models.items():
        assert all(torch.equal(v, live_now[f][k]) for k, v in _live_bn_state(m).items()), f
        m.eval()
    if full:
        assert differ(run_all(models, x1, "test", test_task_id=1)["reference"], t1_before["reference"])
    assert_same_state(models)

    # ---- float32, same state everywhere: the binary-mask stages are bit-identical
    for m in models.values():
        m.float()
    resync(models)
    x1 = x1.float()
    checks = [("test", dict(test_task_id=1), False), ("test", dict(test_task_id=2), True)]
    if full:
        checks += [("test", dict(test_task_id=1), True), ("unlearning_test", {}, False),
                   ("unlearning_test", dict(test_task_id=1), True)]
    for stage, kwargs, train_mode in checks:
        for m in models.values():
            m.train(train_mode)
        assert_same_output(run_all(models, x1, stage, **kwargs), f"f32 {stage} {kwargs} {train_mode}")
        assert_same_bn_state(models)


# ---------------------------------------------------------------------------------------------
# errors (the seed's messages, word for word; specc adds what to pass)
# ---------------------------------------------------------------------------------------------

# specc's messages: the seed's sentence (it names `batch_num` and `task_mask`, which are no
# arguments), then what to pass.
ADVICE = {
    ref.ERR_TRAIN: " Pass s_max=..., batch_idx=... (1 for the first batch of the epoch) and num_batches=... "
                   "(the batches in the epoch).",
    ref.ERR_VALIDATION: " Pass s_max=... (the s_max of training).",
    ref.ERR_TEST: " Pass test_task_id=T: the task whose mask `store_mask()` stored when its training ended.",
}

MISSING = [
    ("train", dict(batch_idx=1, num_batches=3), ref.ERR_TRAIN),
    ("train", dict(s_max=400, num_batches=3), ref.ERR_TRAIN),
    ("train", dict(s_max=400, batch_idx=1), ref.ERR_TRAIN),
    ("train", {}, ref.ERR_TRAIN),
    ("validation", {}, ref.ERR_VALIDATION),
    ("test", {}, ref.ERR_TEST),
]


@pytest.mark.parametrize("kind", ["mlp", "resnet18"])
def test_missing_argument_errors(kind):
    models = make_all(kind, batch_normalization="independent")
    x = input_of(kind)
    for m in models.values():
        m.setup_task_id(1)
        m.store_mask()
        m.store_bn()
    for form, m in models.items():
        for stage, kwargs, msg in MISSING:
            with pytest.raises(ValueError) as e:
                m(x, stage, **kwargs)
            assert str(e.value) == (msg if form == "reference" else msg + ADVICE[msg]), (form, stage, kwargs)
        # num_batches == 1 divides by zero, exactly as the seed's formula does
        with pytest.raises(ZeroDivisionError):
            m(x, "train", s_max=400, batch_idx=1, num_batches=1)
        # a task without a stored mask
        with pytest.raises(KeyError):
            m(x, "test", test_task_id=5)


@pytest.mark.parametrize("kind", ["mlp", "resnet18"])
@pytest.mark.parametrize("form", FORMS)
def test_unknown_gate(kind, form):
    with pytest.raises(ValueError) as e:
        make(form, kind, gate="relu")
    assert str(e.value) == ref.ERR_GATE


def test_get_mask_formulas_directly():
    """The train / validation masks equal the seed's formulas evaluated here by hand."""
    m = make("generated", "mlp")
    m.setup_task_id(1)
    s_max, b, nb = 400.0, 3, 7
    s = 1 / s_max + (s_max - 1 / s_max) * (b - 1) / (nb - 1)
    tr = m.get_mask("train", s_max=s_max, batch_idx=b, num_batches=nb)
    va = m.get_mask("validation", s_max=s_max)
    ul = m.get_mask("unlearning_test")
    for name in m.weighted_layer_names:
        w = m.task_embedding_t[name].weight
        assert torch.equal(tr[name], torch.sigmoid(w * s).squeeze())
        assert torch.equal(va[name], torch.sigmoid(w * s_max).squeeze())
        assert torch.equal(ul[name], torch.ones(w.size(1)))
    binary = m.store_mask()
    assert binary is m.masks[1]
    for name in m.weighted_layer_names:
        w = m.task_embedding_t[name].weight
        assert torch.equal(binary[name], (w > 0).float().squeeze())
        assert not binary[name].requires_grad
