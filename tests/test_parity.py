"""Parity of the compiled backbones with the independent plain-PyTorch references.

Both forms of every parity spec are checked: the generated class (`generated.<stem>`) and the
runtime module (`specc.build`). Against `tests/reference/plain.py` (written from CONTRACT.md) they
must have the same constructor, the same `weighted_layer_names`, the same module tree and
`state_dict` keys in the same order, and, with the reference's weights loaded, the same feature
and activations (bit for bit) in eval and train mode, including the batch-norm running statistics
that a training forward updates.
"""
from __future__ import annotations

import importlib
import inspect

import pytest
import torch
from torch import nn

from conftest import PRETRAINED, SPECS, constructor_parameters
from reference import plain

import specc
from specc.builder import runtime_class
from specc.frontend.load import load_program

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

FORMS = ("generated", "runtime")


def make(form: str, stem: str, class_name: str, **kwargs) -> nn.Module:
    if form == "generated":
        cls = getattr(importlib.import_module(f"generated.{stem}"), class_name)
        return cls(**kwargs)
    return specc.build(SPECS / f"{stem}.cl", **kwargs)


def signature_of(cls) -> list[tuple[str, object]]:
    """(name, default) of the constructor's named parameters (the reference's `**kwargs`, the seed's
    "reserved for multiple inheritance", aside)."""
    sig = inspect.signature(cls)
    return [(p.name, p.default) for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def assert_same_structure(ours: nn.Module, ref: nn.Module) -> None:
    assert ours.weighted_layer_names == ref.weighted_layer_names
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in ref.named_modules()]
    ours_sd, ref_sd = ours.state_dict(), ref.state_dict()
    assert list(ours_sd) == list(ref_sd), "state_dict keys differ (or their order does)"
    for k in ref_sd:
        assert ours_sd[k].shape == ref_sd[k].shape, k
        assert ours_sd[k].dtype == ref_sd[k].dtype, k
    # Same kinds of modules under the same names (Linear/Conv2d/BatchNorm/activation classes).
    ours_mods, ref_mods = dict(ours.named_modules()), dict(ref.named_modules())
    for name, m in ref_mods.items():
        if name == "":
            continue
        if isinstance(m, (plain.ResNetBlockSmall, plain.ResNetBlockLarge)):
            continue  # the block container is our own class; its children are compared
        assert type(ours_mods[name]) is type(m), name
        assert ours_mods[name].extra_repr() == m.extra_repr(), name
    # Layer look-ups and neighbours follow the seed's semantics.
    for name in ref.weighted_layer_names:
        assert ours.get_layer_by_name(name) is ours_mods[name.replace("/", ".")]
        assert ours.preceding_layer_name(name) == ref.preceding_layer_name(name)
        assert ours.next_layer_name(name) == ref.next_layer_name(name)
    assert ours.get_layer_by_name(None) is None
    assert ours.preceding_layer_name(None) is None
    assert ours.output_dim == ref.output_dim


def assert_same_result(ours_out, ref_out) -> None:
    assert len(ours_out) == 2
    (f1, a1), (f2, a2) = ours_out, ref_out
    assert f1.shape == f2.shape
    assert torch.equal(f1, f2), f"feature differs by {(f1 - f2).abs().max().item()}"
    assert list(a1) == list(a2), "activation keys (or their order) differ"
    for k in a2:
        assert a1[k].shape == a2[k].shape, k
        assert torch.equal(a1[k], a2[k]), f"activation {k} differs by {(a1[k] - a2[k]).abs().max().item()}"


def assert_same_buffers(ours: nn.Module, ref: nn.Module) -> None:
    ob, rb = dict(ours.named_buffers()), dict(ref.named_buffers())
    assert list(ob) == list(rb)
    for k in rb:
        assert torch.equal(ob[k], rb[k]), f"buffer {k} differs after a training forward"


def run(module: nn.Module, x: torch.Tensor, cl: bool, seed: int):
    torch.manual_seed(seed)
    if cl:
        return module(x, "train", 1)  # (input, stage, task_id)
    return module(x, "train")


def check_forward_parity(ours: nn.Module, ref: nn.Module, x: torch.Tensor, cl: bool, train_steps: int = 2) -> None:
    plain.copy_weights(ref, ours)
    # eval mode
    ours.eval(), ref.eval()
    with torch.no_grad():
        assert_same_result(run(ours, x, cl, 0), run(ref, x, cl, 0))
    # train mode: dropout draws from the seeded generator, batch norm updates its running stats
    ours.train(), ref.train()
    for seed in range(1, train_steps + 1):
        with torch.no_grad():
            assert_same_result(run(ours, x, cl, seed), run(ref, x, cl, seed))
        assert_same_buffers(ours, ref)
    # eval again, with the updated statistics
    ours.eval(), ref.eval()
    with torch.no_grad():
        assert_same_result(run(ours, x, cl, 3), run(ref, x, cl, 3))


# ---------------------------------------------------------------------------------------------
# constructors
# ---------------------------------------------------------------------------------------------

CLASSES = [("mlp", "MLP"), ("cl_mlp", "CLMLP")] + [
    (f"{p}resnet{d}", f"{c}ResNet{d}") for d in (18, 34, 50, 101, 152) for p, c in (("", ""), ("cl_", "CL"))]


@pytest.mark.parametrize("stem,class_name", CLASSES)
def test_constructor_signature_matches_reference(stem, class_name):
    ref = signature_of(getattr(plain, class_name)) + (PRETRAINED if class_name.endswith("ResNet18") else [])
    gen_cls = getattr(importlib.import_module(f"generated.{stem}"), class_name)
    assert gen_cls.__name__ == class_name
    assert constructor_parameters(gen_cls) == ref
    rt_cls = runtime_class(load_program(SPECS / f"{stem}.cl"))
    assert rt_cls.__name__ == class_name
    assert constructor_parameters(rt_cls) == ref


@pytest.mark.parametrize("stem,class_name", [("mlp", "MLP"), ("cl_mlp", "CLMLP"),
                                             ("resnet18", "ResNet18"), ("cl_resnet18", "CLResNet18")])
def test_base_classes_and_cl_bookkeeping(stem, class_name):
    from specc.runtime.bases import Backbone, CLBackbone

    args = dict(input_dim=12, hidden_dims=[3], output_dim=2) if "mlp" in stem else dict(input_channels=3, output_dim=5)
    for form in FORMS:
        m = make(form, stem, class_name, **args)
        assert isinstance(m, Backbone)
        assert isinstance(m, CLBackbone) == stem.startswith("cl_")
        for k, v in args.items():  # constructor arguments are kept as attributes, as CLArena does
            assert getattr(m, k) == v
        if stem.startswith("cl_"):
            assert m.processed_task_ids == []
            m.setup_task_id(1)
            m.setup_task_id(2)
            assert m.task_id == 2 and m.processed_task_ids == [1, 2]


# ---------------------------------------------------------------------------------------------
# MLP family
# ---------------------------------------------------------------------------------------------

MLP_CONFIGS = {
    "default": dict(),
    "batch_norm": dict(batch_normalization=True),
    "dropout": dict(dropout=0.3),
    "no_bias": dict(bias=False),
    "no_activation": dict(activation_layer=None),
    "leaky_relu": dict(activation_layer=nn.LeakyReLU),
    "tanh_bn_dropout": dict(activation_layer=nn.Tanh, batch_normalization=True, dropout=0.5),
    "empty_hidden": dict(hidden_dims=[]),
    "empty_hidden_bn_dropout": dict(hidden_dims=[], batch_normalization=True, dropout=0.2),
    "deep_no_bias_bn": dict(hidden_dims=[7, 6, 5, 4], bias=False, batch_normalization=True),
}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("cl", [False, True], ids=["MLP", "CLMLP"])
@pytest.mark.parametrize("config", list(MLP_CONFIGS))
def test_mlp_parity(config, cl, form):
    kwargs = dict(input_dim=784, hidden_dims=[16, 8], output_dim=4)
    kwargs.update(MLP_CONFIGS[config])
    stem, class_name = ("cl_mlp", "CLMLP") if cl else ("mlp", "MLP")
    torch.manual_seed(0)
    ref = getattr(plain, class_name)(**kwargs)
    ours = make(form, stem, class_name, **kwargs)
    assert type(ours).__name__ == class_name
    assert_same_structure(ours, ref)
    x = torch.randn(2, 1, 28, 28)  # an image batch: the MLP flattens it to (2, 784)
    check_forward_parity(ours, ref, x, cl)


@pytest.mark.parametrize("form", FORMS)
def test_mlp_feature_input_and_positional_stage(form):
    """A (batch, features) input works too, and forward(input) alone (stage defaults to None)."""
    ref = plain.MLP(5, [4], 3)
    ours = make(form, "mlp", "MLP", input_dim=5, hidden_dims=[4], output_dim=3)
    plain.copy_weights(ref, ours)
    x = torch.randn(2, 5)
    assert_same_result(ours(x), ref(x))
    cl_ref = plain.CLMLP(5, [4], 3)
    cl = make(form, "cl_mlp", "CLMLP", input_dim=5, hidden_dims=[4], output_dim=3)
    plain.copy_weights(cl_ref, cl)
    assert_same_result(cl(x), cl_ref(x))
    assert_same_result(cl(x, stage="test", task_id=3), cl_ref(x, stage="test", task_id=3))


@pytest.mark.parametrize("form", FORMS)
def test_mlp_activation_instances_are_distinct(form):
    """`fc_activation` holds an instance per layer (CLArena's ModuleList of activation_layer())."""
    ours = make(form, "mlp", "MLP", input_dim=5, hidden_dims=[4, 4], output_dim=3, activation_layer=nn.LeakyReLU)
    acts = list(ours.fc_activation)
    assert len(acts) == 3 and len({id(a) for a in acts}) == 3
    assert all(type(a) is nn.LeakyReLU for a in acts)
    assert ours.activation_layer is nn.LeakyReLU


@pytest.mark.parametrize("form", FORMS)
def test_mlp_backward_matches_reference(form):
    kwargs = dict(input_dim=12, hidden_dims=[6, 5], output_dim=3, batch_normalization=True)
    ref, ours = plain.MLP(**kwargs), make(form, "mlp", "MLP", **kwargs)
    plain.copy_weights(ref, ours)
    x = torch.randn(4, 12)
    ref(x)[0].square().sum().backward()
    ours(x)[0].square().sum().backward()
    ref_grads = {k: p.grad for k, p in ref.named_parameters()}
    for k, p in ours.named_parameters():
        assert torch.equal(p.grad, ref_grads[k]), k


# ---------------------------------------------------------------------------------------------
# ResNet family
# ---------------------------------------------------------------------------------------------

RESNET_CONFIGS = {
    "rgb": dict(input_channels=3),
    "gray": dict(input_channels=1),
    "no_bn": dict(input_channels=3, batch_normalization=False),
    "no_activation": dict(input_channels=3, activation_layer=None),
    "bias_tanh": dict(input_channels=1, bias=True, activation_layer=nn.Tanh),
}


def _resnet_cases():
    """Every configuration on ResNet-18 (small blocks); a subset on ResNet-34/50 (the same blocks,
    more of them; 50 has the bottleneck). CL variants share the architecture: a subset of them."""
    cases = [(18, c, False) for c in RESNET_CONFIGS] + [(18, "rgb", True), (18, "no_activation", True)]
    cases += [(34, "rgb", False), (34, "no_bn", True), (50, "rgb", False), (50, "gray", True),
              (50, "no_activation", False)]
    return [(d, c, cl, f) for d, c, cl in cases for f in FORMS]


@pytest.mark.parametrize("depth,config,cl,form", _resnet_cases(),
                         ids=lambda v: {True: "CL", False: "plain"}.get(v, str(v)) if isinstance(v, bool) else str(v))
def test_resnet_parity(depth, config, cl, form):
    kwargs = dict(output_dim=10, **RESNET_CONFIGS[config])
    class_name, stem = (f"CLResNet{depth}", f"cl_resnet{depth}") if cl else (f"ResNet{depth}", f"resnet{depth}")
    torch.manual_seed(0)
    ref = getattr(plain, class_name)(**kwargs)
    ours = make(form, stem, class_name, **kwargs)
    assert type(ours).__name__ == class_name
    assert_same_structure(ours, ref)
    x = torch.randn(2, kwargs["input_channels"], 32, 32)
    check_forward_parity(ours, ref, x, cl, train_steps=1)


@pytest.mark.parametrize("cl", [False, True], ids=["plain", "CL"])
@pytest.mark.parametrize("depth", [101, 152])
def test_deep_resnet_parity(depth, cl):
    """The deep ResNets, kept cheap: full structure checks of both forms, one eval forward at
    1x3x32x32 (both forms for the plain classes, the generated one for the CL classes)."""
    kwargs = dict(input_channels=3, output_dim=7)
    class_name, stem = (f"CLResNet{depth}", f"cl_resnet{depth}") if cl else (f"ResNet{depth}", f"resnet{depth}")
    ref = getattr(plain, class_name)(**kwargs).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = run(ref, x, cl, 0)
    for form in FORMS:
        ours = make(form, stem, class_name, **kwargs)
        assert_same_structure(ours, ref)
        assert len(ours.weighted_layer_names) == 1 + 3 * sum(plain.RESNET_CONFIGS[depth][1])
        if cl and form == "runtime":
            continue
        plain.copy_weights(ref, ours).eval()
        with torch.no_grad():
            assert_same_result(run(ours, x, cl, 0), expected)


def test_resnet_feature_is_pooled_map_not_output_dim():
    """CLArena records `output_dim` but builds no layer for it: the feature has 512 / 2048 units."""
    for depth, units in ((18, 512), (50, 2048)):
        m = specc.build(SPECS / f"resnet{depth}.cl", input_channels=3, output_dim=10).eval()
        with torch.no_grad():
            feature, _ = m(torch.randn(1, 3, 32, 32))
        assert feature.shape == (1, units)
        assert m.output_dim == 10


def test_resnet_shortcut_convs_are_not_weighted_layers():
    m = specc.build(SPECS / "resnet18.cl", input_channels=3, output_dim=10)
    downs = [n for n, mod in m.named_modules() if n.endswith("identity_downsample")]
    assert downs == ["conv3x.0.identity_downsample", "conv4x.0.identity_downsample", "conv5x.0.identity_downsample"]
    assert not any("identity_downsample" in n for n in m.weighted_layer_names)
    conv = m.get_layer_by_name("conv3x/0/identity_downsample")
    assert isinstance(conv, nn.Conv2d) and conv.bias is None and conv.stride == (2, 2)


def test_generated_and_runtime_agree_with_each_other():
    """Same weights -> same outputs for the two forms (not only through the reference)."""
    kwargs = dict(input_channels=3, output_dim=10, batch_normalization=True)
    gen = make("generated", "cl_resnet34", "CLResNet34", **kwargs)
    rt = make("runtime", "cl_resnet34", "CLResNet34", **kwargs)
    plain.copy_weights(gen, rt)
    x = torch.randn(2, 3, 32, 32)
    gen.train(), rt.train()
    assert_same_result(rt(x, "train", 1), gen(x, "train", 1))
    assert_same_buffers(rt, gen)


@pytest.mark.parametrize("form", FORMS)
def test_deepcopy_keeps_the_forward(form):
    import copy

    m = make(form, "cl_resnet18", "CLResNet18", input_channels=3, output_dim=10).eval()
    c = copy.deepcopy(m)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert_same_result(c(x, "test", 1), m(x, "test", 1))
    assert list(c.state_dict()) == list(m.state_dict())


def test_reference_pickles_whole_module():
    """The ground truth: a hand-written backbone survives torch.save(model) / torch.load."""
    import io

    ref = plain.MLP(4, [3], 2)
    buf = io.BytesIO()
    torch.save(ref, buf)
    buf.seek(0)
    assert isinstance(torch.load(buf, weights_only=False), plain.MLP)


def test_generated_module_pickles_whole_module():
    import io

    m = make("generated", "cl_mlp", "CLMLP", input_dim=4, hidden_dims=[3], output_dim=2)
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    r = torch.load(buf, weights_only=False)
    x = torch.randn(2, 4)
    assert_same_result(r(x), m(x))
