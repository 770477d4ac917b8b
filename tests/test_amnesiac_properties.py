"""Properties of AmnesiacHAT's backup path (stage 'train_with_backup'), on the generated classes.

* An all-zero stored mask routes every unit to the main network: the backup path is the main path
  (eval mode). Exact (`torch.equal`) without batch norm or when the current mask is binary; with
  batch norm and a fractional current mask `allclose(atol=1e-6, rtol=1e-6)`, because the main
  path folds the mask into the batch norm (tests/test_hat_parity.py explains the fold).
* An all-one stored mask routes every unit to the backup network: the backup path is the backup
  network's own HAT forward under the current mask (a HAT net with the backup's weights and the
  same task embeddings, stage 'train'). Same tolerances.
* Gradients of a loss on a backup feature reach a backup layer only through the units routed to
  it: weight rows (and batch-norm entries) of units with m_b = 0 get exactly zero gradient, those
  with m_b = 1 a non-zero one; the main layer gets the complement. A shortcut conv follows the
  stored mask of its block's last conv.
* Shared modules are not duplicated: the backup path adds no module to the main network, calls
  the main network's activation / pooling / dropout modules, and never the backup's.
"""
from __future__ import annotations

import pytest
import torch
from test_amnesiac_parity import KINDS, TRAIN_ARGS, make, make_hat, prepare
from torch import nn

ATOL = RTOL = 1e-6


def close(a, b, exact: bool) -> bool:
    if exact:
        return torch.equal(a, b)
    return a.shape == b.shape and torch.allclose(a, b, atol=ATOL, rtol=RTOL)


def built(kind, n_backups=1, **overrides):
    torch.manual_seed(0)
    return prepare(make(kind, **overrides), n_backups)


def x_for(kind, seed=1):
    return torch.randn(*KINDS[kind][-1], generator=torch.Generator().manual_seed(seed))


def set_stored_mask(net, b, value: float):
    net.masks[b] = {k: torch.full_like(v, value) for k, v in net.masks[b].items()}


def saturate_embeddings(net):
    """Current mask exactly binary in float32: sigmoid(+-100 * s) with s = 4 is 1.0 or 0.0."""
    with torch.no_grad():
        for te in net.task_embedding_t.values():
            te.weight.copy_(torch.where(te.weight > 0, 100.0, -100.0))


PROPERTY_CASES = [("mlp", None), ("mlp", "shared"), ("mlp", "independent"), ("resnet18", "shared"),
                  ("resnet18", None)]


@pytest.mark.parametrize("kind,bn", PROPERTY_CASES)
def test_zero_backup_mask_gives_main_path(kind, bn):
    net = built(kind, 2, batch_normalization=bn).eval()
    set_stored_mask(net, 2, 0.0)
    x = x_for(kind)
    f, bf, _, _ = net(x, "train_with_backup", **TRAIN_ARGS)
    assert close(bf[2], f, exact=bn is None), (bf[2] - f).abs().max()
    assert not torch.allclose(bf[1], f, atol=1e-3)  # a mixed mask is a different path
    saturate_embeddings(net)
    f, bf, m, _ = net(x, "train_with_backup", **TRAIN_ARGS)
    assert all(((v == 0) | (v == 1)).all() for v in m.values())
    assert torch.equal(bf[2], f)


@pytest.mark.parametrize("kind,bn", PROPERTY_CASES)
def test_one_backup_mask_gives_backup_network(kind, bn):
    net = built(kind, 2, batch_normalization=bn).eval()
    set_stored_mask(net, 1, 1.0)
    hat = make_hat(kind, batch_normalization=bn).eval()
    hat.setup_task_id(3)
    missing, unexpected = hat.load_state_dict(
        {**net.backup_backbones["1"].state_dict(),
         **{k: v for k, v in net.state_dict().items() if k.startswith("task_embedding_t.")}}, strict=False)
    assert not unexpected
    assert all("_bn" in k and "s." in k for k in missing), missing  # only independent per-task copies
    x = x_for(kind)
    modes = (False, True) if kind == "mlp" else (False,)
    for train in modes:
        net.train(train)
        hat.train(train)
        _, bf, m, _ = net(x, "train_with_backup", **TRAIN_ARGS)
        ef, em, _ = hat(x, "train", **TRAIN_ARGS)
        assert all(torch.equal(m[k], em[k]) for k in em)
        assert close(bf[1], ef, exact=bn is None), (train, (bf[1] - ef).abs().max())


def _routed_layers(net):
    """(stored-mask layer, main module path, backup module path, batch-norm paths or None) for
    every routed layer: each weighted layer, and each shortcut conv with its block's last conv."""
    out = []
    for name in net.weighted_layer_names:
        path = name.replace("/", ".")
        parent, _, leaf = path.rpartition(".")
        if leaf.startswith("conv"):
            bn = (parent + "." if parent else "") + leaf.replace("conv", "conv_bn")
        else:  # fc.<i>
            bn = "fc_bn." + leaf
        out.append((name, path, bn))
    for block_name, block in net.named_modules():
        if hasattr(block, "identity_downsample") and not block_name.startswith("backup_backbones"):
            last = max(k for k in (1, 2, 3) if hasattr(block, f"conv{k}"))
            out.append((f"{block_name}.conv{last}".replace(".", "/"), f"{block_name}.identity_downsample", None))
    return out


@pytest.mark.parametrize("kind", ["mlp", "resnet18"])
def test_gradients_reach_backup_only_through_routed_units(kind):
    # LeakyReLU: no unit is dead, so every routed unit must get a gradient (with ReLU, a channel
    # of the 1x1 conv5x maps can be negative for both samples of the batch and get none, routed or not)
    net = built(kind, 1, batch_normalization="shared", activation_layer=nn.LeakyReLU).train()
    x = x_for(kind)
    _, bf, _, _ = net(x, "train_with_backup", **TRAIN_ARGS)
    weights = torch.randn(bf[1].shape, generator=torch.Generator().manual_seed(2))
    (bf[1] * weights).sum().backward()
    backup = net.backup_backbones["1"]
    layers = _routed_layers(net)
    assert sum(p is None for _, _, p in layers) == (3 if kind == "resnet18" else 0)
    for mask_layer, path, bn in layers:
        m_b = net.masks[1][mask_layer].bool()
        assert m_b.any() and not m_b.all(), mask_layer  # both kinds of units present
        grads = {"backup": backup.get_submodule(path).weight.grad, "main": net.get_submodule(path).weight.grad}
        if bn is not None:
            grads["backup bn"] = backup.get_submodule(bn).weight.grad
            grads["main bn"] = net.get_submodule(bn).weight.grad
        for which, g in grads.items():
            rows = g.reshape(g.size(0), -1).abs().sum(1)
            routed = m_b if which.startswith("backup") else ~m_b
            assert (rows[~routed] == 0).all(), (mask_layer, path, which, "gradient through a unit not routed to it")
            assert (rows[routed] != 0).all(), (mask_layer, path, which, "no gradient through a routed unit")


def _count_calls(modules):
    counts = {}
    for name, mod in modules:
        counts[name] = 0

        def hook(_m, _i, _o, name=name):
            counts[name] += 1

        mod.register_forward_hook(hook)
    return counts


SHARED = (nn.ReLU, nn.Dropout, nn.MaxPool2d, nn.AdaptiveAvgPool2d)


@pytest.mark.parametrize("kind,extra", [("mlp", dict(dropout=0.2)), ("resnet18", {})])
def test_shared_modules_not_duplicated(kind, extra):
    torch.manual_seed(0)
    net = make(kind, batch_normalization="shared", **extra)
    n_hat = len(list(make_hat(kind, batch_normalization="shared", **extra).modules()))
    assert len(list(net.modules())) == n_hat
    prepare(net, 2)

    def main_modules():
        return [(n, m) for n, m in net.named_modules() if not n.startswith("backup_backbones")]

    before = [n for n, _ in main_modules()]
    assert len(before) == n_hat
    shared = [(n, m) for n, m in main_modules() if isinstance(m, SHARED)]
    assert len(shared) >= (6 if kind == "mlp" else 19)
    backup_shared = [(n, m) for n, m in net.backup_backbones.named_modules() if isinstance(m, SHARED)]
    calls = _count_calls(shared)
    backup_calls = _count_calls(backup_shared)
    net(x_for(kind), "train_with_backup", **TRAIN_ARGS)
    assert [n for n, _ in main_modules()] == before
    # each shared module runs once on the main path and once per backup path; the backups' own
    # activation / pooling / dropout modules never run
    assert all(c == 3 for c in calls.values()), calls
    assert all(c == 0 for c in backup_calls.values()), backup_calls


def test_original_backbone_class_is_defined_on_the_class():
    """The seed: `original_backbone_class` is a class attribute of the subclasses."""
    from generated.mlp import MLP
    from generated.mlp_amnesiac_hat import AmnesiacHATMLP

    plain = AmnesiacHATMLP.original_backbone_class
    assert plain is AmnesiacHATMLP.original_backbone_class  # built once
    assert plain.__name__ == "MLP"
    kwargs = dict(input_dim=6, hidden_dims=[5], output_dim=3)
    assert list(plain(**kwargs).state_dict()) == list(MLP(**kwargs).state_dict())
