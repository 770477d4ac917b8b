"""Self-checks of the plain-PyTorch references in ``tests/reference/plain.py`` (not of the compiler)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

try:  # tests/ is on sys.path (pytest's default "prepend" mode, tests/ without __init__.py)
    from reference import plain
except ImportError:  # pragma: no cover - tests/ is a package, or --import-mode=importlib
    try:
        from tests.reference import plain
    except ImportError:
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from reference import plain


# ---------------------------------------------------------------------------------------------
# hand-derived parameter counts
# ---------------------------------------------------------------------------------------------
#
# ResNet18, input_channels=3, batch_normalization=True, bias=False, no fc head
# (a BatchNorm2d(c) has 2c parameters; identity_downsample is a bare 1x1 conv, no BN):
#   stem   conv1 3*64*7*7 = 9,408          + bn 128                              =     9,536
#   conv2x 2 x (64*64*9 + 128 + 64*64*9 + 128) = 2 x 73,984                     =   147,968
#   conv3x block0 64*128*9 + 256 + 128*128*9 + 256 + ds 64*128 = 229,888
#          block1 2*128*128*9 + 512 = 295,424                                    =   525,312
#   conv4x block0 128*256*9 + 512 + 256*256*9 + 512 + ds 128*256 = 918,528
#          block1 2*256*256*9 + 1,024 = 1,180,672                                = 2,099,200
#   conv5x block0 256*512*9 + 1,024 + 512*512*9 + 1,024 + ds 256*512 = 3,672,064
#          block1 2*512*512*9 + 2,048 = 4,720,640                                = 8,392,704
#   total                                                                        = 11,174,720
# Cross-check: torchvision resnet18 has 11,689,512 parameters; minus its fc (512*1000+1000)
# = 11,176,512; minus the BatchNorm on its three downsample convs (2*(128+256+512) = 1,792)
# = 11,174,720.  (The figure 11,168,832 quoted in the brief does not follow from the contract.)
#
# ResNet50 likewise: stem 9,536; conv2x 215,296; conv3x 1,218,560; conv4x 7,096,320;
# conv5x 14,960,640; total 23,500,352 = torchvision's conv part 23,508,032 minus the BatchNorm
# on its four downsample convs (2*(256+512+1024+2048) = 7,680).
RESNET18_PARAMS = 11_174_720
RESNET50_PARAMS = 23_500_352


def analytic_resnet_params(depth: int, input_channels: int, bn: bool, bias: bool) -> int:
    """Closed-form parameter count, independent of the module code."""
    _, counts = plain.RESNET_CONFIGS[depth]
    large = depth >= 50

    def conv(cin: int, cout: int, k: int, with_bias: bool) -> int:
        return cin * cout * k * k + (cout if with_bias else 0)

    def bnp(c: int) -> int:
        return 2 * c if bn else 0

    total = conv(input_channels, 64, 7, bias) + bnp(64)
    c = 64
    for width, stride, count in zip((64, 128, 256, 512), (1, 2, 2, 2), counts):
        for i in range(count):
            s = stride if i == 0 else 1
            if large:
                out = 4 * width
                total += conv(c, width, 1, bias) + bnp(width)
                total += conv(width, width, 3, bias) + bnp(width)
                total += conv(width, out, 1, bias) + bnp(out)
            else:
                out = width
                total += conv(c, width, 3, bias) + bnp(width)
                total += conv(width, width, 3, bias) + bnp(width)
            if c != out or s != 1:
                total += conv(c, out, 1, False)
            c = out
    return total


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


RESNETS = {
    18: (plain.ResNet18, plain.CLResNet18, 512),
    34: (plain.ResNet34, plain.CLResNet34, 512),
    50: (plain.ResNet50, plain.CLResNet50, 2048),
    101: (plain.ResNet101, plain.CLResNet101, 2048),
    152: (plain.ResNet152, plain.CLResNet152, 2048),
}
N_WEIGHTED = {18: 17, 34: 33, 50: 49, 101: 100, 152: 151}


@pytest.fixture(scope="module")
def resnets() -> dict[int, nn.Module]:
    """Structure-only instances on the meta device (no weight initialisation: fast)."""
    with torch.device("meta"):
        return {d: cls(input_channels=3, output_dim=dim) for d, (cls, _, dim) in RESNETS.items()}


def test_hand_derived_counts_match_analytic_formula() -> None:
    assert analytic_resnet_params(18, 3, True, False) == RESNET18_PARAMS
    assert analytic_resnet_params(50, 3, True, False) == RESNET50_PARAMS


def test_resnet_param_counts(resnets: dict[int, nn.Module]) -> None:
    assert n_params(resnets[18]) == RESNET18_PARAMS
    assert n_params(resnets[50]) == RESNET50_PARAMS
    for depth, net in resnets.items():
        assert n_params(net) == analytic_resnet_params(depth, 3, True, False), depth


@pytest.mark.parametrize("bn,bias", [(False, True), (False, False), (True, True)])
def test_resnet_param_counts_variants(bn: bool, bias: bool) -> None:
    with torch.device("meta"):
        net = plain.ResNet18(input_channels=1, output_dim=512, batch_normalization=bn, bias=bias)
    assert n_params(net) == analytic_resnet_params(18, 1, bn, bias)
    with torch.device("meta"):
        net = plain.ResNet50(input_channels=1, output_dim=2048, batch_normalization=bn, bias=bias)
    assert n_params(net) == analytic_resnet_params(50, 1, bn, bias)


def test_resnet_weighted_layers(resnets: dict[int, nn.Module]) -> None:
    for depth, net in resnets.items():
        names = net.weighted_layer_names
        assert len(names) == N_WEIGHTED[depth], depth
        assert len(set(names)) == len(names)
        # every weighted layer is a Conv2d reachable by its '/' name; they are exactly the
        # convs of the main path, in registration order (identity_downsample excluded)
        convs = [
            n.replace(".", "/")
            for n, m in net.named_modules()
            if isinstance(m, nn.Conv2d) and "identity_downsample" not in n
        ]
        assert names == convs, depth
        assert all(isinstance(net.get_layer_by_name(n), nn.Conv2d) for n in names)
        assert names[0] == "conv1"
        assert net.preceding_layer_name("conv1") is None
        assert net.next_layer_name(names[-1]) is None
        assert net.next_layer_name("conv1") == "conv2x/0/conv1"
    assert resnets[18].weighted_layer_names[:5] == [
        "conv1", "conv2x/0/conv1", "conv2x/0/conv2", "conv2x/1/conv1", "conv2x/1/conv2",
    ]
    assert resnets[18].weighted_layer_names[-1] == "conv5x/1/conv2"
    assert resnets[50].weighted_layer_names[1:4] == [
        "conv2x/0/conv1", "conv2x/0/conv2", "conv2x/0/conv3",
    ]
    assert resnets[152].weighted_layer_names[-1] == "conv5x/2/conv3"


def test_resnet_state_dict_key_order() -> None:
    with torch.device("meta"):
        _resnet_state_dict_key_order()


def _resnet_state_dict_key_order() -> None:
    keys = list(plain.ResNet18(3, 512).state_dict().keys())
    assert keys[:8] == [
        "conv1.weight",
        "conv_bn1.weight", "conv_bn1.bias", "conv_bn1.running_mean", "conv_bn1.running_var",
        "conv_bn1.num_batches_tracked",
        "conv2x.0.conv1.weight",
        "conv2x.0.conv_bn1.weight",
    ]
    block = [k[len("conv3x.0."):] for k in keys if k.startswith("conv3x.0.")]
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert block == (
        ["conv1.weight"] + [f"conv_bn1.{s}" for s in bn]
        + ["conv2.weight"] + [f"conv_bn2.{s}" for s in bn]
        + ["identity_downsample.weight"]
    )
    top = list(dict.fromkeys(n.split(".")[0] for n, _ in plain.ResNet18(3, 512).named_children()))
    assert top == [
        "conv1", "conv_bn1", "conv_activation1", "maxpool",
        "conv2x", "conv3x", "conv4x", "conv5x", "avepool",
    ]
    large = [n for n, _ in plain.ResNet50(3, 2048).conv2x[0].named_children()]
    assert large == [
        "conv1", "conv_bn1", "conv_activation1", "conv2", "conv_bn2", "conv_activation2",
        "conv3", "conv_bn3", "conv_activation3", "identity_downsample",
    ]
    # bias=True adds conv biases right after each weight
    keys_b = list(plain.ResNet18(3, 512, batch_normalization=False, bias=True).state_dict().keys())
    assert keys_b[:4] == ["conv1.weight", "conv1.bias", "conv2x.0.conv1.weight", "conv2x.0.conv1.bias"]


def test_resnet_downsample_placement(resnets: dict[int, nn.Module]) -> None:
    def has_ds(net: nn.Module) -> list[str]:
        return [
            f"{s}/{i}"
            for s in ("conv2x", "conv3x", "conv4x", "conv5x")
            for i, blk in enumerate(getattr(net, s))
            if blk.identity_downsample is not None
        ]

    assert has_ds(resnets[18]) == ["conv3x/0", "conv4x/0", "conv5x/0"]
    assert has_ds(resnets[34]) == ["conv3x/0", "conv4x/0", "conv5x/0"]
    for d in (50, 101, 152):
        assert has_ds(resnets[d]) == ["conv2x/0", "conv3x/0", "conv4x/0", "conv5x/0"]
    blk = resnets[18].conv3x[0]
    assert blk.conv1.stride == (1, 1) and blk.conv2.stride == (2, 2)
    assert blk.identity_downsample.stride == (2, 2) and blk.identity_downsample.bias is None
    blk = resnets[50].conv4x[0]
    assert blk.conv1.stride == (1, 1) and blk.conv2.stride == (2, 2) and blk.conv3.stride == (1, 1)
    assert resnets[50].conv4x[1].conv2.stride == (1, 1)


def test_resnet_forward_shapes() -> None:
    # real forwards at 1x3x32x32 (eval mode: batch 1 reaches 1x1 maps, which BatchNorm can't
    # train on). 34 and 101 differ from 18 / 50 / 152 only in block counts, which the
    # structure tests cover; their forwards are left out to keep this file fast.
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32)
    out = {}
    with torch.no_grad():
        for depth in (18, 50, 152):
            cls, _, dim = RESNETS[depth]
            net = cls(3, dim).eval()
            feature, acts = out[depth] = net(x, stage="test")
            assert feature.shape == (1, dim), depth
            assert torch.isfinite(feature).all(), depth
            assert list(acts.keys()) == net.weighted_layer_names, depth
            assert net.output_dim == dim
            del net
    # activation shapes along the way
    f18, acts = out[18]
    assert acts["conv1"].shape == (1, 64, 16, 16)
    assert acts["conv2x/1/conv2"].shape == (1, 64, 8, 8)
    assert acts["conv3x/0/conv1"].shape == (1, 128, 8, 8)  # stride sits on conv2
    assert acts["conv3x/0/conv2"].shape == (1, 128, 4, 4)
    assert acts["conv5x/1/conv2"].shape == (1, 512, 1, 1)
    assert torch.allclose(f18, acts["conv5x/1/conv2"].flatten(1))  # 1x1 map: pooling = flatten
    f50, acts = out[50]
    assert acts["conv2x/0/conv3"].shape == (1, 256, 8, 8)
    assert acts["conv3x/0/conv1"].shape == (1, 128, 8, 8)
    assert acts["conv3x/0/conv2"].shape == (1, 128, 4, 4)
    assert acts["conv5x/2/conv3"].shape == (1, 2048, 1, 1)
    assert torch.allclose(f50, acts["conv5x/2/conv3"].flatten(1))


def test_resnet_train_mode_and_cl_parity() -> None:
    torch.manual_seed(1)
    a = plain.ResNet18(3, 512)
    b = plain.CLResNet18(3, 512)
    plain.copy_weights(a, b)
    b.setup_task_id(1)
    x = torch.randn(2, 3, 32, 32)
    fa, aa = a(x, stage="train")
    fb, ab = b(x, stage="train", task_id=1)
    assert torch.equal(fa, fb)
    assert aa.keys() == ab.keys() and all(torch.equal(aa[k], ab[k]) for k in aa)
    assert b.processed_task_ids == [1]
    # the block forward equals a manual recomputation of the contract's formula
    blk = a.conv3x[0].eval()
    inp = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        out, acts = blk(inp)
        h = torch.relu(blk.conv_bn1(blk.conv1(inp)))
        ref = torch.relu(blk.conv_bn2(blk.conv2(h)) + blk.identity_downsample(inp))
    assert torch.allclose(out, ref) and torch.allclose(acts["conv3x/0/conv1"], h)


def test_resnet_without_activation_or_bn() -> None:
    net = plain.ResNet18(3, 512, activation_layer=None, batch_normalization=False)
    kinds = {type(m) for m in net.modules()}
    assert nn.ReLU not in kinds and nn.BatchNorm2d not in kinds
    assert not any("activation" in n or "bn" in n for n, _ in net.named_modules())
    feature, acts = net(torch.randn(1, 3, 32, 32))
    assert feature.shape == (1, 512) and len(acts) == 17


def test_resnet_custom_activation_instances() -> None:
    with torch.device("meta"):
        net = plain.ResNet50(3, 2048, activation_layer=nn.Tanh)
    tanhs = [n for n, m in net.named_modules() if isinstance(m, nn.Tanh)]
    assert len(tanhs) == 49 and len({id(m) for m in net.modules() if isinstance(m, nn.Tanh)}) == 49


# ---------------------------------------------------------------------------------------------
# MLP
# ---------------------------------------------------------------------------------------------


def test_mlp_structure_and_activations() -> None:
    torch.manual_seed(0)
    m = plain.MLP(784, [256, 100], 64)
    assert m.weighted_layer_names == ["fc/0", "fc/1", "fc/2"]
    assert m.num_fc_layers == 3 and m.output_dim == 64 and m.input_dim == 784
    assert m.hidden_dims == [256, 100]
    assert n_params(m) == 784 * 256 + 256 + 256 * 100 + 100 + 100 * 64 + 64  # 233,124
    assert [n for n, _ in m.named_children()] == ["fc", "fc_activation"]
    x = torch.randn(5, 1, 28, 28)
    feature, acts = m(x, stage="train")
    assert feature.shape == (5, 64)
    assert list(acts.keys()) == ["fc/0", "fc/1", "fc/2"]
    assert acts["fc/0"].shape == (5, 256) and acts["fc/1"].shape == (5, 100)
    assert torch.equal(acts["fc/2"], feature)
    assert (feature >= 0).all()  # activation applied on the last layer too
    ref = torch.relu(m.fc[2](torch.relu(m.fc[1](torch.relu(m.fc[0](x.view(5, -1)))))))
    assert torch.allclose(feature, ref)


def test_mlp_full_options_order() -> None:
    m = plain.MLP(10, [8], 4, batch_normalization=True, bias=False, dropout=0.5)
    assert [n for n, _ in m.named_children()] == ["fc", "fc_bn", "fc_activation", "fc_dropout"]
    assert list(m.state_dict().keys()) == [
        "fc.0.weight", "fc.1.weight",
        "fc_bn.0.weight", "fc_bn.0.bias", "fc_bn.0.running_mean", "fc_bn.0.running_var",
        "fc_bn.0.num_batches_tracked",
        "fc_bn.1.weight", "fc_bn.1.bias", "fc_bn.1.running_mean", "fc_bn.1.running_var",
        "fc_bn.1.num_batches_tracked",
    ]
    assert [bn.num_features for bn in m.fc_bn] == [8, 4]
    assert all(d.p == 0.5 for d in m.fc_dropout)
    m.train()
    feature, acts = m(torch.randn(6, 10))
    # the activation is recorded before dropout
    assert (acts["fc/1"] >= 0).all()
    assert torch.equal((feature != 0), (feature != 0) & (acts["fc/1"] != 0))


def test_mlp_without_activation() -> None:
    m = plain.MLP(10, [8, 8], 3, activation_layer=None)
    assert not hasattr(m, "fc_activation")
    assert not any(isinstance(x, nn.ReLU) for x in m.modules())
    assert [n for n, _ in m.named_children()] == ["fc"]
    x = torch.randn(4, 10)
    feature, acts = m(x)
    assert torch.allclose(feature, m.fc[2](m.fc[1](m.fc[0](x))))
    assert list(acts.keys()) == ["fc/0", "fc/1", "fc/2"]


def test_clmlp_and_copy_weights() -> None:
    torch.manual_seed(0)
    a = plain.MLP(12, [7, 5], 3, batch_normalization=True)
    b = plain.CLMLP(12, [7, 5], 3, batch_normalization=True)
    plain.copy_weights(a, b)
    x = torch.randn(4, 12)
    fa, _ = a(x, stage="train")
    fb, _ = b(x, stage="train", task_id=3)
    assert torch.equal(fa, fb)
    with pytest.raises(AssertionError, match="keys differ"):
        plain.copy_weights(a, plain.MLP(12, [7, 5], 3))
    with pytest.raises(AssertionError, match="shapes differ"):
        plain.copy_weights(plain.MLP(12, [7], 3), plain.MLP(12, [6], 3))
