"""WSN on vision transformers (issue 21): `mask wsn(...)` on the ViT specs and `specc.mask(model, "wsn")` on a
hand-written timm-style ViT score every linear (the patch embedding's convolution, qkv, proj, fc1, fc2) and,
with `mask_layer_norms`, every LayerNorm's weight and bias. Checked against an independent functional ViT
(below) that reads the same weights and applies WSN's documented gate (keep the scores >= the (1 - c)
quantile, torch.quantile's definition; straight-through backward): forward and the gradients of every
parameter and score, in the train stage and with stored masks in the test stage."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import specc
from specc.analysis import AnalysisError

SPEC = """include "{lib}"
backbone WSNMaskTinyViT = ViT(img_size=16, patch_size=8, embed_dim=16, depth=2, num_heads=2, qk_norm={qk_norm})
mask wsn(mask_layer_norms = {ln})
"""
LIB = str(__import__("pathlib").Path(__file__).parent.parent / "specs" / "lib" / "vit.cl")


def build(tmp_path, qk_norm=False, ln=False, **kw):
    path = tmp_path / "tiny_vit_wsn.cl"
    path.write_text(SPEC.format(lib=LIB, qk_norm=str(qk_norm).lower(), ln=str(ln).lower()))
    torch.manual_seed(0)
    net = specc.build(str(path), output_dim=16, **kw)
    return net, path


def randomize(net: nn.Module) -> None:
    """Scores and every parameter drawn afresh (LayerNorm weights off 1, biases off 0), so that a mask
    entry left out anywhere changes the result."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)


# -- the independent reference: timm's ViT forward written out, each parameter times its mask ----------

def gate(score: torch.Tensor, c: float) -> torch.Tensor:
    """WSN's gate as documented: 1 where the score is >= the (1 - c) quantile, straight-through."""
    hard = (score >= torch.quantile(score.detach().flatten(), 1 - c)).to(score.dtype)
    return hard + score - score.detach()


def reference(params: dict, scores: dict, x: torch.Tensor, c: float, heads: int, depth: int,
              qk_norm: bool = False, ln: bool = False) -> torch.Tensor:
    """The ViT feature (class token after the final norm) with every scored parameter masked; `params`
    and `scores` by timm's names (`blocks.0.attn.qkv.weight`, score keys with '/')."""
    def w(layer, kind="weight"):
        p = params[f"{layer}.{kind}"]
        key = layer.replace(".", "/")
        if key not in scores:  # the class token, position embedding, and the layer norms unless `ln`
            return p
        return p * gate(scores[key][0 if kind == "weight" else 1], c).reshape(p.shape)

    def norm(t, layer, eps=1e-6):
        return F.layer_norm(t, t.shape[-1:], w(layer), w(layer, "bias"), eps)

    t = F.conv2d(x, w("patch_embed.proj"), w("patch_embed.proj", "bias"), stride=params["patch_embed.proj.weight"].shape[-1])
    t = t.flatten(2).transpose(1, 2)
    t = torch.cat([params["cls_token"].expand(t.shape[0], -1, -1), t], dim=1) + params["pos_embed"]
    for i in range(depth):
        b = f"blocks.{i}"
        h = norm(t, f"{b}.norm1")
        n, d = h.shape[1], h.shape[2]
        q, k, v = F.linear(h, w(f"{b}.attn.qkv"), w(f"{b}.attn.qkv", "bias")) \
            .reshape(h.shape[0], n, 3, heads, d // heads).permute(2, 0, 3, 1, 4).unbind(0)
        if qk_norm:
            q, k = norm(q, f"{b}.attn.q_norm", 1e-5), norm(k, f"{b}.attn.k_norm", 1e-5)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(h.shape[0], n, d)
        t = t + F.linear(a, w(f"{b}.attn.proj"), w(f"{b}.attn.proj", "bias"))
        h = norm(t, f"{b}.norm2")
        h = F.linear(F.gelu(F.linear(h, w(f"{b}.mlp.fc1"), w(f"{b}.mlp.fc1", "bias"))),
                     w(f"{b}.mlp.fc2"), w(f"{b}.mlp.fc2", "bias"))
        t = t + h
    return norm(t, "norm")[:, 0]


def reference_inputs(net: nn.Module):
    """Leaf copies of the network's parameters (timm's names) and scores ((weight, bias) per layer)."""
    params = {n: p.detach().clone().requires_grad_() for n, p in net.named_parameters()
              if "score_t" not in n}
    scores = {name: (net.weight_score_t[name].weight.detach().clone().requires_grad_(),
                     net.bias_score_t[name].weight.detach().clone().squeeze(0).requires_grad_())
              for name in net.weighted_layer_names}
    return params, scores


def probe_loss(f: torch.Tensor) -> torch.Tensor:
    return (f * torch.randn(f.shape, generator=torch.Generator().manual_seed(5))).sum()


def assert_matches_reference(net, forward, c, heads, depth, qk_norm=False, ln=False):
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    params, scores = reference_inputs(net)
    expected = reference(params, scores, x, c, heads, depth, qk_norm, ln)
    got = forward(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    probe_loss(expected).backward()
    probe_loss(got).backward()
    for name, p in net.named_parameters():
        if "score_t" in name:
            continue
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, params[name].grad, rtol=0, atol=1e-5, msg=name)
    for layer, (ws, bs) in scores.items():
        torch.testing.assert_close(net.weight_score_t[layer].weight.grad, ws.grad.reshape(ws.shape), rtol=0,
                                   atol=1e-5, msg=layer)
        torch.testing.assert_close(net.bias_score_t[layer].weight.grad.squeeze(0), bs.grad, rtol=0, atol=1e-5,
                                   msg=layer)


# -- the spec ----------------------------------------------------------------------------------------

def expected_names(depth, ln=False):
    names = ["patch_embed/proj"]
    for i in range(depth):
        b = f"blocks/{i}"
        # (qk-norm's LayerNorms belong to the spec's attention step: never scored)
        names += ([f"{b}/norm1"] if ln else []) + [f"{b}/attn/qkv", f"{b}/attn/proj"] \
            + ([f"{b}/norm2"] if ln else []) + [f"{b}/mlp/fc1", f"{b}/mlp/fc2"]
    return names + (["norm"] if ln else [])


@pytest.mark.parametrize("qk_norm, ln", [(False, False), (True, False), (False, True), (True, True)])
def test_every_linear_scored_and_the_front_end_says_so(tmp_path, qk_norm, ln):
    from specc.frontend.elaborate import elaborate
    from specc.frontend.facts import analyse
    from specc.frontend.load import load_program

    net, path = build(tmp_path, qk_norm, ln)
    assert net.weighted_layer_names == expected_names(2, ln)
    for name in net.weighted_layer_names:
        p = net.get_submodule(name.replace("/", ".")).weight
        shape = (1, p.numel()) if p.dim() == 1 else (p.shape[0], p[0].numel())
        assert tuple(net.weight_score_t[name].weight.shape) == shape, name
    # `specc show` and the generated docstring list what the runtime scores
    static = analyse(elaborate(load_program(str(path)), {"output_dim": 16})).weighted_layer_names
    assert static == net.weighted_layer_names


@pytest.mark.parametrize("c", [0.3, 0.8])
@pytest.mark.parametrize("qk_norm, ln", [(False, False), (True, True)])
def test_train_stage_equals_the_reference(tmp_path, c, qk_norm, ln):
    net, _ = build(tmp_path, qk_norm, ln)
    randomize(net)
    net.setup_task_id(1)
    assert_matches_reference(net, lambda x: net(x, "train", mask_percentage=c)[0], c, 2, 2, qk_norm, ln)


def test_test_stage_uses_the_stored_masks(tmp_path):
    net, _ = build(tmp_path, ln=True)
    randomize(net)
    net.setup_task_id(1)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        trained, weight_mask, bias_mask, _ = net(x, "train", mask_percentage=0.5)
        stored = ({k: v.clone() for k, v in weight_mask.items()}, {k: v.clone() for k, v in bias_mask.items()})
        assert stored[0]["blocks/0/norm1"].shape == net.blocks[0].norm1.weight.shape
        for emb in list(net.weight_score_t.values()) + list(net.bias_score_t.values()):
            emb.weight.normal_()  # the next task's scores: the stored masks must not follow them
        assert not torch.equal(net(x, "train", mask_percentage=0.5)[0], trained)
        net.eval()
        assert torch.equal(net(x, "test", mask_percentage=0.5, test_mask=stored)[0], trained)


def test_attention_dropout_follows_the_mode(tmp_path):
    """timm's fused attention drops attention weights only in training: the traced forward keeps that
    (fx would record the mode it traced in)."""
    vit = "ViT(img_size=16, patch_size=8, embed_dim=16, depth=1, num_heads=2, attn_drop_rate=0.5)"
    (tmp_path / "drop.cl").write_text(f'include "{LIB}"\nbackbone D = {vit}\nmask wsn()\n')
    (tmp_path / "plain.cl").write_text(f'include "{LIB}"\nbackbone P = {vit}\n')
    net = specc.build(str(tmp_path / "drop.cl"), output_dim=16)
    plain = specc.build(str(tmp_path / "plain.cl"), output_dim=16)
    plain.load_state_dict(net.state_dict(), strict=False)
    net.setup_task_id(1)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert not torch.equal(net(x, "train", mask_percentage=1.0)[0], net(x, "train", mask_percentage=1.0)[0])
        net.eval()
        plain.eval()
        assert torch.equal(net(x, "train", mask_percentage=1.0)[0], plain(x)[0])


def test_the_committed_vit_spec_scores_every_linear():
    from generated.vit_ti16_wsn import WSNMaskViT_Ti16

    net = WSNMaskViT_Ti16(output_dim=192, img_size=32)
    assert net.weighted_layer_names == expected_names(12)
    net.setup_task_id(1)
    feature, weight_mask, _, _ = net(torch.randn(1, 3, 32, 32), "train", mask_percentage=0.5)
    assert feature.shape == (1, 192) and set(weight_mask) == set(expected_names(12))


# -- specc.mask on a hand-written timm-style ViT ------------------------------------------------------

class Attention(nn.Module):
    def __init__(self, dim, heads, custom=None):
        super().__init__()
        self.heads, self.custom = heads, custom
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        if custom == "functional":
            self.extra = nn.Parameter(torch.randn(dim, dim))

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        if self.custom == "data_dependent" and q.abs().max() > 10:  # a branch on values: not traceable
            q = q / 10
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        if self.custom == "functional":
            y = F.linear(y, self.extra)  # a weight WSN would never see: refused
        return self.proj(y)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, custom=None):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads, custom)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=1e-6), Mlp(dim, 4 * dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class HandViT(nn.Module):
    """timm's VisionTransformer layout, written by hand: class token, position embedding, pre-norm blocks."""

    def __init__(self, dim=16, depth=2, heads=2, patch=8, img=16, custom=None):
        super().__init__()
        self.patch_embed = PatchEmbed(dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (img // patch) ** 2 + 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, custom if i == 1 else None) for i in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.norm(self.blocks(x))[:, 0]


@pytest.mark.parametrize("ln", [False, True])
def test_specc_mask_on_a_hand_written_vit_equals_the_reference(ln):
    torch.manual_seed(0)
    plain = HandViT()
    randomize(plain)
    x = torch.randn(2, 3, 16, 16)
    expected = plain(x)
    net = specc.mask(plain, "wsn", output_dim=16, mask_layer_norms=ln)
    assert net.weighted_layer_names == expected_names(2, ln=ln)
    net.setup_task_id(1)
    with torch.no_grad():  # every score kept: the plain network's values
        assert torch.equal(net(x, "train", mask_percentage=1.0)[0], expected)
    randomize(net)
    assert_matches_reference(net, lambda x: net(x, "train", mask_percentage=0.4)[0], 0.4, 2, 2, ln=ln)


def test_a_data_dependent_attention_is_refused_with_its_module_and_line():
    model = HandViT(custom="data_dependent")
    keys = list(model.state_dict())
    with pytest.raises(ValueError) as err:
        specc.mask(model, "wsn")
    message = str(err.value)
    assert "blocks.1.attn" in message and "test_wsn_vit.py" in message and "q.abs().max() > 10" in message
    assert "control flow" in message
    assert type(model) is HandViT and list(model.state_dict()) == keys


def test_a_weight_used_outside_a_module_is_refused_with_its_line():
    model = HandViT(custom="functional")
    with pytest.raises(AnalysisError) as err:
        specc.mask(model, "wsn")
    message = str(err.value)
    assert "blocks.1.attn.extra" in message and "test_wsn_vit.py" in message and "F.linear(y, self.extra)" in message
    assert "nn.Linear" in message
    assert type(model) is HandViT


@pytest.mark.parametrize("ln", [False, True])
def test_specc_mask_on_timms_own_vision_transformer(ln):
    from timm_reference import vision_transformer

    vt = vision_transformer()
    if vt is None:
        pytest.skip("timm is not installed (pyproject's `test` extra)")
    torch.manual_seed(0)
    model = vt.VisionTransformer(img_size=16, patch_size=8, embed_dim=16, depth=2, num_heads=2, num_classes=0,
                                 attn_drop_rate=0.25)
    randomize(model)
    net = specc.mask(model, "wsn", output_dim=16, mask_layer_norms=ln)
    assert net.weighted_layer_names == expected_names(2, ln=ln)
    net.setup_task_id(1)
    net.eval()  # no attention dropout (traced in training mode: the mode is read again at run time)
    assert_matches_reference(net, lambda x: net(x, "train", mask_percentage=0.6)[0], 0.6, 2, 2, ln=ln)


def _two_tasks(tmp_path, ln: bool):
    """Task 1 trained, its masks and test-stage feature kept; task 2 trained with WSN's gradient rule
    (the cumulative masks of task 1 freeze its entries, specc.runtime.rules). The class token and the
    position embedding, which WSN does not score, are frozen. Returns task 1's feature before and after."""
    from specc.runtime.rules import clip_wsn_gradients

    net, _ = build(tmp_path, ln=ln)
    net.cls_token.requires_grad_(False)
    net.pos_embed.requires_grad_(False)
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(7))
    masks = None
    for task in (1, 2):
        net.setup_task_id(task)
        net.initialize_parameter_score("default")
        net.train()
        for _ in range(2):
            for p in net.parameters():
                p.grad = None
            probe_loss(net(x, "train", mask_percentage=0.5)[0]).backward()
            if masks is not None:
                clip_wsn_gradients(net, *masks)
            with torch.no_grad():
                for p in net.parameters():
                    if p.grad is not None:
                        p.add_(p.grad, alpha=-0.05)
        if masks is None:
            with torch.no_grad():
                masks = tuple({k: v.clone() for k, v in m.items()} for m in net.get_mask("train", 0.5))
                net.eval()
                before = net(x, "test", mask_percentage=0.5, test_mask=masks)[0]
    net.eval()
    with torch.no_grad():
        return before, net(x, "test", mask_percentage=0.5, test_mask=masks)[0]


def test_task1_survives_task2_when_layer_norms_are_masked(tmp_path):
    before, after = _two_tasks(tmp_path, ln=True)
    assert torch.equal(before, after)


def test_shared_layer_norms_are_a_source_of_forgetting(tmp_path):
    """The control: without `mask_layer_norms` task 2 trains the LayerNorms task 1 used."""
    before, after = _two_tasks(tmp_path, ln=False)
    assert not torch.equal(before, after)
