"""`get_layer_measure_parameter_wise` on compiled HAT backbones, against a direct double loop.

For a weighted layer l with preceding layer p (the previous entry of `weighted_layer_names`, or
none for the first layer), the weight measure at (unit i of l, unit j of p, kernel position ...)
is Agg(measure_l[i], measure_p[j]) ('min', 'max', or 'mean' = the elementwise (a + b) / 2 that the
seed's documentation describes), or measure_l[i] for the first layer; the bias measure is
measure_l. Here it is recomputed pair by pair in plain Python.

Measures are random multiples of 1/1024 in [0, 1] (so (a + b) / 2 is exact in float32 and every
comparison is exact), and HAT's binary masks from `store_mask`.
"""
from __future__ import annotations

import importlib

import pytest
import torch

from conftest import SPECS

import specc

AGG = {"min": min, "max": max, "mean": lambda a, b: (a + b) / 2}


def build(form: str, stem: str, cls_name: str, **kwargs):
    if form == "generated":
        return getattr(importlib.import_module(f"generated.{stem}"), cls_name)(**kwargs)
    return specc.build(SPECS / f"{stem}.cl", **kwargs)


def random_measure(model, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randint(0, 1025, (model.get_layer_by_name(n).weight.size(0),), generator=g).float() / 1024
            for n in model.weighted_layer_names}


def expected_weight_measure(model, measure, layer: str, mode: str) -> list[list[float]]:
    """expected[i][j] for unit i of `layer` and unit j of its preceding layer (a direct loop)."""
    names = model.weighted_layer_names
    idx = names.index(layer)
    preceding = names[idx - 1] if idx > 0 else None
    w = model.get_layer_by_name(layer).weight
    own = measure[layer].tolist()
    prev = measure[preceding].tolist() if preceding is not None else None
    out_units, in_units = w.shape[0], w.shape[1]
    if prev is not None:
        assert len(prev) == in_units, "the preceding layer's units are this layer's inputs"
    expected = []
    for i in range(out_units):
        row = []
        for j in range(in_units):
            row.append(own[i] if prev is None else AGG[mode](own[i], prev[j]))
        expected.append(row)
    return expected


def assert_matches(model, measure, layer: str, mode: str, expected) -> None:
    w = model.get_layer_by_name(layer).weight
    weight_measure, bias_measure = model.get_layer_measure_parameter_wise(measure, layer, mode)
    assert weight_measure.shape == w.shape
    assert torch.equal(bias_measure, measure[layer])
    if model.get_layer_by_name(layer).bias is not None:
        assert bias_measure.shape == model.get_layer_by_name(layer).bias.shape
    got = weight_measure.tolist()
    for i, row in enumerate(expected):
        for j, value in enumerate(row):
            cell = got[i][j]
            if w.dim() == 4:  # every kernel position of the (i, j) pair carries the same measure
                assert all(x == value for kernel_row in cell for x in kernel_row), (layer, mode, i, j)
            else:
                assert cell == value, (layer, mode, i, j)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("form", ["generated", "runtime"])
def test_mlp_measure(form, bias):
    model = build(form, "mlp_hat", "HATMaskMLP", input_dim=20, hidden_dims=[16, 8], output_dim=4,
                  gate="sigmoid", bias=bias)
    model.setup_task_id(1)
    assert model.weighted_layer_names == ["fc/0", "fc/1", "fc/2"]
    binary = model.store_mask()
    for measure in (random_measure(model, 0), binary):
        for layer in model.weighted_layer_names:  # fc/0 is the first layer: no aggregation
            for mode in AGG:
                assert_matches(model, measure, layer, mode,
                               expected_weight_measure(model, measure, layer, mode))


# conv1: the first layer; conv2x/0/conv1 after the stem; conv3x/0/conv1 after the previous stage's
# last conv (64 -> 128 channels); conv3x/0/conv2 inside a downsampling block; conv4x/0/conv1 the
# next stage change. (Every layer, up to the last, is checked cheaply by
# test_every_layer_uses_the_list_predecessor.)
RESNET_LAYERS = {
    "conv1": ("min", "max", "mean"),
    "conv2x/0/conv1": ("min", "max", "mean"),
    "conv3x/0/conv1": ("min", "max", "mean"),
    "conv3x/0/conv2": ("min", "mean"),
    "conv4x/0/conv1": ("max",),
}


def test_resnet18_measure():
    models = [build(form, "resnet18_hat", "HATMaskResNet18", input_channels=3, output_dim=512,
                    gate="sigmoid") for form in ("generated", "runtime")]
    for m in models:
        m.setup_task_id(1)
    names = models[0].weighted_layer_names
    assert names[:3] == ["conv1", "conv2x/0/conv1", "conv2x/0/conv2"]
    assert names[names.index("conv3x/0/conv1") - 1] == "conv2x/1/conv2"
    measure = random_measure(models[0], 1)
    for layer, modes in RESNET_LAYERS.items():
        for mode in modes:
            expected = expected_weight_measure(models[0], measure, layer, mode)
            for m in models:
                assert_matches(m, measure, layer, mode, expected)
    # HAT's binary masks on a couple of layers
    binary = models[0].store_mask()
    for layer in ("conv1", "conv3x/0/conv1"):
        assert_matches(models[0], binary, layer, "min", expected_weight_measure(models[0], binary, layer, "min"))


@pytest.mark.parametrize("stem,cls_name", [("resnet18_hat", "HATMaskResNet18"), ("resnet50_hat", "HATMaskResNet50")])
def test_every_layer_uses_the_list_predecessor(stem, cls_name):
    """Every weighted layer aggregates with the previous entry of weighted_layer_names: layer k gets
    the constant measure k / 256, so the 'mean' weight measure (c_l + c_p) / 2 names p."""
    model = build("generated", stem, cls_name, input_channels=3, output_dim=10, gate="sigmoid")
    names = model.weighted_layer_names
    measure = {n: torch.full((model.get_layer_by_name(n).weight.size(0),), k / 256) for k, n in enumerate(names)}
    for k, name in enumerate(names):
        weight_measure, _ = model.get_layer_measure_parameter_wise(measure, name, "mean")
        expected = k / 256 if k == 0 else (k / 256 + (k - 1) / 256) / 2
        assert weight_measure.unique().tolist() == [expected], name


@pytest.mark.parametrize("form", ["generated", "runtime"])
def test_measure_unknown_aggregation(form):
    model = build(form, "mlp_hat", "HATMaskMLP", input_dim=20, hidden_dims=[16, 8], output_dim=4, gate="sigmoid")
    model.setup_task_id(1)
    measure = model.store_mask()
    with pytest.raises(ValueError) as e:
        model.get_layer_measure_parameter_wise(measure, "fc/1", "median")
    assert str(e.value) == "The aggregation method median is not supported."


@pytest.mark.parametrize("form", ["generated", "runtime"])
def test_measure_unknown_layer_error(form):
    model = build(form, "mlp_hat", "HATMaskMLP", input_dim=20, hidden_dims=[16, 8], output_dim=4, gate="sigmoid")
    model.setup_task_id(1)
    measure = model.store_mask()
    with pytest.raises(ValueError) as e:
        model.get_layer_measure_parameter_wise(measure, "fc/9", "min")
    assert str(e.value) == "The layer name fc/9 doesn't exist in weighted layer names."


def test_grouped_convs_measure_by_their_groups(tmp_path):
    """Output channel i of a grouped conv reads only its group's input channels: the measure at
    (i, j) aggregates unit i with the input channel j stands for in i's group. The first layer reads
    the network's input (grouped too): its own measure everywhere. Direct loop over (i, j)."""
    spec = tmp_path / "g.cl"
    spec.write_text("network G() {\n"
                    "    input image(4, 6, 6)\n"
                    "    c0: conv2d(8, kernel=3, padding=1, groups=2) -> r0: ReLU() -> record\n"
                    "    c1: conv2d(16, kernel=3, padding=1, groups=4, bias=false) -> b1: batchnorm2d() -> record\n"
                    "    c2: conv2d(4, kernel=1, groups=4) -> record\n"
                    "    flatten\n"
                    "    fc: linear(5) -> record\n"
                    "}\n"
                    "backbone HATMaskG = G\n"
                    'mask hat(gate="sigmoid")\n')
    model = specc.build(spec)
    assert model.weighted_layer_names == ["c0", "c1", "c2", "fc"]
    measure = random_measure(model, 3)
    for mode in AGG:
        for layer, preceding in (("c0", None), ("c1", "c0"), ("c2", "c1")):
            conv = model.get_layer_by_name(layer)
            out_units, per_group = conv.weight.shape[:2]
            out_per_group = out_units // conv.groups
            expected = []
            for i in range(out_units):
                row = []
                for j in range(per_group):
                    own = measure[layer][i].item()
                    if preceding is None:
                        row.append(own)
                    else:
                        source = (i // out_per_group) * per_group + j
                        row.append(AGG[mode](own, measure[preceding][source].item()))
                expected.append(row)
            assert_matches(model, measure, layer, mode, expected)
