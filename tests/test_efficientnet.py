"""EfficientNet-B0 (specs/peers/efficientnet_b0.cl) bit for bit against an independent plain-PyTorch
reference in torchvision's layout (tests/reference/peers/efficientnet_b0.py).

The spec cannot number a block's children nor put a sequence in a module list, so torchvision's
`features.2.0.block.1.0.weight` is `features.2.layers.0.block.1.conv.weight` here: the state dicts are
compared through `torchvision_key` (drop the `layers` segment, `conv`/`bn` -> `0`/`1`). specc has no
stochastic depth, so train mode is compared with the reference's stochastic_depth_prob = 0 (eval
mode, where stochastic depth is the identity, at torchvision's 0.2). The `_wsn` variant equals the
reference with its masks folded in; the `_hat` variant runs its stages and a masked unit reaches its
consumers as exactly 0."""
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
from reference.peers import efficientnet_b0 as ref_mod

import specc

SPEC = SPECS / "peers" / "efficientnet_b0.cl"

# (expand_ratio, kernel, stride, input, out, num_layers): a stage without expansion and with
# residuals, an expanding strided stage whose second block is residual, one that widens at stride 1
SMALL_TABLE = ref_mod.TINY  # [(1, 3, 1, 8, 8, 2), (6, 5, 2, 8, 16, 2), (3, 3, 1, 16, 24, 1)]


def torchvision_key(key: str) -> str:
    parts = key.split(".")
    if len(parts) > 2 and parts[0] == "features" and parts[2] == "layers":
        del parts[2]
    return ".".join({"conv": "0", "bn": "1"}.get(s, s) for s in parts)


def spec_args(table) -> dict:
    return dict(stem_width=table[0][3], expand_ratios=[r[0] for r in table], kernels=[r[1] for r in table],
                strides=[r[2] for r in table], widths=[r[4] for r in table], depths=[r[5] for r in table])


def test_torchvision_key():
    assert torchvision_key("features.0.conv.weight") == "features.0.0.weight"
    assert torchvision_key("features.2.layers.1.block.3.bn.running_mean") == "features.2.1.block.3.1.running_mean"
    assert torchvision_key("features.2.layers.1.block.2.fc1.bias") == "features.2.1.block.2.fc1.bias"
    assert torchvision_key("features.8.bn.weight") == "features.8.1.weight"


def test_reference_has_torchvisions_parameter_count():
    # torchvision's documented size of efficientnet_b0 (1000 classes): 5,288,548 parameters
    assert sum(p.numel() for p in ref_mod.make(num_classes=1000, setting=ref_mod.B0).parameters()) == 5_288_548


def _recorded_from_reference(ref) -> dict[str, nn.Module]:
    out = {"features/0/conv": ref.features[0]}
    for s, stage in enumerate(ref.features[1:-1], start=1):
        for j, mb in enumerate(stage):
            for m, part in enumerate(mb.block):
                if isinstance(part, nn.Sequential):
                    out[f"features/{s}/layers/{j}/block/{m}/conv"] = part
    out[f"features/{len(ref.features) - 1}/conv"] = ref.features[-1]
    return out


@pytest.mark.parametrize("case", ["b0", "small_table"])
def test_efficientnet_b0_equals_reference(case):
    table, size = (ref_mod.B0, 32) if case == "b0" else (SMALL_TABLE, 16)
    torch.manual_seed(0)
    ref = randomized(ref_mod.EfficientNetB0(num_classes=None, setting=table))  # stochastic depth 0.2
    ours = specc.build(SPEC, **spec_args(table))
    keys = list(ours.state_dict())
    assert [torchvision_key(k) for k in keys] == list(ref.state_dict())
    ours.load_state_dict({k: ref.state_dict()[torchvision_key(k)] for k in keys})
    x0 = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    sources = _recorded_from_reference(ref)
    assert_bit_equal(ours, ref, x0, sources, torchvision_key, ("eval",))
    for m in ref.modules():
        if isinstance(m, ref_mod.StochasticDepth):
            m.p = 0.0  # what specc cannot write: train mode is compared without stochastic depth
    assert_bit_equal(ours, ref, x0, sources, torchvision_key, ("train", "eval", "train"))


def test_wsn_equals_the_reference_with_masks_folded():
    torch.manual_seed(0)
    ref = randomized(ref_mod.EfficientNetB0(num_classes=None, setting=SMALL_TABLE, stochastic_depth_prob=0.0))
    ours = specc.build(SPECS / "peers" / "efficientnet_b0_wsn.cl", **spec_args(SMALL_TABLE))
    assert_wsn_equal(ours, ref, torchvision_key, torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1)))


@pytest.fixture(scope="module")
def hat_net():
    torch.manual_seed(0)
    return specc.build(SPECS / "peers" / "efficientnet_b0_hat.cl", **spec_args(SMALL_TABLE))


def test_hat_runs_its_stages(hat_net):
    plain = specc.build(SPEC, **spec_args(SMALL_TABLE))
    assert_hat_runs(hat_net, plain, torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)))


# SMALL_TABLE's features[1]: two residual blocks without expansion; features[2]: an expanding strided
# block, then a residual one; features[3]: a widening block; features[4]: the last conv
@pytest.mark.parametrize("layer, consumers", [
    ("features/0/conv", ["features.1.layers.0.block.0.conv"]),
    ("features/1/layers/0/block/0/conv", ["features.1.layers.0.block.1.fc1", "features.1.layers.0.block.2.conv"]),
    ("features/1/layers/0/block/1/fc1", ["features.1.layers.0.block.1.fc2"]),
    ("features/1/layers/0/block/1/fc2", ["features.1.layers.0.block.2.conv"]),
    ("features/1/layers/1/block/2/conv", ["features.2.layers.0.block.0.conv"]),  # after a residual add
    ("features/2/layers/0/block/3/conv", ["features.2.layers.1.block.0.conv"]),  # into a residual block
    ("features/3/layers/0/block/3/conv", ["features.4.conv"]),
])
def test_hat_masked_unit_reaches_its_consumers_as_zero(hat_net, layer, consumers):
    unit = 1 if layer.endswith("fc1") else 3  # an SE's fc1 has max(1, 8 // 4) = 2 units here
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    assert_masked_unit_is_zero(hat_net, layer, consumers, x, unit=unit)


def test_a_torchvision_state_dict_loads_through_the_pretrained_declaration(tmp_path):
    torch.manual_seed(0)
    ref = randomized(ref_mod.make(num_classes=10, setting=ref_mod.B0))
    assert_pretrained_loads(lambda **kw: specc.build(SPEC, **kw), ref, torchvision_key, tmp_path / "b0.pt")


def hat_points(ref) -> dict[str, nn.Module]:
    """Where specc's analysis puts each layer's HAT mask (as for MobileNetV3-Small): a
    Conv2dNormActivation's batch norm (before its SiLU); an SE's fc1 and its Sigmoid; a projection's
    batch norm, or the whole block (after the residual add) where the block has one."""
    out = {"features/0/conv": ref.features[0][1]}
    for s, stage in enumerate(ref.features[1:-1], start=1):
        for j, mb in enumerate(stage):
            for m, part in enumerate(mb.block):
                name = f"features/{s}/layers/{j}/block/{m}"
                if isinstance(part, ref_mod.SqueezeExcitation):
                    out[f"{name}/fc1"], out[f"{name}/fc2"] = part.fc1, part.scale_activation
                else:
                    out[f"{name}/conv"] = part[1] if len(part) == 3 or not mb.use_res_connect else mb
    out[f"features/{len(ref.features) - 1}/conv"] = ref.features[-1][1]
    return out


def test_hat_equals_the_reference_with_masks_at_the_analysis_points():
    torch.manual_seed(0)
    ref = randomized(ref_mod.make(stochastic_depth_prob=0.0))
    ours = specc.build(SPECS / "peers" / "efficientnet_b0_hat.cl", **spec_args(SMALL_TABLE))
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    assert_hat_equal(ours, ref, torchvision_key, hat_points(ref), x)
