"""Gradients and masks of the compiled WSN backbones (generated classes).

* a parameter entry whose mask is 0 gets exactly zero gradient;
* forward never modifies the stored parameters (train and eval mode, every stage);
* the scores of every weighted layer of WSNMaskResNet18 get finite, non-zero gradients;
* the score gradient is the straight-through rule: d loss / d mask (checked against autograd on a
  hand-written masked MLP);
* the kept fraction per layer is the gate's definition (torch.quantile) for c in {0.1, 0.5, 0.9};
* a conv weight mask laid out as (out, in*k*k) is applied in the weight's memory order."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from generated.mlp_wsn import WSNMaskMLP
from generated.resnet18_wsn import WSNMaskResNet18


def snapshot(m: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in m.named_parameters()}


def assert_unchanged(m: nn.Module, before: dict[str, torch.Tensor]) -> None:
    now = dict(m.named_parameters())
    assert list(now) == list(before)
    for n, p in now.items():
        assert torch.equal(p.detach(), before[n]), n


def projection_loss(f: torch.Tensor) -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    return (f * torch.randn(f.shape, generator=g)).sum()


def reference_mask(scores: torch.Tensor, c: float) -> torch.Tensor:
    return (scores >= torch.quantile(scores.detach().flatten(), 1 - c)).to(scores.dtype)


# ---------------------------------------------------------------------------------------------
# MLP
# ---------------------------------------------------------------------------------------------


def make_mlp(**kw) -> WSNMaskMLP:
    torch.manual_seed(0)
    args = dict(input_dim=20, hidden_dims=[32, 16], output_dim=8)
    m = WSNMaskMLP(**{**args, **kw})
    with torch.no_grad():  # random biases far from zero so every masked product matters
        for layer in m.fc:
            if layer.bias is not None:
                layer.bias.copy_(torch.randn(layer.bias.shape))
    return m


@pytest.mark.parametrize("kw", [{}, dict(bias=False), dict(activation_layer=nn.Tanh, dropout=0.2)])
def test_mlp_masked_entries_get_zero_grad(kw):
    m = make_mlp(**kw)
    m.train()
    x = torch.randn(16, 20)
    before = snapshot(m)
    f, wm, bm, _ = m(x, "train", 0.5)
    assert_unchanged(m, before)
    projection_loss(f).backward()
    for i, name in enumerate(m.weighted_layer_names):
        layer = m.fc[i]
        w_mask = wm[name].detach()
        assert bool((layer.weight.grad[w_mask == 0] == 0).all()), name
        assert bool((layer.weight.grad[w_mask == 1] != 0).any()), name
        if layer.bias is not None:
            assert bool((layer.bias.grad[bm[name] == 0] == 0).all()), name
            assert bool((layer.bias.grad[bm[name] == 1] != 0).any()), name
            assert m.bias_score_t[name].weight.grad is not None
        else:
            # the bias mask is computed but unused: no gradient reaches the bias scores
            g = m.bias_score_t[name].weight.grad
            assert g is None or bool((g == 0).all()), name


@pytest.mark.parametrize("c", [0.5, 0.2])
@pytest.mark.parametrize("activation", [nn.ReLU, nn.Tanh])
def test_mlp_score_grad_is_straight_through(c, activation):
    """score.grad == d loss / d mask, the mask treated as an independent input of a hand-written
    masked MLP (linear(x, W * Mw, b * Mb) -> activation)."""
    m = make_mlp(activation_layer=activation)
    m.train()
    x = torch.randn(16, 20)
    f, wm, bm, _ = m(x, "train", c)
    projection_loss(f).backward()

    mw = {n: wm[n].detach().clone().requires_grad_() for n in m.weighted_layer_names}
    mb = {n: bm[n].detach().clone().requires_grad_() for n in m.weighted_layer_names}
    h = x
    for i, n in enumerate(m.weighted_layer_names):
        h = activation()(F.linear(h, m.fc[i].weight.detach() * mw[n], m.fc[i].bias.detach() * mb[n]))
    assert torch.equal(h, f.detach())
    loss = projection_loss(h)
    grads = torch.autograd.grad(loss, [*mw.values(), *mb.values()])
    gw, gb = grads[: len(mw)], grads[len(mw):]
    for n, g_w, g_b in zip(m.weighted_layer_names, gw, gb):
        assert torch.equal(m.weight_score_t[n].weight.grad, g_w), n
        assert torch.equal(m.bias_score_t[n].weight.grad, g_b.unsqueeze(0)), n
        assert bool((g_w != 0).any()), n


def test_mlp_forward_never_modifies_parameters():
    m = make_mlp(dropout=0.3)
    x = torch.randn(4, 20)
    before = snapshot(m)
    for train_mode in (True, False):
        m.train(train_mode)
        for stage in ("train", "validation"):
            _, wm, bm, _ = m(x, stage, 0.5)
            assert_unchanged(m, before)
        m(x, "test", 0.5, test_mask=({k: v.detach() for k, v in wm.items()},
                                     {k: v.detach() for k, v in bm.items()}))
        assert_unchanged(m, before)


@pytest.mark.parametrize("c", [0.1, 0.5, 0.9])
def test_mlp_kept_fraction_is_quantile_definition(c):
    m = make_mlp()
    wm, bm = m.get_mask("train", c)
    for n in m.weighted_layer_names:
        for mask, scores in ((wm[n], m.weight_score_t[n].weight), (bm[n], m.bias_score_t[n].weight[0])):
            assert torch.equal(mask, reference_mask(scores, c)), n
            k, total = int(mask.sum()), mask.numel()
            assert abs(k - (c * (total - 1) + 1)) <= 1, (n, k, total)


# ---------------------------------------------------------------------------------------------
# ResNet18
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return WSNMaskResNet18(input_channels=3, output_dim=512)


def test_resnet18_grads_on_every_layer(resnet):
    """Default model (independent bn, no bias): after one train-stage backward, every layer's weight
    scores have finite, non-zero gradients and every masked weight entry has zero gradient. The
    forward leaves the parameters untouched."""
    m = resnet
    m.zero_grad(set_to_none=True)
    m.setup_task_id(1)
    m.train()
    before = snapshot(m)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    f, wm, bm, acts = m(x, "train", 0.5)
    assert_unchanged(m, before)
    assert list(wm) == list(bm) == m.weighted_layer_names
    # the shortcut convs have masks but no activation of their own (the block's output is recorded
    # under its conv2)
    assert list(acts) == [n for n in m.weighted_layer_names if not n.endswith("identity_downsample")]
    projection_loss(f).backward()
    assert len(m.weighted_layer_names) == 20
    for n in m.weighted_layer_names:
        g = m.weight_score_t[n].weight.grad
        assert g is not None and bool(torch.isfinite(g).all()), n
        assert bool((g != 0).any()), n
        conv = m.get_layer_by_name(n)
        mask = wm[n].detach().view_as(conv.weight)
        assert bool((conv.weight.grad[mask == 0] == 0).all()), n
        assert bool((conv.weight.grad[mask == 1] != 0).any()), n
        # no conv has a bias: its bias mask is computed and ignored
        assert tuple(bm[n].shape) == (conv.weight.shape[0],)
        gb = m.bias_score_t[n].weight.grad
        assert gb is None or bool((gb == 0).all()), n
    m.zero_grad(set_to_none=True)


def test_resnet18_with_bias_bias_scores_get_grads():
    """bias=True, no batch norm: the bias scores of every conv with a bias get finite, non-zero
    gradients, and masked bias entries get zero gradient; the shortcut convs have no bias."""
    torch.manual_seed(1)
    m = WSNMaskResNet18(input_channels=3, output_dim=512, batch_normalization=None, bias=True)
    m.train()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    before = snapshot(m)
    f, wm, bm, _ = m(x, "train", 0.5)
    assert_unchanged(m, before)
    projection_loss(f).backward()
    for n in m.weighted_layer_names:
        conv = m.get_layer_by_name(n)
        assert bool((m.weight_score_t[n].weight.grad != 0).any()), n
        gb = m.bias_score_t[n].weight.grad
        if n.endswith("identity_downsample"):
            assert conv.bias is None
            assert gb is None or bool((gb == 0).all()), n
            continue
        assert conv.bias is not None, n
        assert gb is not None and bool(torch.isfinite(gb).all()) and bool((gb != 0).any()), n
        assert bool((conv.bias.grad[bm[n] == 0] == 0).all()), n


def test_resnet18_forward_never_modifies_parameters(resnet):
    m = resnet
    m.setup_task_id(1)
    x = torch.randn(2, 3, 32, 32)
    before = snapshot(m)
    wm = {n: torch.ones_like(m.weight_score_t[n].weight) for n in m.weighted_layer_names}
    bm = {n: torch.ones(m.bias_score_t[n].weight.shape[1]) for n in m.weighted_layer_names}
    for train_mode in (True, False):
        m.train(train_mode)
        with torch.no_grad():
            m(x, "validation", 0.3)
        assert_unchanged(m, before)
        m(x, "test", 0.3, test_mask=(wm, bm))
        assert_unchanged(m, before)


@pytest.mark.parametrize("c", [0.1, 0.5, 0.9])
def test_resnet18_kept_fraction_is_quantile_definition(resnet, c):
    m = resnet
    with torch.no_grad():
        wm, bm = m.get_mask("train", c)
    for n in m.weighted_layer_names:
        s = m.weight_score_t[n].weight
        assert torch.equal(wm[n], reference_mask(s, c)), n
        k, total = int(wm[n].sum()), s.numel()
        assert abs(k - (c * (total - 1) + 1)) <= 1, (n, k, total)
        assert torch.equal(bm[n], reference_mask(m.bias_score_t[n].weight[0], c)), n


def test_conv_mask_layout_is_weight_memory_order():
    """A (out, in*k*k) mask must multiply weight.view(out, -1) entry by entry. Checked on the stem
    conv (7x7, 3 -> 64) and a 3x3 block conv of a net without batch norm and activation, so that
    the recorded activations are the raw masked convolutions; the alternative layouts (the flat
    index read channel-last, or the mask given transposed as (in*k*k, out)) give other results."""
    torch.manual_seed(3)
    m = WSNMaskResNet18(input_channels=3, output_dim=512, batch_normalization=None, activation_layer=None)
    m.eval()
    g = torch.Generator().manual_seed(4)
    wm = {n: torch.ones_like(m.weight_score_t[n].weight) for n in m.weighted_layer_names}
    bm = {n: torch.ones(m.bias_score_t[n].weight.shape[1]) for n in m.weighted_layer_names}
    for n in ("conv1", "conv2x/0/conv1"):
        wm[n] = (torch.rand(wm[n].shape, generator=g) < 0.5).float()
    x = torch.randn(2, 3, 32, 32, generator=g)
    with torch.no_grad():
        _, _, _, acts = m(x, "test", 0.5, test_mask=(wm, bm))

    def alternatives(mask, w):
        o, i, kh, kw = w.shape
        yield mask.view(o, kh, kw, i).permute(0, 3, 1, 2)  # channel-last reading of the flat index
        yield mask.reshape(-1).view(i * kh * kw, o).t().reshape(o, i, kh, kw)  # transposed layout

    c1 = m.conv1
    expect = F.conv2d(x, c1.weight * wm["conv1"].view(64, 3, 7, 7), None, 2, 3)
    assert torch.equal(acts["conv1"], expect)
    for alt in alternatives(wm["conv1"], c1.weight):
        assert not torch.equal(acts["conv1"], F.conv2d(x, c1.weight * alt, None, 2, 3))

    b = m.get_layer_by_name("conv2x/0/conv1")
    inp = F.max_pool2d(acts["conv1"], 3, 2, 1)
    expect = F.conv2d(inp, b.weight * wm["conv2x/0/conv1"].view(64, 64, 3, 3), None, 1, 1)
    assert torch.equal(acts["conv2x/0/conv1"], expect)
    for alt in alternatives(wm["conv2x/0/conv1"], b.weight):
        assert not torch.equal(acts["conv2x/0/conv1"], F.conv2d(inp, b.weight * alt, None, 1, 1))

    # the train stage: the gate's (out, in*k*k) mask zeroes exactly the gradients of weight.view(out, -1)
    m.train()
    f, twm, _, _ = m(x, "train", 0.5)
    projection_loss(f).backward()
    flat_grad = c1.weight.grad.view(64, -1)
    assert bool((flat_grad[twm["conv1"] == 0] == 0).all())
    assert bool((flat_grad[twm["conv1"] == 1] != 0).all())  # no activation: every kept entry matters
