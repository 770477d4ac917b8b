"""Self-checks of the peer references in ``tests/reference/peers/`` (not of the compiler).

Each check states a fact that is known independently of the reference code: output shapes worked out
from the layer arithmetic, parameter counts computed here from the layer formulas (and, where one is
well known, the public model's published figure), state_dict keys as the public code names them, the
behaviour of the batch-norm flavours in train / eval mode, and structural facts (zero padding of
option-A shortcuts, a shared activation module called twice, concatenation order).
"""

from __future__ import annotations

import ast
import inspect
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

try:  # tests/ is on sys.path (pytest's default "prepend" mode, tests/ without __init__.py)
    from reference import peers
except ImportError:  # pragma: no cover - tests/ is a package, or --import-mode=importlib
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from reference import peers

from reference.peers import (  # noqa: E402
    avalanche_simple_cnn,
    avalanche_slim_resnet18,
    densenet_bc,
    hat_alexnet,
    hat_mlp,
    inception_net,
    mammoth_resnet18,
    mammoth_resnet32,
    mobilenet_v1,
    pycil_resnet32,
    torchvision_resnet18,
    wsn_alexnet,
    wsn_resnet18,
)

# ---------------------------------------------------------------------------------------------
# layer formulas (parameter counts) and helpers
# ---------------------------------------------------------------------------------------------


def conv(cin: int, cout: int, k: int, bias: bool = False, groups: int = 1) -> int:
    return cout * (cin // groups) * k * k + (cout if bias else 0)


def bn(c: int) -> int:  # affine batch norm: weight + bias
    return 2 * c


def lin(i: int, o: int, bias: bool = True) -> int:
    return i * o + (o if bias else 0)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


BN_KEYS = 5  # weight, bias, running_mean, running_var, num_batches_tracked


def img(batch: int = 4, channels: int = 3, size: int = 32, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, size, size, generator=g)


def keys(m: nn.Module) -> list[str]:
    return list(m.state_dict().keys())


def call_counter(module: nn.Module) -> list[int]:
    count = [0]

    def hook(_m, _i, _o):
        count[0] += 1

    module.register_forward_hook(hook)
    return count


def capture(module: nn.Module) -> dict:
    """Record a copy of the module's first input and its output at each call (the last call wins)."""
    box: dict = {}

    def hook(_m, inputs, output):
        first = inputs[0]
        box["input"] = [t.detach().clone() for t in first] if isinstance(first, list) else first.detach().clone()
        box["output"] = output.detach().clone()

    module.register_forward_hook(hook)
    return box


def input_shapes(module: nn.Module) -> list[tuple[int, ...]]:
    """The shape of the first input at every call, in call order."""
    seen: list[tuple[int, ...]] = []
    module.register_forward_hook(lambda _m, inputs, _o: seen.append(tuple(inputs[0].shape)))
    return seen


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---------------------------------------------------------------------------------------------
# every module: provenance, spec notes, independence, default sizes fast
# ---------------------------------------------------------------------------------------------

ALL = peers.all_modules()
PEERS_DIR = Path(peers.__file__).resolve().parent

# input per module for the default make(); and the expected forward_features shape
DEFAULT_INPUTS = {
    "hat_mlp": (4, 1, 8, 8),
}
DEFAULT_FEATURES = {
    "mammoth_resnet18": (4, 64),  # 8 * nf, nf = 8
    "pycil_resnet32": (4, 64),
    "mammoth_resnet32": (4, 64),
    "avalanche_slim_resnet18": (4, 64),
    "avalanche_simple_cnn": (4, 64),
    "torchvision_resnet18": (4, 128),  # 8 * width, width = 16
    "hat_mlp": (4, 32),
    "hat_alexnet": (4, 64),
    "wsn_alexnet": (4, 64),
    "wsn_resnet18": (4, 256),  # 8 * nf * 2 * 2
    "densenet_bc": (4, 16),
    "inception_net": (4, 64),  # 512 / 8
    "mobilenet_v1": (4, 128),
    "se_resnet18": (4, 64),  # 8 * width, width = 8
    "mobilenet_v3_small": (4, 32),  # last_channel 32 (classifier.0)
    "efficientnet_b0": (4, 96),  # 4 * 24 (the last conv), pooled
}
# state_dict key counts of the default make(), derived by hand (see the per-model tests)
DEFAULT_KEY_COUNTS = {
    "mammoth_resnet18": 122,
    "pycil_resnet32": 80,
    "mammoth_resnet32": 85,
    "avalanche_slim_resnet18": 122,
    "avalanche_simple_cnn": 12,
    "torchvision_resnet18": 120,
    "hat_mlp": 8,
    "hat_alexnet": 14,
    "wsn_alexnet": 7,
    "wsn_resnet18": 22,
    "densenet_bc": 65,
    "inception_net": 126,
    "mobilenet_v1": 80,
    "se_resnet18": 136,  # torchvision's 120 + se.fc.0.weight and se.fc.2.weight in each of 8 blocks
    # a Conv2dNormActivation holds 6 keys (conv weight, 5 of batch norm), an SE 4 (fc1, fc2 with biases):
    # stem 6 + rows 12 + 22 + 22 + 22 + 16 + 12 + last conv 6 + classifier.0 2
    "mobilenet_v3_small": 120,
    # stem 6 + stage 1 2 x 16 + stage 2 2 x 22 + stage 3 22 + last conv 6
    "efficientnet_b0": 110,
}


def short(mod) -> str:
    return mod.__name__.rsplit(".", 1)[-1]


def test_every_module_listed_and_present() -> None:
    on_disk = sorted(p.stem for p in PEERS_DIR.glob("*.py") if p.stem != "__init__")
    assert sorted(peers.MODULES) == on_disk
    assert set(DEFAULT_FEATURES) == set(peers.MODULES) == set(DEFAULT_KEY_COUNTS)


@pytest.mark.parametrize("mod", ALL, ids=short)
def test_docstring_source_and_spec_notes(mod) -> None:
    doc = mod.__doc__ or ""
    assert "Spec notes" in doc
    assert mod.SOURCE["repo"] in doc  # the docstring cites the repository ...
    assert mod.SOURCE["path"].split(" ")[0] in doc  # ... and the file
    assert len(mod.SOURCE["commit"]) == 40
    assert mod.SPEC_NOTES and all(isinstance(n, str) and n for n in mod.SPEC_NOTES)
    assert callable(mod.make)


@pytest.mark.parametrize("mod", ALL, ids=short)
def test_independent_of_specc(mod) -> None:
    tree = ast.parse(Path(mod.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "torch", "math", "collections"}, imported


@pytest.mark.parametrize("mod", ALL, ids=short)
def test_default_make_shapes_keys_and_speed(mod) -> None:
    name = short(mod)
    net = mod.make()
    assert len(net.state_dict()) == DEFAULT_KEY_COUNTS[name]
    x = torch.randn(*DEFAULT_INPUTS.get(name, (4, 3, 32, 32)))
    net.train()
    assert tuple(net.forward_features(x).shape) == DEFAULT_FEATURES[name]

    def step() -> float:
        net.zero_grad()
        t0 = time.perf_counter()
        out = net(x)
        if isinstance(out, dict):
            out = out["features"]
        if isinstance(out, list):
            out = torch.stack([o.sum() for o in out])
        out.sum().backward()
        return time.perf_counter() - t0

    best = min(step() for _ in range(3))
    assert best < 0.2, f"{name}: forward+backward at batch 4 took {best:.3f} s"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


# ---------------------------------------------------------------------------------------------
# 1. mammoth reduced ResNet-18  /  3a. Avalanche SlimResNet18 (same network, different names)
# ---------------------------------------------------------------------------------------------


def slim_resnet18_params(nf: int, num_classes: int) -> int:
    """Stem + 4 stages of 2 basic blocks; shortcut conv1x1 + BN where stride/width changes."""
    total = conv(3, nf, 3) + bn(nf)
    cin = nf
    for mult, stride in ((1, 1), (2, 2), (4, 2), (8, 2)):
        w = nf * mult
        for j in range(2):
            s = stride if j == 0 else 1
            total += conv(cin, w, 3) + bn(w) + conv(w, w, 3) + bn(w)
            if s != 1 or cin != w:
                total += conv(cin, w, 1) + bn(w)
            cin = w
    return total + lin(8 * nf, num_classes)


def test_slim_resnet18_formula_by_hand() -> None:
    # nf = 8: stem 216 + 16; layer1 2 x (576 + 576 + 32); layer2 3,680 + 4,672; layer3 14,528 + 18,560;
    # layer4 57,728 + 73,984; head 64 * 10 + 10
    assert slim_resnet18_params(8, 10) == 232 + 2_368 + 8_352 + 33_088 + 131_712 + 650 == 176_402


@pytest.mark.parametrize("nf", [8, 20])
def test_mammoth_resnet18_param_count(nf: int) -> None:
    with torch.device("meta"):
        net = mammoth_resnet18.make(num_classes=10, nf=nf)
    assert n_params(net) == slim_resnet18_params(nf, 10)
    with torch.device("meta"):
        assert n_params(mammoth_resnet18.reduced_resnet18(10)) == slim_resnet18_params(20, 10)


def test_mammoth_resnet18_keys() -> None:
    net = mammoth_resnet18.make()
    k = keys(net)
    # stem 1 + 5; 8 blocks x (2 convs + 2 BNs) = 8 x 12; 3 projection shortcuts x (1 + 5); head 2
    assert len(k) == 6 + 8 * 12 + 3 * 6 + 2 == 122
    assert k[:7] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                     "bn1.num_batches_tracked", "layer1.0.conv1.weight"]
    for key in ["layer2.0.shortcut.0.weight", "layer2.0.shortcut.1.running_var", "layer4.1.bn2.bias",
                "classifier.weight", "classifier.bias"]:
        assert key in k
    assert not any(x.startswith("layer1.0.shortcut") for x in k)  # identity: no keys ...
    names = dict(net.named_modules())
    assert isinstance(names["layer1.0.shortcut"], nn.Sequential) and len(names["layer1.0.shortcut"]) == 0
    assert k[-2:] == ["classifier.weight", "classifier.bias"]
    assert net.layer2[0].conv1.stride == (2, 2) and net.layer2[0].conv2.stride == (1, 1)


def test_mammoth_resnet18_returnt() -> None:
    net = mammoth_resnet18.make().eval()
    x = img()
    out, feat = net(x, returnt="both")
    assert out.shape == (4, 10) and feat.shape == (4, 64)
    assert torch.equal(net(x, returnt="features"), feat)
    assert torch.equal(net(x), out)


def test_avalanche_slim_resnet18_keys_and_params() -> None:
    net = avalanche_slim_resnet18.make()
    k = keys(net)
    assert len(k) == 122
    assert k[-2:] == ["linear.weight", "linear.bias"]
    assert "layer3.0.shortcut.1.num_batches_tracked" in k
    assert n_params(net) == slim_resnet18_params(8, 10)
    with torch.device("meta"):
        assert n_params(avalanche_slim_resnet18.SlimResNet18(100)) == slim_resnet18_params(20, 100)


def test_avalanche_slim_resnet18_fixed_input_shape() -> None:
    net = avalanche_slim_resnet18.make().eval()
    x = img()
    assert torch.equal(net(x), net(x.view(4, -1)))  # the forward reshapes to (B, 3, 32, 32)
    with pytest.raises(RuntimeError):
        net(img(size=28))


def test_mammoth_and_avalanche_slim_resnet18_agree() -> None:
    """Two references written from two code bases: same network up to the head's name."""
    a = mammoth_resnet18.make(nf=8).eval()
    b = avalanche_slim_resnet18.make(nf=8).eval()
    sd = {k.replace("classifier.", "linear."): v for k, v in a.state_dict().items()}
    b.load_state_dict(sd)
    x = img()
    assert torch.equal(a(x), b(x))


# ---------------------------------------------------------------------------------------------
# 2. CIFAR ResNet-32, option A: PyCIL (zeros appended) and mammoth (BN after ReLU, symmetric pad)
# ---------------------------------------------------------------------------------------------


def cifar_resnet_params(depth: int, base: int, bn_final: bool, head: int) -> int:
    n = (depth - 2) // 6
    total = conv(3, base, 3) + bn(base)
    cin = base
    for mult in (1, 2, 4):
        w = base * mult
        for _ in range(n):
            total += conv(cin, w, 3) + bn(w) + conv(w, w, 3) + bn(w)  # option A: no shortcut params
            cin = w
    if bn_final:
        total += bn(4 * base)
    return total + lin(4 * base, head)


def test_cifar_resnet32_published_size() -> None:
    # ResNet-32 for CIFAR-10 with option A is quoted as 0.46M parameters (He et al. 2016, table 6).
    assert round(cifar_resnet_params(32, 16, False, 10) / 1e6, 2) == 0.46


@pytest.mark.parametrize("depth", [14, 32])
def test_pycil_resnet32_params_and_keys(depth: int) -> None:
    with torch.device("meta"):
        net = pycil_resnet32.make(depth=depth)
    assert n_params(net) == cifar_resnet_params(depth, 16, False, 10)
    n = (depth - 2) // 6
    k = keys(net)
    # stem conv + bn; 3n blocks x (2 convs + 2 BNs); fc (registered, unused)
    assert len(k) == 6 + 3 * n * 12 + 2
    assert k[:2] == ["conv_1_3x3.weight", "bn_1.weight"]
    assert f"stage_3.{n - 1}.bn_b.running_mean" in k and "stage_2.0.conv_a.weight" in k
    assert k[-2:] == ["fc.weight", "fc.bias"]
    assert not any("downsample" in x for x in k)


def test_pycil_option_a_appends_zero_channels() -> None:
    net = pycil_resnet32.make()
    ds = net.stage_2[0].downsample
    assert isinstance(ds.avg, nn.AvgPool2d) and n_params(ds) == 0
    assert net.stage_1[0].downsample is None and net.stage_2[1].downsample is None
    x = img(channels=16, size=32)
    y = ds(x)
    assert y.shape == (4, 32, 16, 16)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 16:]) == 0


def test_pycil_fc_unused_and_dict_output() -> None:
    net = pycil_resnet32.make().eval()
    x = img()
    out = net(x)
    assert set(out) == {"fmaps", "features"}
    assert [tuple(f.shape) for f in out["fmaps"]] == [(4, 16, 32, 32), (4, 32, 16, 16), (4, 64, 8, 8)]
    with torch.no_grad():
        net.fc.weight.fill_(123.0)
    assert torch.equal(net(x)["features"], out["features"])
    assert torch.allclose(out["features"], out["fmaps"][-1].mean(dim=(2, 3)), atol=1e-6)  # AvgPool2d(8) on 8x8


def test_pycil_bn_before_relu_mammoth_bn_after_relu() -> None:
    p = pycil_resnet32.make().train()
    m = mammoth_resnet32.make().train()
    seen_p = capture(p.stage_1[0].bn_a)
    seen_m = capture(m.layer1[0].bn1)
    p(img())
    m(img())
    assert seen_p["input"].min() < 0  # PyCIL: conv -> BN -> ReLU, BN sees raw conv output
    assert seen_m["input"].min() >= 0  # mammoth: conv -> ReLU -> BN, BN sees a ReLU output
    assert seen_m["output"].min() < 0


@pytest.mark.parametrize("depth", [8, 14, 32])
def test_mammoth_resnet32_params_keys_and_block_counts(depth: int) -> None:
    n = (depth - 2) // 6
    with torch.device("meta"):
        net = mammoth_resnet32.make(depth=depth, num_classes=10)
    expected_layer3 = 2 if n == 1 else n  # the public builder appends the last block even for n = 1
    assert [len(net.layer1), len(net.layer2), len(net.layer3)] == [n, n, expected_layer3]
    blocks = n + n + expected_layer3
    params = conv(3, 16, 3) + bn(16) + bn(64) + lin(64, 10)
    cin = 16
    for w, count in ((16, n), (32, n), (64, expected_layer3)):
        for _ in range(count):
            params += conv(cin, w, 3) + bn(w) + conv(w, w, 3) + bn(w)
            cin = w
    assert n_params(net) == params
    if depth == 32:
        assert params == cifar_resnet_params(32, 16, True, 10)
    k = keys(net)
    assert len(k) == 6 + blocks * 12 + BN_KEYS + 2  # stem, blocks, bn_final, classifier
    assert k[:6] == ["conv1.weight", "bn_initial.weight", "bn_initial.bias", "bn_initial.running_mean",
                     "bn_initial.running_var", "bn_initial.num_batches_tracked"]
    assert k[-7:] == ["bn_final.weight", "bn_final.bias", "bn_final.running_mean", "bn_final.running_var",
                      "bn_final.num_batches_tracked", "classifier.weight", "classifier.bias"]
    assert all(m.eps == 1e-4 for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    last_flags = [b.last for b in net.layer3]
    assert last_flags == [False] * (len(net.layer3) - 1) + [True]


def test_mammoth_option_a_pads_symmetrically() -> None:
    net = mammoth_resnet32.make()
    ds = net.layer2[0].downsample
    assert isinstance(ds, mammoth_resnet32.IdentityShortcut) and len(list(ds.children())) == 0
    assert net.layer1[0].downsample is None and net.layer3[1].downsample is None
    x = img(channels=16, size=32)
    y = ds(x)
    assert y.shape == (4, 32, 16, 16)
    assert torch.count_nonzero(y[:, :8]) == 0 and torch.count_nonzero(y[:, 24:]) == 0
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])


def test_mammoth_resnet32_shared_relu_and_last_block() -> None:
    net = mammoth_resnet32.make(depth=14).train()
    names = [n for n, _ in net.named_modules()]
    assert names.count("layer1.0.relu") == 1 and "relu" in names
    counts = {i: call_counter(b.relu) for i, b in enumerate(net.layer3)}
    stem = call_counter(net.relu)
    before_pool = capture(net.layer3)
    net(img())
    assert counts[0][0] == 2  # after conv1 and after the add
    assert counts[1][0] == 1  # the last block: after conv1 only
    assert stem[0] == 1
    assert before_pool["output"].min() < 0  # no activation after the last residual add
    with torch.no_grad():
        net.bn_final.weight.fill_(7.0)  # registered but unused
    net.eval()
    x = img()
    a = net(x)
    with torch.no_grad():
        net.bn_final.bias.fill_(3.0)
    assert torch.equal(net(x), a)


# ---------------------------------------------------------------------------------------------
# 3b. Avalanche SimpleCNN
# ---------------------------------------------------------------------------------------------


def test_simple_cnn_keys_params_and_shapes() -> None:
    net = avalanche_simple_cnn.make(10)
    assert keys(net) == [f"features.{i}.{p}" for i in (0, 2, 6, 8, 12) for p in ("weight", "bias")] + [
        "classifier.0.weight", "classifier.0.bias"]
    expected = (conv(3, 32, 3, True) + conv(32, 32, 3, True) + conv(32, 64, 3, True) + conv(64, 64, 3, True)
                + conv(64, 64, 1, True) + lin(64, 10))
    assert n_params(net) == expected == 70_378
    kinds = [type(m).__name__ for m in net.features]
    assert kinds == ["Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d", "Dropout", "Conv2d", "ReLU", "Conv2d",
                     "ReLU", "MaxPool2d", "Dropout", "Conv2d", "ReLU", "AdaptiveMaxPool2d", "Dropout"]
    assert [m.p for m in net.features if isinstance(m, nn.Dropout)] == [0.25, 0.25, 0.25]
    net.eval()
    shapes = {i: capture(net.features[i]) for i in (2, 4, 8, 10, 13, 14)}
    net(img())
    got = {i: tuple(b["output"].shape[1:]) for i, b in shapes.items()}
    assert got == {2: (32, 30, 30), 4: (32, 15, 15), 8: (64, 13, 13), 10: (64, 6, 6), 13: (64, 6, 6),
                   14: (64, 1, 1)}
    assert torch.equal(shapes[14]["output"].flatten(1), shapes[13]["output"].amax(dim=(2, 3)))


def test_simple_cnn_dropout_train_vs_eval() -> None:
    net = avalanche_simple_cnn.make()
    x = img()
    net.eval()
    assert torch.equal(net(x), net(x))
    net.train()
    torch.manual_seed(1)
    a = net(x)
    torch.manual_seed(2)
    assert not torch.equal(a, net(x))


# ---------------------------------------------------------------------------------------------
# 4. torchvision ResNet-18
# ---------------------------------------------------------------------------------------------


def tv_resnet18_params(width: int, in_channels: int, num_classes: int | None) -> int:
    total = conv(in_channels, width, 7) + bn(width)
    cin = width
    for mult, stride in ((1, 1), (2, 2), (4, 2), (8, 2)):
        w = width * mult
        for j in range(2):
            s = stride if j == 0 else 1
            total += conv(cin, w, 3) + bn(w) + conv(w, w, 3) + bn(w)
            if s != 1 or cin != w:
                total += conv(cin, w, 1) + bn(w)
            cin = w
    return total + (lin(8 * width, num_classes) if num_classes else 0)


def test_torchvision_resnet18_published_param_count() -> None:
    assert tv_resnet18_params(64, 3, 1000) == 11_689_512  # torchvision's documented figure
    with torch.device("meta"):
        assert n_params(torchvision_resnet18.resnet18(num_classes=1000)) == 11_689_512
        assert n_params(torchvision_resnet18.resnet18()) == 11_689_512 - lin(512, 1000)
        assert n_params(torchvision_resnet18.make()) == tv_resnet18_params(16, 3, None)


def test_torchvision_resnet18_keys_and_head_option() -> None:
    net = torchvision_resnet18.make()
    k = keys(net)
    assert len(k) == 6 + 8 * 12 + 3 * 6 == 120
    assert not hasattr(net, "fc") and not any(x.startswith("fc.") for x in k)
    for key in ["conv1.weight", "bn1.num_batches_tracked", "layer1.0.conv1.weight", "layer1.1.bn2.running_var",
                "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight", "layer4.1.conv2.weight"]:
        assert key in k
    assert not any(x.startswith("layer1.0.downsample") for x in k)
    assert net.layer1[0].downsample is None
    head = torchvision_resnet18.make(num_classes=7)
    assert keys(head)[-2:] == ["fc.weight", "fc.bias"]
    assert head(img()).shape == (4, 7)
    assert net(img()).shape == (4, 128)


def test_torchvision_resnet18_shared_relu_called_twice() -> None:
    net = torchvision_resnet18.make().train()
    names = [n for n, _ in net.named_modules()]
    relus = [n for n in names if n.endswith("relu")]
    assert relus == ["relu"] + [f"layer{i}.{j}.relu" for i in range(1, 5) for j in range(2)]
    assert Counter(names)["layer3.1.relu"] == 1
    counters = {n: call_counter(m) for n, m in net.named_modules() if isinstance(m, nn.ReLU)}
    maps = capture(net.maxpool)
    net(img())
    assert counters["relu"][0] == 1
    assert all(c[0] == 2 for n, c in counters.items() if n != "relu")
    assert maps["output"].shape == (4, 16, 8, 8)  # 32 -> conv1 /2 -> 16 -> maxpool /2 -> 8
    assert net.layer2[0].conv1.stride == (2, 2) and net.layer2[0].conv2.stride == (1, 1)


# ---------------------------------------------------------------------------------------------
# 5. HAT's MLP and AlexNet (plain parts)
# ---------------------------------------------------------------------------------------------


def test_hat_mlp_names_params_and_dropout_points() -> None:
    net = hat_mlp.make(inputsize=(1, 8, 8), taskcla=((0, 3), (1, 3)), nlayers=3, nhid=32)
    assert keys(net) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias",
                         "last.0.weight", "last.0.bias", "last.1.weight", "last.1.bias"]
    assert n_params(net) == lin(64, 32) + 2 * lin(32, 32) + 2 * lin(32, 3)
    assert [n for n, _ in net.named_children()] == ["relu", "drop1", "drop2", "fc1", "fc2", "fc3", "last"]
    assert net.drop1.p == 0.2 and net.drop2.p == 0.5
    d1, d2, r = call_counter(net.drop1), call_counter(net.drop2), call_counter(net.relu)
    first = capture(net.drop1)
    out = net(torch.randn(4, 1, 8, 8))
    assert (d1[0], d2[0], r[0]) == (1, 3, 3)
    assert first["input"].shape == (4, 64)  # dropout on the flattened input
    assert isinstance(out, list) and [tuple(o.shape) for o in out] == [(4, 3), (4, 3)]
    assert len(keys(hat_mlp.make())) == 8  # default: 2 hidden layers, 2 heads
    with pytest.raises(ValueError):
        hat_mlp.HATMLP(nlayers=4)


def test_hat_mlp_public_size() -> None:
    with torch.device("meta"):
        net = hat_mlp.HATMLP((1, 28, 28), [(t, 10) for t in range(10)], nlayers=2, nhid=2000)
    assert n_params(net) == lin(784, 2000) + lin(2000, 2000) + 10 * lin(2000, 10)


@pytest.mark.parametrize("size,k1,k2,smid", [(32, 4, 3, 2), (28, 3, 2, 2)])
def test_hat_alexnet_computed_kernels(size: int, k1: int, k2: int, smid: int) -> None:
    # 32: 32-4+1=29 ->14 ; 14-3+1=12 -> 6 ; 6-2+1=5 -> 2.   28: 26 -> 13 ; 12 -> 6 ; 5 -> 2
    net = hat_alexnet.make(inputsize=(3, size, size))
    assert net.c1.kernel_size == (k1, k1) and net.c2.kernel_size == (k2, k2) and net.c3.kernel_size == (2, 2)
    assert net.smid == smid and net.fc1.in_features == 64 * smid * smid
    assert net.forward_features(img(size=size)).shape == (4, 64)


def test_hat_alexnet_keys_params_and_call_points() -> None:
    net = hat_alexnet.make(taskcla=((0, 5), (1, 5)))
    assert keys(net) == [f"{m}.{p}" for m in ("c1", "c2", "c3", "fc1", "fc2") for p in ("weight", "bias")] + [
        "last.0.weight", "last.0.bias", "last.1.weight", "last.1.bias"]
    assert n_params(net) == (conv(3, 16, 4, True) + conv(16, 32, 3, True) + conv(32, 64, 2, True)
                             + lin(64 * 4, 64) + lin(64, 64) + 2 * lin(64, 5))
    assert all(c.padding == (0, 0) for c in (net.c1, net.c2, net.c3))
    calls = {n: input_shapes(getattr(net, n)) for n in ("relu", "maxpool", "drop1", "drop2")}
    net.train()
    net(img())
    # 32 -c1(k4)-> 29 -pool-> 14 -c2(k3)-> 12 -pool-> 6 -c3(k2)-> 5 -pool-> 2; dropout BEFORE each pool
    assert calls["maxpool"] == [(4, 16, 29, 29), (4, 32, 12, 12), (4, 64, 5, 5)]
    assert calls["drop1"] == [(4, 16, 29, 29), (4, 32, 12, 12)]
    assert calls["drop2"] == [(4, 64, 5, 5), (4, 64), (4, 64)]
    assert calls["relu"] == [(4, 16, 29, 29), (4, 32, 12, 12), (4, 64, 5, 5), (4, 64), (4, 64)]
    with torch.device("meta"):
        public = hat_alexnet.HATAlexNet((3, 32, 32), [(t, 10) for t in range(10)])
    assert n_params(public) == (conv(3, 64, 4, True) + conv(64, 128, 3, True) + conv(128, 256, 2, True)
                                + lin(1024, 2048) + lin(2048, 2048) + 10 * lin(2048, 10))


# ---------------------------------------------------------------------------------------------
# 6. WSN's AlexNet and ResNet-18 (plain counterparts; stateless batch norm)
# ---------------------------------------------------------------------------------------------


def test_wsn_alexnet_keys_params_and_bn_flavour() -> None:
    net = wsn_alexnet.make(taskcla=((0, 5), (1, 5)))
    assert keys(net) == ["conv1.weight", "conv2.weight", "conv3.weight", "fc1.weight", "fc2.weight",
                         "last.0.weight", "last.1.weight"]
    assert n_params(net) == (conv(3, 16, 4) + conv(16, 32, 3) + conv(32, 64, 2) + lin(256, 64, False)
                             + lin(64, 64, False) + 2 * lin(64, 5, False))
    bns = [net.bn1, net.bn2, net.bn3, net.bn4, net.bn5]
    assert [type(b).__name__ for b in bns] == ["BatchNorm2d"] * 3 + ["BatchNorm1d"] * 2
    for b in bns:
        assert not b.affine and not b.track_running_stats
        assert list(b.parameters()) == [] and list(b.buffers()) == []
    assert [n for n, _ in net.named_children()] == ["conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "maxpool",
                                                    "relu", "drop1", "drop2", "fc1", "bn4", "fc2", "bn5", "last"]
    drop1_in = capture(net.drop1)
    bn2_out = capture(net.bn2)
    calls = {n: input_shapes(getattr(net, n)) for n in ("maxpool", "drop1", "drop2", "bn4")}
    net.train()
    net(img())
    assert calls["maxpool"] == [(4, 16, 29, 29), (4, 32, 12, 12), (4, 64, 5, 5)]
    assert calls["drop1"] == [(4, 16, 29, 29), (4, 32, 12, 12)]  # dropout before each pool
    assert calls["drop2"] == [(4, 64, 5, 5), (4, 64), (4, 64)]
    assert calls["bn4"] == [(4, 64)]
    # conv2 -> bn2 -> relu -> dropout -> maxpool
    assert torch.equal(drop1_in["input"], bn2_out["output"].clamp_min(0))
    net.eval()
    x = img()
    assert torch.equal(net(x, 1), net.last[1](net.forward_features(x)))
    with torch.device("meta"):
        public = wsn_alexnet.WSNAlexNet([(t, 10) for t in range(10)])
    assert n_params(public) == (conv(3, 64, 4) + conv(64, 128, 3) + conv(128, 256, 2) + lin(1024, 2048, False)
                                + lin(2048, 2048, False) + 10 * lin(2048, 10, False))


def test_stateless_bn_uses_batch_statistics_in_eval() -> None:
    wsn = wsn_resnet18.make()
    x = img(batch=6)
    wsn.train()
    train_out = wsn.forward_features(x)
    wsn.eval()
    eval_out = wsn.forward_features(x)
    assert torch.equal(train_out, eval_out)  # no running statistics: eval == train
    # ... and a sample's output depends on the rest of the batch, in eval mode too
    assert not torch.allclose(wsn.forward_features(x[:3])[0], eval_out[0])

    # contrast: ordinary BatchNorm (mammoth) uses running statistics in eval mode
    std = mammoth_resnet18.make()
    std.train()
    a = std.forward_features(x)
    std.eval()
    b = std.forward_features(x)
    assert not torch.allclose(a, b)
    assert torch.allclose(std.forward_features(x[:3])[0], b[0], atol=1e-5)
    assert std.bn1.num_batches_tracked.item() == 1


def test_wsn_resnet18_keys_params_and_shortcut_names() -> None:
    net = wsn_resnet18.make(taskcla=((0, 5), (1, 5)), nf=8)
    k = keys(net)
    # 1 stem conv + 8 blocks x 2 convs + 3 shortcut convs + 2 heads; no BN keys at all
    assert len(k) == 1 + 16 + 3 + 2 == 22
    assert k[:3] == ["conv1.weight", "layer1.0.conv1.weight", "layer1.0.conv2.weight"]
    assert "layer2.0.conv3.weight" in k and "layer1.0.conv3.weight" not in k
    assert k[-2:] == ["last.0.weight", "last.1.weight"]
    assert [n for n, _ in net.layer2[0].named_children()] == ["conv1", "bn1", "conv2", "bn2", "conv3", "bn3"]
    assert [n for n, _ in net.layer2[1].named_children()] == ["conv1", "bn1", "conv2", "bn2"]
    assert not any(m.affine or m.track_running_stats for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    params = conv(3, 8, 3)
    cin = 8
    for mult, stride in ((1, 1), (2, 2), (4, 2), (8, 2)):
        w = 8 * mult
        for j in range(2):
            params += conv(cin, w, 3) + conv(w, w, 3)
            if (stride if j == 0 else 1) != 1 or cin != w:
                params += conv(cin, w, 1)
            cin = w
    params += 2 * lin(64 * 4, 5, False)  # avg_pool2d(., 2) leaves 2x2: 8nf * 4 features
    assert n_params(net) == params
    assert net.last[0].in_features == 8 * 8 * 4
    out = net(img(), task_id=1)
    assert out.shape == (4, 5)


# ---------------------------------------------------------------------------------------------
# 7. DenseNet-BC
# ---------------------------------------------------------------------------------------------


def densenet_params(growth: int, blocks, init: int, bn_size: int, in_ch: int, num_classes: int | None) -> int:
    total = conv(in_ch, init, 7) + bn(init)
    c = init
    for i, n in enumerate(blocks):
        for j in range(n):
            cin = c + j * growth
            total += bn(cin) + conv(cin, bn_size * growth, 1) + bn(bn_size * growth) + conv(bn_size * growth, growth, 3)
        c += n * growth
        if i != len(blocks) - 1:
            total += bn(c) + conv(c, c // 2, 1)
            c //= 2
    total += bn(c)
    return total + (lin(c, num_classes) if num_classes else 0)


def test_densenet121_published_param_count() -> None:
    assert densenet_params(32, (6, 12, 24, 16), 64, 4, 3, 1000) == 7_978_856  # torchvision's figure
    with torch.device("meta"):
        net = densenet_bc.DenseNet(num_classes=1000)
    assert n_params(net) == 7_978_856


def test_densenet_small_keys_params_channels() -> None:
    net = densenet_bc.make()  # growth 4, blocks (2, 2), init 8, bn_size 2
    assert n_params(net) == densenet_params(4, (2, 2), 8, 2, 3, None) == 3_000
    k = keys(net)
    # stem conv + BN; per dense layer 2 convs + 2 BNs; transition BN + conv; norm5
    assert len(k) == 1 + BN_KEYS + 4 * (2 + 2 * BN_KEYS) + (1 + BN_KEYS) + BN_KEYS == 65
    for key in ["features.conv0.weight", "features.norm0.running_mean",
                "features.denseblock1.denselayer1.norm1.weight", "features.denseblock1.denselayer2.conv1.weight",
                "features.transition1.norm.bias", "features.transition1.conv.weight",
                "features.denseblock2.denselayer2.conv2.weight", "features.norm5.num_batches_tracked"]:
        assert key in k
    assert [n for n, _ in net.features.named_children()] == [
        "conv0", "norm0", "relu0", "pool0", "denseblock1", "transition1", "denseblock2", "norm5"]
    assert net.features.denseblock1.denselayer2.conv1.weight.shape == (8, 12, 1, 1)  # 8 + 1*4 inputs
    assert net.features.transition1.conv.weight.shape == (8, 16, 1, 1)  # (8 + 2*4) // 2
    assert [n for n, _ in net.features.denseblock1.denselayer1.named_children()] == [
        "norm1", "relu1", "conv1", "norm2", "relu2", "conv2"]


def test_densenet_concatenation_keeps_input_and_appends_in_order() -> None:
    net = densenet_bc.make().eval()
    block = net.features.denseblock1
    seen = capture(block)
    l1 = capture(block.denselayer1)
    l2 = capture(block.denselayer2)
    trans = capture(net.features.transition1.pool)
    net(img())
    x, y = seen["input"], seen["output"]
    assert y.shape == (4, 16, 8, 8)
    assert torch.equal(y[:, :8], x)  # the block input is carried through unchanged
    assert torch.equal(y[:, 8:12], l1["output"]) and torch.equal(y[:, 12:16], l2["output"])
    assert trans["output"].shape == (4, 8, 4, 4)


# ---------------------------------------------------------------------------------------------
# 8. Inception
# ---------------------------------------------------------------------------------------------


def test_inception_block_concat_order_and_widths() -> None:
    net = inception_net.make().eval()  # widths / 8, 5x5 third branch
    block = net.inception3a
    assert block.out_channels == 8 + 16 + 4 + 4
    assert block.branch3[1].conv.kernel_size == (5, 5) and block.branch3[1].conv.padding == (2, 2)
    assert isinstance(block.branch4[0], nn.MaxPool2d) and block.branch4[0].ceil_mode
    x = torch.randn(2, 24, 8, 8)
    y = block(x)
    assert y.shape == (2, 32, 8, 8)
    assert torch.equal(y[:, :8], block.branch1(x))
    assert torch.equal(y[:, 8:24], block.branch2(x))
    assert torch.equal(y[:, 24:28], block.branch3(x))
    assert torch.equal(y[:, 28:], block.branch4(x))


def test_inception_ceil_mode_shapes_keys_params() -> None:
    net = inception_net.make().eval()
    shapes = {n: capture(getattr(net, n)) for n in ("conv1", "maxpool1", "maxpool2", "maxpool3", "inception4a")}
    net(img())
    got = {n: tuple(b["output"].shape[1:]) for n, b in shapes.items()}
    # ceil((16 - 3) / 2) + 1 = 8 ; ceil((8 - 3) / 2) + 1 = 4 ; ceil((4 - 3) / 2) + 1 = 2
    assert got == {"conv1": (8, 16, 16), "maxpool1": (8, 8, 8), "maxpool2": (24, 4, 4), "maxpool3": (60, 2, 2),
                   "inception4a": (64, 2, 2)}
    k = keys(net)
    # every BasicConv2d: conv + BN; stem 3; each Inception 6 (branch1, 2 + 2, branch4's conv)
    assert len(k) == (3 + 3 * 6) * (1 + BN_KEYS) == 126
    for key in ["conv1.conv.weight", "conv1.bn.running_var", "inception3a.branch1.conv.weight",
                "inception3a.branch2.0.conv.weight", "inception3a.branch2.1.bn.bias",
                "inception3b.branch3.1.conv.weight", "inception4a.branch4.1.conv.weight"]:
        assert key in k
    assert not any(x.startswith("inception3a.branch4.0") for x in k)  # the max pool owns no keys
    assert all(m.eps == 0.001 for m in net.modules() if isinstance(m, nn.BatchNorm2d))

    def basic(cin, cout, kk):
        return conv(cin, cout, kk) + bn(cout)

    def incep(cin, c1, c3r, c3, c5r, c5, pp, k5):
        return (basic(cin, c1, 1) + basic(cin, c3r, 1) + basic(c3r, c3, 3) + basic(cin, c5r, 1)
                + basic(c5r, c5, k5) + basic(cin, pp, 1))

    expected = (basic(3, 8, 7) + basic(8, 8, 1) + basic(8, 24, 3) + incep(24, 8, 12, 16, 2, 4, 4, 5)
                + incep(32, 16, 16, 24, 4, 12, 8, 5) + incep(60, 24, 12, 26, 2, 6, 8, 5))
    assert n_params(net) == expected
    with torch.device("meta"):
        tv = inception_net.InceptionNet(num_classes=1000)  # torchvision widths, k = 3
    expected_tv = (basic(3, 64, 7) + basic(64, 64, 1) + basic(64, 192, 3) + incep(192, 64, 96, 128, 16, 32, 32, 3)
                   + incep(256, 128, 128, 192, 32, 96, 64, 3) + incep(480, 192, 96, 208, 16, 48, 64, 3)
                   + lin(512, 1000))
    assert n_params(tv) == expected_tv


def test_inception_head_dropout() -> None:
    net = inception_net.make(num_classes=4)
    assert keys(net)[-2:] == ["fc.weight", "fc.bias"] and net.dropout.p == 0.2
    net.eval()
    x = img()
    assert torch.equal(net(x), net.fc(net.forward_features(x)))


# ---------------------------------------------------------------------------------------------
# 9. MobileNet-v1
# ---------------------------------------------------------------------------------------------


def mobilenet_params(cfg, stem: int, num_classes: int | None) -> int:
    total = conv(3, stem, 3) + bn(stem)
    cin = stem
    for entry in cfg:
        out = entry if isinstance(entry, int) else entry[0]
        total += conv(cin, cin, 3, groups=cin) + bn(cin) + conv(cin, out, 1) + bn(out)
        cin = out
    return total + (lin(cin, num_classes) if num_classes else 0)


def test_mobilenet_public_param_count() -> None:
    # MobileNet-v1 (1.0, ImageNet) has 4,231,976 parameters; the CIFAR variant differs only in the
    # head: 1024 * 10 + 10 instead of 1024 * 1000 + 1000.
    assert mobilenet_params(mobilenet_v1.PUBLIC_CFG, 32, 1000) == 4_231_976
    with torch.device("meta"):
        assert n_params(mobilenet_v1.MobileNet(10)) == 4_231_976 - lin(1024, 1000) + lin(1024, 10)


def test_mobilenet_depthwise_structure_keys_and_shapes() -> None:
    net = mobilenet_v1.make()
    cfg = (16, (32, 2), 32, (64, 2), (64, 2), (128, 2))
    assert n_params(net) == mobilenet_params(cfg, 8, 10)
    k = keys(net)
    assert len(k) == 1 + BN_KEYS + len(cfg) * 2 * (1 + BN_KEYS) + 2 == 80
    assert k[:2] == ["conv1.weight", "bn1.weight"] and k[-2:] == ["linear.weight", "linear.bias"]
    assert "layers.0.conv1.weight" in k and "layers.5.bn2.running_mean" in k
    for block in net.layers:
        dw, pw = block.conv1, block.conv2
        assert dw.groups == dw.in_channels == dw.out_channels
        assert dw.weight.shape == (dw.in_channels, 1, 3, 3)
        assert pw.kernel_size == (1, 1) and pw.groups == 1
    assert [b.conv1.stride[0] for b in net.layers] == [1, 2, 1, 2, 2, 2]
    last = capture(net.layers)
    net.eval()
    assert net(img()).shape == (4, 10)
    assert last["output"].shape == (4, 128, 2, 2)  # four stride-2 blocks: 32 -> 2; avg_pool2d(2) -> 1


def test_depthwise_conv_is_per_channel() -> None:
    block = mobilenet_v1.Block(4, 6)
    x = torch.randn(2, 4, 8, 8)
    y = block.conv1(x)
    x2 = x.clone()
    x2[:, 1] += 1.0  # change one input channel only
    y2 = block.conv1(x2)
    changed = [(y2[:, c] - y[:, c]).abs().sum().item() > 0 for c in range(4)]
    assert changed == [False, True, False, False]


# ---------------------------------------------------------------------------------------------
# the checks can fail: a perturbed reference is caught
# ---------------------------------------------------------------------------------------------


def test_checks_detect_a_wrong_shortcut_padding() -> None:
    """Swap mammoth's symmetric padding for PyCIL's appended zeros: the padding check must notice."""
    ds = mammoth_resnet32.IdentityShortcut(32)
    x = img(channels=16, size=8)
    pycil_like = pycil_resnet32.DownsampleA(16, 32, 2)(x)
    assert not torch.equal(ds(x), pycil_like)
    assert torch.count_nonzero(pycil_like[:, :8]) > 0  # would fail the symmetric-padding assertion


def test_source_files_mention_no_copied_licence_headers() -> None:
    for path in PEERS_DIR.glob("*.py"):
        text = path.read_text()
        assert "Copyright" not in text and "All rights reserved" not in text, path.name
        assert "specc" not in text.replace("``specc``", ""), path.name


def test_make_signatures_have_defaults() -> None:
    for mod in ALL:
        sig = inspect.signature(mod.make)
        assert all(p.default is not inspect.Parameter.empty for p in sig.parameters.values()), short(mod)
