"""The runtime base classes against the behaviour documented for CLArena's `clarena.backbones.base`."""

from __future__ import annotations

import logging
import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from specc.runtime import (
    AmnesiacHATBackbone,
    Backbone,
    CLBackbone,
    HATMaskBackbone,
    PercentileLayerParameterMaskingByScore,
    WSNMaskBackbone,
)

# --------------------------------------------------------------------------- tiny backbones


class TinyMLP(HATMaskBackbone):
    """Linear 4 -> 5 -> 3, names fc/0, fc/1."""

    def __init__(self, gate: str = "sigmoid") -> None:
        super().__init__(output_dim=3, gate=gate)
        self.fc = nn.ModuleList([nn.Linear(4, 5), nn.Linear(5, 3)])
        self.weighted_layer_names = ["fc/0", "fc/1"]
        for name, layer in zip(self.weighted_layer_names, self.fc):
            self.task_embedding_t[name] = nn.Embedding(1, layer.out_features)


class Block(HATMaskBackbone):
    """A nested HAT block without an output dimension."""

    def __init__(self) -> None:
        super().__init__(output_dim=None, gate="sigmoid")
        self.conv2 = nn.Conv2d(4, 6, 3)
        self.weighted_layer_names = ["conv2"]


class TinyConvNet(HATMaskBackbone):
    """conv1 (3 -> 4 channels) then block/conv2 (4 -> 6 channels); the block is itself HAT."""

    def __init__(self) -> None:
        super().__init__(output_dim=6, gate="sigmoid")
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.block = Block()
        self.weighted_layer_names = ["conv1", "block/conv2"]
        self.task_embedding_t["conv1"] = nn.Embedding(1, 4)
        self.task_embedding_t["block/conv2"] = nn.Embedding(1, 6)


class FlattenThenLinear(HATMaskBackbone):
    """conv (2 channels, 2x2 output) -> flatten -> linear(8 -> 3): preceding units repeat 4 times.

    Overrides the `_preceding_measure` hook to map the linear layer's inputs to conv channels."""

    def __init__(self) -> None:
        super().__init__(output_dim=3, gate="sigmoid")
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(8, 3)
        self.weighted_layer_names = ["conv", "fc"]

    def _preceding_measure(self, neuron_wise_measure, preceding_layer_name, layer_name, weight_size):
        if layer_name != "fc":
            return super()._preceding_measure(
                neuron_wise_measure, preceding_layer_name, layer_name, weight_size
            )
        per_input = neuron_wise_measure[preceding_layer_name].repeat_interleave(4)
        return per_input.view(1, -1).expand(weight_size)


# --------------------------------------------------------------------------- Backbone


def test_layer_lookup_and_order():
    net = TinyConvNet()
    assert net.get_layer_by_name("conv1") is net.conv1
    assert net.get_layer_by_name("block/conv2") is net.block.conv2
    assert net.get_layer_by_name("block") is net.block
    assert net.get_layer_by_name(None) is None
    assert net.get_layer_by_name("nope") is None

    assert net.preceding_layer_name("conv1") is None
    assert net.preceding_layer_name("block/conv2") == "conv1"
    assert net.preceding_layer_name(None) is None
    assert net.next_layer_name("conv1") == "block/conv2"
    assert net.next_layer_name("block/conv2") is None


def test_layer_order_errors_word_for_word():
    net = TinyMLP()
    with pytest.raises(ValueError) as info:
        net.preceding_layer_name("fc/9")
    assert str(info.value) == "The layer name fc/9 doesn't exist in weighted layer names."
    with pytest.raises(ValueError) as info:
        net.next_layer_name("fc.0")
    assert str(info.value) == "The layer name fc.0 doesn't exist."


def test_backbone_attributes_and_abstract_forward():
    net = Backbone(output_dim=7)
    assert net.output_dim == 7
    assert net.weighted_layer_names == []
    with pytest.raises(NotImplementedError):
        net(torch.zeros(1), "train")
    for backbone, extra in (
        (CLBackbone(output_dim=None), ()),
        (HATMaskBackbone(output_dim=None, gate="sigmoid"), ()),
        (WSNMaskBackbone(output_dim=None), (0.5,)),  # mask_percentage is required
    ):
        with pytest.raises(NotImplementedError):
            backbone(torch.zeros(1), "train", *extra)


def test_cl_backbone_task_ids():
    net = CLBackbone(output_dim=3)
    assert net.processed_task_ids == []
    assert not hasattr(net, "task_id")
    net.setup_task_id(1)
    net.setup_task_id(2)
    assert net.task_id == 2
    assert net.processed_task_ids == [1, 2]


# --------------------------------------------------------------------------- HATMaskBackbone


def test_hat_construction():
    net = TinyMLP()
    assert net.gate == "sigmoid"
    assert isinstance(net.gate_fn, nn.Sigmoid)
    assert isinstance(net.task_embedding_t, nn.ModuleDict)
    assert net.masks == {}
    assert "task_embedding_t.fc/0.weight" in net.state_dict()
    with pytest.raises(ValueError) as info:
        TinyMLP(gate="relu")
    assert str(info.value) == "The gate should be one of: 'sigmoid'."


def test_hat_init_runs_the_base_sanity_check_only():
    class Strict(HATMaskBackbone):
        def sanity_check(self):
            raise AssertionError("a subclass check must not run inside HATMaskBackbone.__init__")

    Strict(output_dim=1, gate="sigmoid")


@pytest.mark.parametrize(
    "mode, low, high", [("N01", -math.inf, math.inf), ("U-11", -1, 1), ("U01", 0, 1), ("U-10", -1, 0)]
)
def test_initialize_task_embedding(mode, low, high):
    net = TinyMLP()
    for te in net.task_embedding_t.values():
        nn.init.constant_(te.weight, 5.0)
    net.initialize_task_embedding(mode)
    for te in net.task_embedding_t.values():
        assert not bool((te.weight == 5.0).any())
        assert bool(((te.weight >= low) & (te.weight <= high)).all())


@pytest.mark.parametrize("mode", ["last", "unknown"])
def test_initialize_task_embedding_keeps_values(mode):
    net = TinyMLP()
    before = {k: v.weight.detach().clone() for k, v in net.task_embedding_t.items()}
    net.initialize_task_embedding(mode)
    for k, v in net.task_embedding_t.items():
        assert torch.equal(v.weight, before[k])


@settings(max_examples=40, deadline=None)
@given(
    s_max=st.floats(1.0, 1000.0),
    num_batches=st.integers(2, 500),
    data=st.data(),
)
def test_get_mask_train_matches_annealed_sigmoid(s_max, num_batches, data):
    batch_idx = data.draw(st.integers(1, num_batches))
    net = TinyMLP()
    mask = net.get_mask("train", s_max=s_max, batch_idx=batch_idx, num_batches=num_batches)
    # HAT Eq. (3): s = 1/s_max + (s_max - 1/s_max) * (b - 1) / (B - 1)
    s = 1 / s_max + (s_max - 1 / s_max) * (batch_idx - 1) / (num_batches - 1)
    assert list(mask) == net.weighted_layer_names
    for name, layer in zip(net.weighted_layer_names, net.fc):
        expected = torch.sigmoid(net.task_embedding_t[name].weight * s).reshape(-1)
        assert mask[name].shape == (layer.out_features,)
        assert torch.equal(mask[name], expected)


def test_anneal_endpoints_and_gradient():
    net = TinyMLP()
    te = net.task_embedding_t["fc/0"].weight
    first = net.get_mask("train", s_max=400.0, batch_idx=1, num_batches=50)["fc/0"]
    last = net.get_mask("train", s_max=400.0, batch_idx=50, num_batches=50)["fc/0"]
    torch.testing.assert_close(first, torch.sigmoid(te / 400.0).reshape(-1))
    torch.testing.assert_close(last, torch.sigmoid(te * 400.0).reshape(-1))
    first.sum().backward()
    assert te.grad is not None and bool((te.grad != 0).any())


def test_get_mask_validation_unlearning_and_unknown_stage():
    net = TinyMLP()
    mask = net.get_mask("validation", s_max=3.0)
    for name in net.weighted_layer_names:
        expected = torch.sigmoid(net.task_embedding_t[name].weight * 3.0).reshape(-1)
        assert torch.equal(mask[name], expected)

    ones = net.get_mask("unlearning_test")
    assert {k: v.tolist() for k, v in ones.items()} == {"fc/0": [1.0] * 5, "fc/1": [1.0] * 3}
    assert all(v.dtype == torch.float32 for v in ones.values())

    assert net.get_mask("something else", s_max=1.0) == {}


def test_get_mask_test_returns_stored_masks_on_the_layer_device():
    net = TinyMLP()
    stored = {"fc/0": torch.tensor([1.0, 0, 1, 0, 1]), "fc/1": torch.tensor([0.0, 1, 1])}
    net.masks[2] = stored
    mask = net.get_mask("test", test_task_id=2)
    assert mask is stored  # the stored dict itself, as in CLArena
    assert mask["fc/0"].tolist() == [1.0, 0, 1, 0, 1]

    # Layers on another device: the stored masks follow them (the meta device needs no hardware).
    net.fc[1].to("meta")
    mask = net.get_mask("test", test_task_id=2)
    assert mask["fc/0"].device.type == "cpu"
    assert mask["fc/1"].device.type == "meta"
    assert net.masks[2]["fc/1"].device.type == "meta"


# CLArena's sentence (it names `batch_num` and `task_mask`, which are no arguments), then the call
# that specc's backbones take.
TRAIN = ("The `s_max`, `batch_idx` and `batch_num` should be provided at training stage, instead of the default "
         "value `None`. Pass s_max=..., batch_idx=... (1 for the first batch of the epoch) and num_batches=... "
         "(the batches in the epoch).")
VALIDATION = ("The `s_max` should be provided at validation stage, instead of the default value `None`. "
              "Pass s_max=... (the s_max of training).")
TEST = ("The `task_mask` should be provided at testing stage, instead of the default value `None`. "
        "Pass test_task_id=T: the task whose mask `store_mask()` stored when its training ended.")


@pytest.mark.parametrize(
    "stage, kwargs, message",
    [
        ("train", dict(batch_idx=1, num_batches=2), TRAIN),
        ("train", dict(s_max=1.0, num_batches=2), TRAIN),
        ("train", dict(s_max=1.0, batch_idx=1), TRAIN),
        ("validation", dict(batch_idx=1), VALIDATION),
        ("test", dict(s_max=1.0), TEST),
    ],
)
def test_get_mask_errors_say_what_to_pass(stage, kwargs, message):
    with pytest.raises(ValueError) as info:
        TinyMLP().get_mask(stage, **kwargs)
    assert str(info.value) == message


def test_te_to_binary_mask():
    net = TinyMLP()
    with torch.no_grad():
        net.task_embedding_t["fc/0"].weight.copy_(torch.tensor([[0.3, -0.1, 0.0, 2.0, -5.0]]))
    binary = net.te_to_binary_mask()
    assert binary["fc/0"].tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert binary["fc/1"].shape == (3,)
    assert not binary["fc/0"].requires_grad
    assert binary["fc/0"].dtype == torch.float32


def test_combine_masks():
    net = TinyMLP()
    masks = [
        {"a": torch.tensor([1.0, 0.0, 1.0, 0.0]), "b": torch.tensor([0.2])},
        {"a": torch.tensor([1.0, 1.0, 0.0, 0.0]), "b": torch.tensor([0.7])},
        {"a": torch.tensor([1.0, 1.0, 1.0, 0.0]), "b": torch.tensor([0.5])},
    ]
    inter = net.combine_masks(masks, "intersection")
    union = net.combine_masks(masks, "union")
    for name in ("a", "b"):
        n = masks[0][name].numel()
        assert inter[name].tolist() == [min(m[name][i].item() for m in masks) for i in range(n)]
        assert union[name].tolist() == [max(m[name][i].item() for m in masks) for i in range(n)]
    with pytest.raises(ValueError) as info:
        net.combine_masks(masks, "xor")
    assert str(info.value) == "Unsupported mode: xor. Use 'intersection' or 'union'."


def test_store_mask_reaches_nested_hat_modules():
    net = TinyConvNet()
    net.setup_task_id(3)
    returned = net.store_mask()
    assert returned.keys() == {"conv1", "block/conv2"}
    assert net.masks[3] is returned
    assert net.block.masks[3] is returned  # the nested HAT block sees the same masks
    for name, te in net.task_embedding_t.items():
        assert returned[name].tolist() == [float(v > 0) for v in te.weight.reshape(-1).tolist()]


# ------------------------------------------------- parameter-wise measures (double-loop reference)


def reference_parameter_measure(weight_shape, layer_m, preceding_m, mode, preceding_of_input=None):
    """Entry (i, j, ...) from unit i and preceding unit preceding_of_input(j), by explicit loops."""
    agg = {"min": min, "max": max, "mean": lambda a, b: (a + b) / 2}[mode]
    out = torch.empty(weight_shape, dtype=torch.float64)
    for i in range(weight_shape[0]):
        for j in range(weight_shape[1]):
            if preceding_m is None:
                value = layer_m[i].item()
            else:
                k = j if preceding_of_input is None else preceding_of_input(j)
                value = agg(layer_m[i].item(), preceding_m[k].item())
            out[i, j] = value  # broadcast over kernel positions
    return out


def random_measures(net, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {
        name: torch.rand(net.get_layer_by_name(name).weight.size(0), generator=gen)
        for name in net.weighted_layer_names
    }


@pytest.mark.parametrize("mode", ["min", "max", "mean"])
def test_parameter_wise_measure_linear(mode):
    net = TinyMLP()
    measure = random_measures(net)
    weight, bias = net.get_layer_measure_parameter_wise(measure, "fc/1", mode)
    assert weight.shape == net.fc[1].weight.shape
    expected = reference_parameter_measure((3, 5), measure["fc/1"], measure["fc/0"], mode)
    torch.testing.assert_close(weight.double(), expected)
    assert torch.equal(bias, measure["fc/1"])

    # First layer: no preceding layer, the layer's own measure broadcast over inputs.
    weight, bias = net.get_layer_measure_parameter_wise(measure, "fc/0", mode)
    expected = reference_parameter_measure((5, 4), measure["fc/0"], None, mode)
    torch.testing.assert_close(weight.double(), expected)
    assert torch.equal(bias, measure["fc/0"])


@pytest.mark.parametrize("mode", ["min", "max", "mean"])
def test_parameter_wise_measure_conv(mode):
    net = TinyConvNet()
    measure = random_measures(net, seed=1)
    weight, bias = net.get_layer_measure_parameter_wise(measure, "block/conv2", mode)
    assert weight.shape == (6, 4, 3, 3)
    expected = reference_parameter_measure((6, 4), measure["block/conv2"], measure["conv1"], mode)
    for kh in range(3):
        for kw in range(3):
            torch.testing.assert_close(weight[:, :, kh, kw].double(), expected)
    assert torch.equal(bias, measure["block/conv2"])

    weight, _ = net.get_layer_measure_parameter_wise(measure, "conv1", mode)
    expected = reference_parameter_measure((4, 3), measure["conv1"], None, mode)
    for kh in range(3):
        for kw in range(3):
            torch.testing.assert_close(weight[:, :, kh, kw].double(), expected)


def test_parameter_wise_measure_hook_maps_units_through_flatten():
    net = FlattenThenLinear()
    measure = random_measures(net, seed=2)
    for mode in ("min", "max", "mean"):
        weight, _ = net.get_layer_measure_parameter_wise(measure, "fc", mode)
        expected = reference_parameter_measure(
            (3, 8), measure["fc"], measure["conv"], mode, preceding_of_input=lambda j: j // 4
        )
        torch.testing.assert_close(weight.double(), expected)


def test_parameter_wise_measure_errors():
    net = TinyMLP()
    measure = random_measures(net)
    with pytest.raises(ValueError) as info:
        net.get_layer_measure_parameter_wise(measure, "fc/1", "median")
    assert str(info.value) == "The aggregation method median is not supported."
    with pytest.raises(ValueError, match=re.escape("doesn't exist in weighted layer names")):
        net.get_layer_measure_parameter_wise(measure, "fc/7", "min")


# --------------------------------------------------------------------------- AmnesiacHATBackbone


class PlainMLP(Backbone):
    def __init__(self, input_dim: int, output_dim: int) -> None:
        super().__init__(output_dim=output_dim)
        self.fc = nn.ModuleList([nn.Linear(input_dim, output_dim)])
        self.weighted_layer_names = ["fc/0"]


class TinyAmnesiac(AmnesiacHATBackbone):
    original_backbone_class = PlainMLP

    def __init__(self, disable_unlearning: bool = False) -> None:
        super().__init__(output_dim=2, gate="sigmoid", disable_unlearning=disable_unlearning)
        self.fc = nn.ModuleList([nn.Linear(3, 2)])
        self.weighted_layer_names = ["fc/0"]
        self.task_embedding_t["fc/0"] = nn.Embedding(1, 2)
        self.backup_backbone_kwargs = {"input_dim": 3, "output_dim": 2}


def test_amnesiac_backups(caplog):
    net = TinyAmnesiac()
    assert net.disable_unlearning is False
    assert net.backup_state_dicts == {}
    assert "original_backbone_class" in AmnesiacHATBackbone.__annotations__
    net.setup_task_id(4)
    with caplog.at_level(logging.DEBUG, logger="specc.runtime.bases"):
        net.instantiate_backup_backbones([1, 3])
    assert net.backup_task_ids == [1, 3]
    assert isinstance(net.backup_backbones, nn.ModuleDict)
    assert list(net.backup_backbones.keys()) == ["1", "3"]
    assert all(type(b) is PlainMLP for b in net.backup_backbones.values())
    assert net.backup_backbones["1"] is not net.backup_backbones["3"]
    assert "backup_backbones.3.fc.0.weight" in net.state_dict()
    assert any(
        "backing up task IDs [1, 3]" in r.getMessage() and "current task ID 4" in r.getMessage()
        for r in caplog.records
    )
    assert TinyAmnesiac(disable_unlearning=True).disable_unlearning is True


# --------------------------------------------------------------------------- WSNMaskBackbone


class TinyWSN(WSNMaskBackbone):
    """Three linear layers: with bias, without bias (absent key), without bias (None value)."""

    def __init__(self) -> None:
        super().__init__(output_dim=4)
        self.fc = nn.ModuleList(
            [nn.Linear(6, 10), nn.Linear(10, 8, bias=False), nn.Linear(8, 4, bias=False)]
        )
        self.weighted_layer_names = ["fc/0", "fc/1", "fc/2"]
        for name, layer in zip(self.weighted_layer_names, self.fc):
            self.weight_score_t[name] = nn.Embedding(layer.out_features, layer.in_features)
        self.bias_score_t["fc/0"] = nn.Embedding(1, 10)
        self.bias_score_t["fc/2"] = None


def all_scores(net):
    scores = {f"w:{k}": v.weight for k, v in net.weight_score_t.items()}
    scores.update({f"b:{k}": v.weight for k, v in net.bias_score_t.items() if v is not None})
    return scores


def test_wsn_construction():
    net = TinyWSN()
    assert net.gate_fn is PercentileLayerParameterMaskingByScore
    assert isinstance(net.weight_score_t, nn.ModuleDict)
    assert isinstance(net.bias_score_t, nn.ModuleDict)
    assert net.sanity_check() is None


@pytest.mark.parametrize("mode", ["default", "N01", "U01"])
def test_initialize_parameter_score_changes_every_layer(mode):
    net = TinyWSN()
    for p in all_scores(net).values():
        nn.init.constant_(p, 7.0)
    net.initialize_parameter_score(mode)
    for name, p in all_scores(net).items():
        assert not bool((p == 7.0).any()), name
    if mode == "default":
        for name, layer in zip(net.weighted_layer_names, net.fc):
            bound = 1 / math.sqrt(layer.in_features)  # kaiming_uniform(a=sqrt(5)) and bias rule
            assert bool((net.weight_score_t[name].weight.abs() <= bound).all())
        assert bool((net.bias_score_t["fc/0"].weight.abs() <= 1 / math.sqrt(6)).all())
    if mode == "U01":
        for p in all_scores(net).values():
            assert bool(((p >= 0) & (p <= 1)).all())


def test_initialize_parameter_score_draws_each_score_once():
    # One draw per score, layer by layer (weight, then bias): the same random stream as doing it by
    # hand. (CLArena re-draws every bias score once per layer; see the comment in the method.)
    net = TinyWSN()
    torch.manual_seed(123)
    net.initialize_parameter_score("N01")
    torch.manual_seed(123)
    expected = [
        torch.randn(10, 6), torch.randn(1, 10), torch.randn(8, 10), torch.randn(4, 8)
    ]
    got = [
        net.weight_score_t["fc/0"].weight, net.bias_score_t["fc/0"].weight,
        net.weight_score_t["fc/1"].weight, net.weight_score_t["fc/2"].weight,
    ]
    for g, e in zip(got, expected):
        assert torch.equal(g, e)


def test_initialize_parameter_score_unknown_mode_keeps_values():
    net = TinyWSN()
    before = {k: v.detach().clone() for k, v in all_scores(net).items()}
    net.initialize_parameter_score("bogus")
    for k, v in all_scores(net).items():
        assert torch.equal(v, before[k])


@pytest.mark.parametrize("stage", ["train", "validation"])
@pytest.mark.parametrize("percentage", [0.1, 0.5, 0.75, 1.0])
def test_wsn_get_mask_fraction(stage, percentage):
    net = TinyWSN()
    net.initialize_parameter_score("N01")  # continuous scores: no ties
    weight_mask, bias_mask = net.get_mask(stage, mask_percentage=percentage)
    assert list(weight_mask) == list(bias_mask) == net.weighted_layer_names
    for name, layer in zip(net.weighted_layer_names, net.fc):
        mask = weight_mask[name]
        assert mask.shape == layer.weight.shape
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        n = mask.numel()
        # With distinct scores the threshold sits at sorted position (1 - c) * (n - 1), so
        # n - ceil(that) or n - floor(that) scores are kept: c * n within one.
        assert abs(int(mask.sum()) - percentage * n) <= 1
        # The kept weights are exactly the top-scored ones.
        scores = net.weight_score_t[name].weight
        if 0 < int(mask.sum()) < n:
            assert scores[mask.bool()].min() > scores[~mask.bool()].max()
    assert bias_mask["fc/0"].shape == (10,)
    assert set(bias_mask["fc/0"].unique().tolist()) <= {0.0, 1.0}
    assert bias_mask["fc/1"] is None and bias_mask["fc/2"] is None


def test_wsn_get_mask_gradient_and_other_stages():
    net = TinyWSN()
    weight_mask, bias_mask = net.get_mask("train", mask_percentage=0.5)
    upstream = torch.randn(10, 6)
    (weight_mask["fc/0"] * upstream).sum().backward()
    assert torch.equal(net.weight_score_t["fc/0"].weight.grad, upstream)
    (bias_mask["fc/0"] * torch.arange(10.0)).sum().backward()
    assert torch.equal(net.bias_score_t["fc/0"].weight.grad, torch.arange(10.0).view(1, 10))

    given_masks = ({"fc/0": torch.ones(10, 6)}, {"fc/0": None})
    weight_mask, bias_mask = net.get_mask("test", mask_percentage=0.5, test_mask=given_masks)
    assert weight_mask is given_masks[0] and bias_mask is given_masks[1]
    assert net.get_mask("other", mask_percentage=0.5) == ({}, {})


# --------------------------------------------------------------------------- what a test stage needs


def test_hat_test_of_a_task_without_stored_mask_says_to_store_it():
    from specc.runtime.schemes.hat_backbone import MaskNotStored

    net = TinyMLP()
    net.setup_task_id(1)
    with pytest.raises(KeyError) as info:  # a KeyError, as CLArena's lookup raises
        net.get_mask("test", test_task_id=1)
    assert isinstance(info.value, MaskNotStored)
    assert str(info.value) == ("No mask is stored for task 1 (stored: none yet). Call `store_mask()` when the "
                               "training of task 1 ends, before testing it.")
    net.store_mask()
    assert net.get_mask("test", test_task_id=1) is net.masks[1]
    with pytest.raises(KeyError) as info:
        net.get_mask("test", test_task_id=3)
    assert str(info.value).startswith("No mask is stored for task 3 (stored: 1). ")


def test_wsn_test_without_test_mask_says_what_to_pass():
    net = TinyWSN()
    with pytest.raises(TypeError) as info:
        net.get_mask("test", mask_percentage=0.5)
    assert str(info.value) == ("stage 'test' needs test_mask=(weight_mask, bias_mask): the masks of the task "
                               "being tested, as `get_mask('train', mask_percentage=...)` gave them when its "
                               "training ended.")
    kept = net.get_mask("train", mask_percentage=0.5)
    assert net.get_mask("test", mask_percentage=0.5, test_mask=kept) == kept
