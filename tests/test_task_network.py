"""Per-task inference networks (specc.task_network): a trained masked backbone's test stage for one
task as a plain network without the units the task's mask drops.

Backbones are "trained" by drawing their task embeddings from N(0, 1) (about half the units of
every layer kept) and their batch norms' statistics and affine parameters at random; the reference
is the backbone's own test stage, `backbone(x, "test", test_task_id=T)`. Sizes are checked against
an independent count of each layer's kept units, read from the stored mask."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch
from torch import nn

from conftest import SPECS

import specc
import specc.builder
from generated.mlp_amnesiac_hat import AmnesiacHATMLP
from generated.mlp_hat import HATMaskMLP
from generated.mlp_wsn import WSNMaskMLP
from generated.resnet18_hat import HATMaskResNet18
from generated.resnet18_hat_protected import HATMaskResNet18Protected
from generated.resnet18_wsn import WSNMaskResNet18

TOL = 1e-5  # relative to the largest value of the reference feature


def _train_ish(backbone: nn.Module, task: int = 1, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    backbone.setup_task_id(task)
    if hasattr(backbone, "task_embedding_t"):
        for embedding in backbone.task_embedding_t.values():
            nn.init.normal_(embedding.weight)
    with torch.no_grad():
        for m in backbone.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                m.weight.normal_()
                m.bias.normal_()
    if hasattr(backbone, "store_mask"):
        backbone.store_mask()
    if getattr(backbone, "batch_normalization", None) == "independent":
        backbone.store_bn()
        # the live batch norms move on: the task's copies (in ModuleDicts keyed by task) must be used
        copies = {id(c) for d in backbone.modules() if isinstance(d, nn.ModuleDict) for c in d.modules()}
        with torch.no_grad():
            for m in backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and id(m) not in copies:
                    m.running_mean.add_(10.0)
    return backbone.eval()


def _close(out: torch.Tensor, ref: torch.Tensor) -> None:
    assert out.shape == ref.shape
    scale = ref.abs().max()
    assert scale > 0
    err = (out - ref).abs().max()
    assert err <= TOL * scale, f"max error {err.item():.3g} over max |ref| {scale.item():.3g}"


def _checked(m: nn.Module, x: torch.Tensor, **kwargs):
    """Task 1's network of `m`, after checking it against m's test stage on `x`."""
    with torch.no_grad():
        ref = m(x, "test", test_task_id=1)[0]
        net = specc.task_network(m, 1, x[:1], **kwargs)
        _close(net(x), ref)
    return net


def _kept(mask: torch.Tensor) -> int:
    return max(int((mask > 0).sum()), 1)  # a layer that keeps no unit keeps one (zero)


def _modules_by_path(net):
    return dict(net.named_children())


@pytest.mark.parametrize("bn", [None, "shared", "independent"])
def test_mlp_hat_sizes_and_outputs(bn):
    m = _train_ish(HATMaskMLP(input_dim=20, hidden_dims=[32, 24], output_dim=16, gate="sigmoid",
                              batch_normalization=bn))
    x = torch.randn(7, 20)
    unfused = _checked(m, x, fuse=False)
    net = _checked(m, x)
    with torch.no_grad():
        out = net(x)
    masks = m.masks[1]
    counts = [_kept(masks[f"fc/{i}"]) for i in range(3)]
    for mods in (_modules_by_path(net), _modules_by_path(unfused)):
        assert [mods[f"fc_{i}"].out_features for i in range(3)] == counts
        assert [mods[f"fc_{i}"].in_features for i in range(3)] == [20] + counts[:2]
    if bn is not None:
        assert [_modules_by_path(unfused)[f"fc_bn_{i}"].num_features for i in range(3)] == counts
        # by default every batch norm is folded into the linear before it
        assert not any(isinstance(mod, nn.BatchNorm1d) for mod in net.modules())
    assert 0 < counts[0] < 32 and 0 < counts[1] < 24  # mixed masks: the test prunes something
    # the feature has the backbone's shape; the dropped units of the last layer are zeros
    assert torch.equal(out[:, masks["fc/2"] == 0], torch.zeros_like(out[:, masks["fc/2"] == 0]))
    assert not isinstance(net, HATMaskMLP) and not any(p is q for p in net.parameters() for q in m.parameters())


def test_a_layer_that_keeps_nothing():
    m = _train_ish(HATMaskMLP(input_dim=10, hidden_dims=[12], output_dim=8, gate="sigmoid",
                              batch_normalization="shared"), seed=3)
    m.masks[1]["fc/0"] = torch.zeros(12)
    x = torch.randn(4, 10)
    _checked(m, x)


@pytest.fixture(scope="module")
def resnet18():
    return _train_ish(HATMaskResNet18(input_channels=3, output_dim=512, gate="sigmoid",
                                      batch_normalization="independent"))


def test_resnet18_hat_shortcut_ties_sizes_and_outputs(resnet18):
    m = resnet18
    x = torch.randn(2, 3, 32, 32)
    net = _checked(m, x)
    mods = _modules_by_path(net)
    masks = m.masks[1]
    for name in m.weighted_layer_names:
        conv = mods[name.replace("/", "_")]
        assert conv.out_channels == _kept(masks[name]), name
    # A block's output units are those of its second conv (the mask after the residual add): the
    # next block's first conv and the downsampling shortcut read exactly those.
    assert mods["conv3x_0_conv1"].in_channels == _kept(masks["conv2x/1/conv2"])
    assert mods["conv3x_0_identity_downsample"].in_channels == _kept(masks["conv2x/1/conv2"])
    assert mods["conv3x_0_identity_downsample"].out_channels == _kept(masks["conv3x/0/conv2"])
    kept = sum(_kept(masks[n]) for n in m.weighted_layer_names)
    total = sum(masks[n].numel() for n in m.weighted_layer_names)
    assert 0.4 < kept / total < 0.6


def test_resnet18_hat_protected_shortcuts():
    m = _train_ish(HATMaskResNet18Protected(input_channels=3, output_dim=512, gate="sigmoid"))
    x = torch.randn(2, 3, 32, 32)
    net = _checked(m, x)
    # the weighted shortcut shares the mask of the conv owning its add (a tie)
    assert _modules_by_path(net)["conv3x_0_identity_downsample"].out_channels == _kept(m.masks[1]["conv3x/0/conv2"])


def test_concatenations_inception():
    m = _train_ish(specc.build(SPECS / "peers" / "inception_net_hat.cl", width_div=8))
    x = torch.randn(2, 3, 32, 32)
    net = _checked(m, x)
    assert any(n.target is torch.cat for n in net.graph.nodes)
    mods = _modules_by_path(net)
    for name in m.weighted_layer_names:
        assert mods[name.replace("/", "_")].out_channels == _kept(m.masks[1][name]), name
    # the first 1x1 branch of inception3b reads the four branch outputs of inception3a, concatenated
    branches = [f"inception3a/branch{i}" for i in (1, 2, 3, 4)]
    last = {b: max(n for n in m.weighted_layer_names if n.startswith(b + "/")) for b in branches}
    reader = min(n for n in m.weighted_layer_names if n.startswith("inception3b/branch1/"))
    assert mods[reader.replace("/", "_")].in_channels == sum(_kept(m.masks[1][last[b]]) for b in branches)


def test_depthwise_convolutions_mobilenet():
    m = _train_ish(specc.build(SPECS / "peers" / "mobilenet_v1_hat.cl", stem_width=8, widths=[16, 32],
                               strides=[1, 2]))
    x = torch.randn(2, 3, 32, 32)
    _checked(m, x)


@pytest.mark.parametrize("stem", [
    "pycil_resnet32_hat",      # option-A shortcuts: strided subsampling and zero channels padded on
    "hat_alexnet_hat_paper",   # masks at the chain's end (after ReLU, dropout, max pool)
    "wsn_alexnet_hat",         # batch norms on batch statistics (track_running_stats=False)
])
def test_peer_networks_in_double(stem):
    """In float64, so that batch norms on the statistics of a small batch (which amplify the
    rounding of a sum taken over fewer channels) test the semantics, not the conditioning."""
    cls = specc.builder.runtime_class(specc.builder.load_program(SPECS / "peers" / f"{stem}.cl"))
    torch.manual_seed(0)
    m = _train_ish(cls().double())
    first = next(mod for mod in m.modules() if isinstance(mod, nn.Conv2d))
    net = _checked(m, torch.randn(4, first.in_channels, 32, 32, dtype=torch.float64))
    assert sum(p.numel() for p in net.parameters()) < 0.5 * sum(p.numel() for p in m.parameters())


def test_amnesiac_hat():
    m = _train_ish(AmnesiacHATMLP(input_dim=20, hidden_dims=[32, 24], output_dim=16, gate="sigmoid",
                                  batch_normalization="independent"))
    x = torch.randn(5, 20)
    net = _checked(m, x)
    assert _modules_by_path(net)["fc_1"].out_features == _kept(m.masks[1]["fc/1"])


def _wsn_masks(m):
    wm, bm = m.get_mask("train", mask_percentage=0.5)
    return ({k: v.detach() for k, v in wm.items()}, {k: None if v is None else v.detach() for k, v in bm.items()})


def test_wsn_masked_weights_folded_in():
    m = _train_ish(WSNMaskMLP(input_dim=20, hidden_dims=[32, 24], output_dim=16))
    masks = _wsn_masks(m)
    x = torch.randn(5, 20)
    with torch.no_grad():
        ref = m(x, "test", 0.5, test_mask=masks, test_task_id=1)[0]
        net = specc.task_network(m, 1, x[:1], masks=masks)
        out = net(x)
    _close(out, ref)
    fc0 = _modules_by_path(net)["fc_0"]
    assert torch.equal(fc0.weight, m.fc[0].weight * masks[0]["fc/0"])
    assert 0.4 < float((fc0.weight == 0).float().mean()) < 0.6
    with pytest.raises(ValueError, match="WSN backbone keeps no masks"):
        specc.task_network(m, 1, x[:1])


def test_wsn_resnet18_independent_batch_norms():
    m = _train_ish(WSNMaskResNet18(input_channels=3, output_dim=512, batch_normalization="independent"))
    masks = _wsn_masks(m)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = m(x, "test", 0.5, test_mask=masks, test_task_id=1)[0]
        out = specc.task_network(m, 1, x[:1], masks=masks)(x)
    _close(out, ref)


def test_clarena_base_classes(tmp_path):
    """`--base clarena` classes: CLArena's HAT base, HAT blocks with their own per-task batch norms."""
    from clarena_client.loader import ClarenaUnavailable, SpeccCompiler, import_clarena

    try:
        import_clarena()
        cls = SpeccCompiler(tmp_path).module("resnet18_hat").HATMaskResNet18
    except ClarenaUnavailable as e:
        pytest.skip(str(e))
    m = _train_ish(cls(input_channels=3, output_dim=512, gate="sigmoid", batch_normalization="independent"))
    _checked(m, torch.randn(2, 3, 32, 32))


def test_refusals():
    m = _train_ish(HATMaskMLP(input_dim=6, hidden_dims=[8], output_dim=4, gate="sigmoid"))
    with pytest.raises(ValueError, match="task 2 has no stored mask"):
        specc.task_network(m, 2, torch.randn(1, 6))
    with pytest.raises(TypeError, match="not a masked backbone"):
        specc.task_network(nn.Linear(3, 3), 1, torch.randn(1, 3))


# -- written out: source (torch only) and ONNX (checked by onnxruntime) ------------------------------

def _load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_source_with_weights_file_equals_the_network(tmp_path, resnet18):
    from specc.runtime.task_network.source import module_source, weights_bytes

    x = torch.randn(2, 3, 32, 32)
    net = specc.task_network(resnet18, 1, x[:1])
    (tmp_path / "task1.py").write_text(module_source(net, "ResNet-18 task 1", "task1.pt"))
    (tmp_path / "task1.pt").write_bytes(weights_bytes(net))
    program = torch.export.export(net, (x,))  # the task network is one graph for torch.export too
    with torch.no_grad():
        assert torch.equal(program.module()(x), net(x))
    loaded = _load_module(tmp_path / "task1.py", "task1").load()
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    torch.save(x, tmp_path / "x.pt")
    code = ("import sys; sys.modules['specc'] = None; sys.modules['lark'] = None; "
            f"sys.path.insert(0, {str(tmp_path)!r}); import torch, task1; "
            f"print(float(task1.load()(torch.load({str(tmp_path / 'x.pt')!r})).abs().sum()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr  # it imports torch only
    assert float(done.stdout) == pytest.approx(float(net(x).detach().abs().sum()), rel=1e-6)
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in net.parameters())


def test_source_refuses_a_module_whose_extra_repr_is_not_constructor_arguments(monkeypatch):
    from specc.runtime.task_network.source import _constructor

    assert _constructor(nn.ReLU(inplace=True)) == "nn.ReLU(inplace=True)"
    # a class outside the catalogue's table is written from its extra_repr(): "f(1) + (2)" parses,
    # but as an addition, not a call: refused as not writable, not an AttributeError
    monkeypatch.setattr(nn.Flatten, "extra_repr", lambda self: "1) + (2")
    with pytest.raises(ValueError, match="holding Flatten cannot be written as source"):
        _constructor(nn.Flatten())


needs_onnx = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx")
                                is None, reason="onnx and onnxruntime (the `test` extra) are not installed")


def _onnx_close(net, x, batch):
    from specc.runtime.task_network.onnx import onnx_bytes, run_onnx

    model = onnx_bytes(net, x[:1])
    with torch.no_grad():
        ref = net(batch)
    _close(run_onnx(model, batch), ref)  # another batch size than exported with: the batch is dynamic


@needs_onnx
def test_onnx_mlp_hat():
    m = _train_ish(HATMaskMLP(input_dim=20, hidden_dims=[32, 24], output_dim=16, gate="sigmoid",
                              batch_normalization="independent"))
    x = torch.randn(1, 20)
    _onnx_close(specc.task_network(m, 1, x), x, torch.randn(5, 20))


@needs_onnx
def test_onnx_resnet18_hat(resnet18):
    x = torch.randn(1, 3, 32, 32)
    _onnx_close(specc.task_network(resnet18, 1, x), x, torch.randn(3, 3, 32, 32))


@needs_onnx
def test_onnx_wsn():
    m = _train_ish(WSNMaskMLP(input_dim=20, hidden_dims=[32, 24], output_dim=16))
    x = torch.randn(1, 20)
    _onnx_close(specc.task_network(m, 1, x, masks=_wsn_masks(m)), x, torch.randn(4, 20))


@needs_onnx
def test_cli_export_task(tmp_path, capsys):
    from specc.cli import main

    m = _train_ish(HATMaskMLP(input_dim=20, hidden_dims=[32, 24], output_dim=16, gate="sigmoid",
                              batch_normalization="independent"))
    ckpt = tmp_path / "ckpt.pt"
    specc.save_checkpoint(m, ckpt)
    base = ["export", str(SPECS / "mlp_hat.cl"), "-D", "input_dim=20", "-D", "hidden_dims=[32, 24]",
            "-D", "output_dim=16", "-D", 'gate="sigmoid"', "-D", 'batch_normalization="independent"']
    args = base + ["--task", "1", "--checkpoint", str(ckpt), "--input-shape", "20"]
    assert main(args + ["-o", str(tmp_path / "net.py"), "--onnx", str(tmp_path / "net.onnx")]) == 0
    x = torch.randn(6, 20)
    with torch.no_grad():
        ref = m(x, "test", test_task_id=1)[0]
        _close(_load_module(tmp_path / "net.py", "net").load()(x), ref)
    from specc.runtime.task_network.onnx import run_onnx

    _close(run_onnx((tmp_path / "net.onnx").read_bytes(), x), ref)
    # a checkpoint that is not specc's, or that holds objects beyond tensors: refused, nothing written
    torch.save({"state_dict": {}, "x": nn.Linear(2, 2)}, tmp_path / "bad.pt")
    capsys.readouterr()
    assert main(base + ["--task", "1", "--checkpoint", str(tmp_path / "bad.pt"), "--input-shape", "20",
                        "-o", str(tmp_path / "bad_out.py")]) == 2
    assert "cannot read the checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "bad_out.py").exists()
    assert main(base + ["--task", "1", "-o", str(tmp_path / "x.py")]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert main(args[:-1] + ["21", "-o", str(tmp_path / "x.py")]) == 2  # a wrong input shape: one line
    err = capsys.readouterr().err
    assert err.startswith("specc: error: the network does not run on inputs of shape (21,)") and "Traceback" not in err
    assert not (tmp_path / "x.py").exists()


_POOL_SPEC = """
network PoolNet() {
    input image(3, 8, 8)
    conv: conv2d(4, kernel=3, padding=1) -> act: ReLU() -> record
    pool: avgpool2d(3, stride=2, padding=1, ceil_mode=true, count_include_pad=false) -> flatten
    head: linear(6) -> head_act: ReLU() -> record
}
backbone HATPoolNet = PoolNet
mask hat()
"""


def test_cli_export_task_writes_every_pool_argument(tmp_path):
    """avgpool2d's ceil_mode and count_include_pad are not in AvgPool2d's extra_repr(): the written
    module must still hold them (with ceil_mode the 8x8 map pools to 5x5, not 4x4)."""
    from specc.cli import main

    spec = tmp_path / "pool_hat.cl"
    spec.write_text(_POOL_SPEC)
    m = _train_ish(specc.builder.build(spec, gate="sigmoid"))
    specc.save_checkpoint(m, tmp_path / "ckpt.pt")
    assert main(["export", str(spec), "-D", 'gate="sigmoid"', "--task", "1", "--checkpoint",
                 str(tmp_path / "ckpt.pt"), "--input-shape", "3,8,8", "-o", str(tmp_path / "net.py")]) == 0
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        net = _checked(m, x)
        assert torch.equal(_load_module(tmp_path / "net.py", "pool_net").load()(x), net(x))


def test_source_refuses_a_module_its_written_arguments_do_not_rebuild(monkeypatch):
    from specc.runtime.task_network.source import _constructor

    assert _constructor(nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)) == \
        "nn.AvgPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)"
    # a class outside the catalogue's table is written from extra_repr(), which here leaves one out
    monkeypatch.setattr(nn.Softmin, "extra_repr", lambda self: "")
    with pytest.raises(ValueError, match="holding Softmin cannot be written as source"):
        _constructor(nn.Softmin(dim=1))


def test_amnesiac_hat_checkpoint_with_backups(tmp_path):
    """AmnesiacHAT's normal state holds backup backbones (instantiate_backup_backbones): its
    checkpoint loads into a fresh backbone, through the API and `export --task`."""
    from specc.cli import main
    from specc.runtime.task_network.checkpoint import load

    kwargs = {"input_dim": 20, "hidden_dims": [32, 24], "output_dim": 16, "gate": "sigmoid"}
    m = _train_ish(AmnesiacHATMLP(**kwargs))
    m.instantiate_backup_backbones([1])
    specc.save_checkpoint(m, tmp_path / "ckpt.pt")
    fresh = AmnesiacHATMLP(**kwargs)
    load(fresh, tmp_path / "ckpt.pt")
    x = torch.randn(5, 20)
    with torch.no_grad():
        ref = m(x, "test", test_task_id=1)[0]
        _close(specc.task_network(fresh.eval(), 1, x[:1])(x), ref)
    args = ["export", str(SPECS / "mlp_amnesiac_hat.cl"), "-D", "input_dim=20", "-D", "hidden_dims=[32, 24]",
            "-D", "output_dim=16", "-D", 'gate="sigmoid"', "--task", "1", "--checkpoint", str(tmp_path / "ckpt.pt"),
            "--input-shape", "20", "-o", str(tmp_path / "net.py")]
    assert main(args) == 0
    with torch.no_grad():
        _close(_load_module(tmp_path / "net.py", "amnesiac_net").load()(x), ref)


def test_cli_export_task_refuses_a_weights_name_for_the_module(tmp_path, capsys):
    from specc.cli import main

    m = _train_ish(HATMaskMLP(input_dim=6, hidden_dims=[8], output_dim=4, gate="sigmoid"))
    specc.save_checkpoint(m, tmp_path / "ckpt.pt")
    capsys.readouterr()
    assert main(["export", str(SPECS / "mlp_hat.cl"), "-D", "input_dim=6", "-D", "hidden_dims=[8]", "-D",
                 "output_dim=4", "-D", 'gate="sigmoid"', "--task", "1", "--checkpoint", str(tmp_path / "ckpt.pt"),
                 "--input-shape", "6", "-o", str(tmp_path / "task.pt")]) == 2
    assert capsys.readouterr().err == \
        "specc: error: -o names the module (OUT.py); its weights go to OUT.pt\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_cli_export_task_keeps_ctrl_c_held_once_written(tmp_path):
    """As every writer of the `specc` command: once the files are written, a Ctrl-C is held back
    until the process exits (it would report a finished export as interrupted)."""
    import signal

    from specc.cli import main

    m = _train_ish(HATMaskMLP(input_dim=6, hidden_dims=[8], output_dim=4, gate="sigmoid"))
    specc.save_checkpoint(m, tmp_path / "ckpt.pt")
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    try:
        assert main(["export", str(SPECS / "mlp_hat.cl"), "-D", "input_dim=6", "-D", "hidden_dims=[8]", "-D",
                     "output_dim=4", "-D", 'gate="sigmoid"', "--task", "1", "--checkpoint", str(tmp_path / "ckpt.pt"),
                     "--input-shape", "6", "-o", str(tmp_path / "net.py")], command=True) == 0
        assert signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
