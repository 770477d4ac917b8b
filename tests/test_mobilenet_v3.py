"""MobileNetV3-Small (specs/peers/mobilenet_v3_small.cl) bit for bit against an independent
plain-PyTorch reference in torchvision's layout (tests/reference/peers/mobilenet_v3_small.py).

The spec cannot give a module numeric child names, so torchvision's Conv2dNormActivation children
`0` (conv) and `1` (batch norm) are `conv` and `bn` in the spec: the state dicts are compared through
`torchvision_key`, a rename of those two segments and nothing else (tested on its own). With the
reference's weights loaded, the feature, the input's and every parameter's gradient, the running
statistics and the recorded activations are torch.equal in train mode (dropout under the same seed)
and in eval mode: for torchvision's table and for a small table whose rows reach every branch of
the block (no expansion, no squeeze-excitation, ReLU/Hardswish, residual or not) and of
_make_divisible (its 8-minimum and its +8 step). A torchvision state dict loads through the spec's
`pretrained` declaration. The `_wsn` variant equals the reference with its masks folded into weights
and biases; the `_hat` variant equals the reference with HAT's masks hooked in where the analysis
puts them, and a masked unit reaches its consumers as exactly 0 (hooks, not specc's analysis)."""
from __future__ import annotations

import pytest
import torch
from peer_checks import (
    assert_bit_equal,
    assert_hat_equal,
    assert_hat_runs,
    assert_masked_unit_is_zero,
    assert_pretrained_loads,
    assert_wsn_equal,
    randomized,
)
from torch import nn

from conftest import SPECS
from reference.peers import mobilenet_v3_small as ref_mod

import specc

SPEC = SPECS / "peers" / "mobilenet_v3_small.cl"

# the spec's names of a Conv2dNormActivation's children, as torchvision numbers them
SPEC_TO_TORCHVISION = {"conv": "0", "bn": "1"}

# (input, kernel, expanded, out, use_se, use_hs, stride): every block shape, small (the stem is the
# first row's input). Squeeze channels make_divisible(e // 4, 8): 12 -> 3 -> 8 (the minimum), 44 -> 11
# and 40 -> 10 round down to 8, below 0.9 of them: 16 (the +8 step), 16 -> 4 -> 8
SMALL_TABLE = ref_mod.TINY  # (8, 3, 8, 8, -, RE, 1) (8, 3, 12, 8, SE, RE, 1) (8, 5, 44, 16, SE, HS, 2) ...


def torchvision_key(key: str) -> str:
    return ".".join(SPEC_TO_TORCHVISION.get(s, s) for s in key.split("."))


def spec_args(table, last_channel: int | None = 1024) -> dict:
    return dict(stem_width=table[0][0], kernels=[r[1] for r in table], expanded=[r[2] for r in table],
                widths=[r[3] for r in table], se=[int(r[4]) for r in table], hardswish=[int(r[5]) for r in table],
                strides=[r[6] for r in table], last_channel=last_channel)


def test_torchvision_key_renames_conv_and_bn_segments_only():
    assert torchvision_key("features.0.conv.weight") == "features.0.0.weight"
    assert torchvision_key("features.3.block.2.bn.running_var") == "features.3.block.2.1.running_var"
    assert torchvision_key("features.4.block.2.fc1.bias") == "features.4.block.2.fc1.bias"
    assert torchvision_key("classifier.0.weight") == "classifier.0.weight"
    assert torchvision_key("features.1.convx.weight") == "features.1.convx.weight"


def test_reference_has_torchvisions_parameter_count():
    # torchvision's documented size of mobilenet_v3_small (1000 classes): 2,542,856 parameters
    assert sum(p.numel() for p in ref_mod.make(num_classes=1000, setting=ref_mod.SMALL, last_channel=1024).parameters()) == 2_542_856
    assert [ref_mod.make_divisible(v) for v in (3, 11, 10, 24, 60, 30, 36)] == [8, 16, 16, 24, 64, 32, 40]


def _pair(table):
    torch.manual_seed(0)
    ref = randomized(ref_mod.MobileNetV3Small(num_classes=None, setting=table))
    ours = specc.build(SPEC, **spec_args(table))
    ours_keys = list(ours.state_dict())
    renamed = [torchvision_key(k) for k in ours_keys]
    assert renamed == list(ref.state_dict())  # same keys, same order, through the rename
    assert len(set(renamed)) == len(renamed)
    ours.load_state_dict({k: ref.state_dict()[t] for k, t in zip(ours_keys, renamed)})
    return ours, ref


def _recorded_from_reference(ref) -> dict[str, nn.Module]:
    """Module of the reference whose output is the spec's recorded activation of each layer."""
    out = {"features/0/conv": ref.features[0]}
    for n, block in enumerate(ref.features[1:-1], start=1):
        for m, part in enumerate(block.block):
            if isinstance(part, nn.Sequential):
                out[f"features/{n}/block/{m}/conv"] = part
    out[f"features/{len(ref.features) - 1}/conv"] = ref.features[-1]
    out["classifier/0"] = ref.classifier[2]
    return out


@pytest.mark.parametrize("case", ["torchvision", "small_table"])
def test_mobilenet_v3_small_equals_reference(case):
    table, size = (ref_mod.SMALL, 64) if case == "torchvision" else (SMALL_TABLE, 32)
    ours, ref = _pair(table)
    x0 = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    assert_bit_equal(ours, ref, x0, _recorded_from_reference(ref), torchvision_key, ("train", "eval", "train"))


def test_squeeze_channels_follow_make_divisible():
    ours = specc.build(SPEC, **spec_args(SMALL_TABLE))
    got = [m.out_channels for name, m in ours.named_modules() if name.endswith(".fc1")]
    assert got == [ref_mod.make_divisible(r[2] // 4) for r in SMALL_TABLE if r[4]] == [8, 16, 16, 8]  # 12, 44, 40, 16


def test_without_classifier_the_feature_is_the_pooled_last_conv():
    torch.manual_seed(0)
    ref = randomized(ref_mod.make(setting=ref_mod.SMALL, last_channel=1024))
    ours = specc.build(SPEC, last_channel=None)
    keys = [torchvision_key(k) for k in ours.state_dict()]
    assert keys == [k for k in ref.state_dict() if not k.startswith("classifier.")]
    ours.load_state_dict({k: ref.state_dict()[torchvision_key(k)] for k in ours.state_dict()})
    ours.eval(), ref.eval()
    x = torch.randn(2, 3, 32, 32)
    feature, _ = ours(x)
    assert feature.shape == (2, 576)
    assert torch.equal(feature, torch.flatten(ref.avgpool(ref.features(x)), 1))


# ---------------------------------------------------------------------------------------------
# WSN: the masks folded into the reference's weights and biases
# ---------------------------------------------------------------------------------------------


def test_wsn_equals_the_reference_with_masks_folded():
    torch.manual_seed(0)
    ref = randomized(ref_mod.MobileNetV3Small(num_classes=None, setting=SMALL_TABLE))
    ours = specc.build(SPECS / "peers" / "mobilenet_v3_small_wsn.cl", **spec_args(SMALL_TABLE))
    assert_wsn_equal(ours, ref, torchvision_key, torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1)))


# ---------------------------------------------------------------------------------------------
# HAT: it compiles, runs its stages, and a masked unit reaches its consumers as exactly 0
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hat_net():
    torch.manual_seed(0)
    return specc.build(SPECS / "peers" / "mobilenet_v3_small_hat.cl", **spec_args(SMALL_TABLE))


def test_hat_runs_its_stages(hat_net):
    plain = specc.build(SPEC, **spec_args(SMALL_TABLE))
    assert_hat_runs(hat_net, plain, torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("layer, consumers", [
    ("features/0/conv", ["features.1.block.0.conv"]),                          # the stem
    ("features/3/block/0/conv", ["features.3.block.1.conv"]),                  # expansion -> depthwise
    ("features/3/block/1/conv", ["features.3.block.2.fc1", "features.3.block.3.conv"]),  # into the gate, and the product
    ("features/3/block/2/fc1", ["features.3.block.2.fc2"]),                    # the gate's hidden unit
    ("features/3/block/2/fc2", ["features.3.block.3.conv"]),                   # a gate of 0 zeroes its channel
    ("features/3/block/3/conv", ["features.4.block.0.conv"]),                  # projection -> a residual block
    ("features/4/block/3/conv", ["features.5.block.0.conv"]),                  # after the residual add
    ("features/6/block/1/conv", ["features.7.conv"]),                          # the last block -> the last conv
    ("features/7/conv", ["classifier.0"]),                                     # through the average pool
])
def test_hat_masked_unit_reaches_its_consumers_as_zero(hat_net, layer, consumers):
    assert_masked_unit_is_zero(hat_net, layer, consumers, torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2)))


# ---------------------------------------------------------------------------------------------
# found while writing the spec (the spec declares its shortcut before the guarded add for this)
# ---------------------------------------------------------------------------------------------

GUARDED_ADD_BRANCH_AFTER = """
block res(width: int, stride: int = 1) {
    conv: conv2d(width, kernel=3, stride=stride, padding=1) -> (add(shortcut) if stride == 1) -> act: ReLU() -> record
    branch shortcut = identity
}
network Bug(output_dim: int = 4) {
    input image(4, 8, 8)
    a: res(4)
    b: res(4, stride=2)
}
"""


def test_guarded_add_of_a_branch_declared_after_it(tmp_path):
    path = tmp_path / "bug.cl"
    path.write_text(GUARDED_ADD_BRANCH_AFTER)
    net = specc.build(path)
    x = torch.randn(2, 4, 8, 8)
    assert net(x)[0].shape == (2, 4, 4, 4)


def test_a_torchvision_state_dict_loads_through_the_pretrained_declaration(tmp_path):
    torch.manual_seed(0)
    ref = randomized(ref_mod.make(num_classes=10, setting=ref_mod.SMALL, last_channel=1024))
    assert_pretrained_loads(lambda **kw: specc.build(SPEC, **kw), ref, torchvision_key, tmp_path / "mnv3.pt")


def hat_points(ref) -> dict[str, nn.Module]:
    """Where specc's analysis puts each layer's HAT mask, as modules of the reference whose output
    it multiplies: a Conv2dNormActivation's batch norm (before its activation); an SE's fc1 (before
    its ReLU) and its Hardsigmoid; a projection's batch norm, or the whole block (after the residual
    add) where the block has one; the classifier's linear (before its Hardswish)."""
    out = {"features/0/conv": ref.features[0][1]}
    for n, ir in enumerate(ref.features[1:-1], start=1):
        for m, part in enumerate(ir.block):
            if isinstance(part, ref_mod.SqueezeExcitation):
                out[f"features/{n}/block/{m}/fc1"] = part.fc1
                out[f"features/{n}/block/{m}/fc2"] = part.scale_activation
            elif len(part) == 3 or not ir.use_res_connect:
                out[f"features/{n}/block/{m}/conv"] = part[1]
            else:
                out[f"features/{n}/block/{m}/conv"] = ir
    out[f"features/{len(ref.features) - 1}/conv"] = ref.features[-1][1]
    out["classifier/0"] = ref.classifier[0]
    return out


def test_hat_equals_the_reference_with_masks_at_the_analysis_points():
    torch.manual_seed(0)
    ref = randomized(ref_mod.make())
    ours = specc.build(SPECS / "peers" / "mobilenet_v3_small_hat.cl", **spec_args(SMALL_TABLE, last_channel=32))
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert_hat_equal(ours, ref, torchvision_key, hat_points(ref), x)
