"""HAT on a vision transformer (issue 21), with HAT-CL's placement: unit masks on the outputs of the
patch projection, qkv, proj, fc1 and fc2; per-task LayerNorms, class token and position embedding.

Checked without specc's analysis: (1) a unit masked to 0 cannot affect the network (its layer's
weights for that unit are changed; the output must not change at all) and arrives as exactly 0
where the placement promises it (fc1's units in fc2's input, v's units in the heads' output that
proj reads, proj's and fc2's units in what they add to the residual stream); (2) the masked forward
and its gradients equal, bit for bit, a hand-written plain-PyTorch ViT with the same weights and HAT's formulas
(mask = sigmoid(s * e), s annealed as in the seed's docs); (3) the parameter-wise measures equal a
direct loop with proj's inputs being v's units of qkv; (4) the per-task parts of task 0 are not
changed by training task 1.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO

import specc
from specc.analysis import AnalysisError
from specc.frontend.errors import SpecError
from specc.runtime import tokens

VIT = REPO / "specs" / "lib" / "vit.cl"
D, HEADS, DEPTH, IMG, PATCH = 12, 3, 2, 8, 4


def _spec(tmp_path, extra: str = "", mask: str = "mask hat()"):
    p = tmp_path / "hat_vit.cl"
    p.write_text(f'include "{VIT}"\nbackbone V = ViT(img_size={IMG}, patch_size={PATCH}, embed_dim={D}, '
                 f"depth={DEPTH}, num_heads={HEADS}{extra})\n{mask}\n", encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def hat_vit_cls(tmp_path_factory):
    path = _spec(tmp_path_factory.mktemp("hatvit"), ", fused_attn=false")
    return lambda **kw: specc.build(path, output_dim=D, gate="sigmoid", **kw)


def _randomize(net, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)


LAYERS = ["patch_embed/proj"] + [f"blocks/{b}/{part}" for b in range(DEPTH)
                                 for part in ("attn/qkv", "attn/proj", "mlp/fc1", "mlp/fc2")]


def test_weighted_layers_and_what_each_reads(hat_vit_cls):
    net = hat_vit_cls()
    assert net.weighted_layer_names == LAYERS
    assert net.batch_normalization == "independent"  # per-task LayerNorms, class token, position embedding
    facts = net._specc_facts
    # proj reads v's units of qkv: units 2D..3D-1; fc2 reads fc1's; qkv and fc1 read a LayerNorm of the
    # residual stream, which carries no layer's units; the patch projection reads the image
    (seg,) = facts.input_segments["blocks/0/attn/proj"]
    assert (seg.owner, seg.size, seg.start) == ("blocks/0/attn/qkv", D, 2 * D)
    assert facts.graph_preceding["blocks/1/mlp/fc2"] == ["blocks/1/mlp/fc1"]
    for name in ("patch_embed/proj", "blocks/0/attn/qkv", "blocks/1/attn/qkv", "blocks/0/mlp/fc1"):
        assert facts.graph_preceding[name] == []


def _masks(net, zero: dict[str, list[int]]):
    out = {}
    for name in net.weighted_layer_names:
        m = torch.ones(net.get_layer_by_name(name).weight.shape[0])
        m[zero.get(name, [])] = 0.0
        out[name] = m
    return out


def _test_forward(net, x, masks):
    net.masks[0] = masks
    net.eval()
    return net(x, stage="test", test_task_id=0)[0]


def test_a_masked_unit_cannot_affect_the_output_and_arrives_as_zero(hat_vit_cls):
    torch.manual_seed(0)
    net = hat_vit_cls()
    _randomize(net)
    net.setup_task_id(0)
    net.store_bn()
    x = torch.randn(3, 3, IMG, IMG)
    # q unit 1, k unit D + 4, v units 2D + 0 and 2D + 7 of qkv; units of every other layer
    zero = {"patch_embed/proj": [2], "blocks/0/attn/qkv": [1, D + 4, 2 * D, 2 * D + 7], "blocks/0/attn/proj": [3],
            "blocks/0/mlp/fc1": [5, 40], "blocks/0/mlp/fc2": [6], "blocks/1/attn/qkv": [0, 2 * D + 11],
            "blocks/1/mlp/fc1": [0]}
    masks = _masks(net, zero)
    seen = {}
    hooks = [net.get_layer_by_name("blocks/0/attn/proj").register_forward_pre_hook(
                 lambda m, a: seen.__setitem__("proj_in", a[0])),
             net.get_layer_by_name("blocks/0/mlp/fc2").register_forward_pre_hook(
                 lambda m, a: seen.__setitem__("fc2_in", a[0])),
             net.blocks[0].attn.proj_drop.register_forward_pre_hook(lambda m, a: seen.__setitem__("attn_out", a[0])),
             net.blocks[0].mlp.drop2.register_forward_pre_hook(lambda m, a: seen.__setitem__("mlp_out", a[0]))]
    before = _test_forward(net, x, masks)
    for h in hooks:
        h.remove()
    assert torch.all(seen["proj_in"][..., [0, 7]] == 0)  # v's masked units: 0 in the heads' output
    assert torch.any(seen["proj_in"][..., 1] != 0)  # (q's and k's do not zero a head feature)
    assert torch.all(seen["fc2_in"][..., [5, 40]] == 0)  # fc1's masked units: 0 into fc2
    assert torch.all(seen["attn_out"][..., 3] == 0)  # proj's masked unit adds 0 to the stream
    assert torch.all(seen["mlp_out"][..., 6] == 0)  # fc2's too
    # every masked unit's weights and bias changed: the output stays the same, bit for bit
    with torch.no_grad():
        for name, units in zero.items():
            layer = net.get_layer_by_name(name)
            layer.weight[units] += 3.0
            layer.bias[units] -= 2.0
    assert torch.equal(_test_forward(net, x, masks), before)
    # the probe can fail: the same change on an unmasked unit changes the output
    with torch.no_grad():
        net.get_layer_by_name("blocks/0/attn/qkv").weight[2] += 3.0
    assert not torch.equal(_test_forward(net, x, masks), before)


def _reference(net, x, s: float):
    """A plain-PyTorch ViT with `net`'s weights and HAT's masks: every weighted layer's output times
    sigmoid(s * e) (its task embedding e), the class token, position embedding and LayerNorms of the
    task (the live ones in training)."""
    masks = {n: torch.sigmoid(s * net.task_embedding_t[n].weight).squeeze(0) for n in net.weighted_layer_names}

    def norm(module, y):
        return F.layer_norm(y, (D,), module.weight, module.bias, module.eps)

    pe = net.patch_embed.proj
    t = F.conv2d(x, pe.weight, pe.bias, stride=PATCH) * masks["patch_embed/proj"].view(1, -1, 1, 1)
    t = t.flatten(2).transpose(1, 2)
    t = torch.cat([net.cls_token.expand(x.shape[0], -1, -1), t], dim=1) + net.pos_embed
    b, n, _ = t.shape
    hd = D // HEADS
    for i, block in enumerate(net.blocks):
        p = f"blocks/{i}/"
        qkv = F.linear(norm(block.norm1, t), block.attn.qkv.weight, block.attn.qkv.bias) * masks[p + "attn/qkv"]
        q, k, v = qkv.reshape(b, n, 3, HEADS, hd).permute(2, 0, 3, 1, 4)
        att = ((q * hd ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, n, D)
        t = t + F.linear(y, block.attn.proj.weight, block.attn.proj.bias) * masks[p + "attn/proj"]
        h = F.gelu(F.linear(norm(block.norm2, t), block.mlp.fc1.weight, block.mlp.fc1.bias) * masks[p + "mlp/fc1"])
        t = t + F.linear(h, block.mlp.fc2.weight, block.mlp.fc2.bias) * masks[p + "mlp/fc2"]
    return norm(net.norm, t)[:, 0]


def test_masked_forward_and_gradients_equal_a_hand_written_reference(hat_vit_cls):
    torch.manual_seed(1)
    net = hat_vit_cls()
    _randomize(net, seed=1)
    with torch.no_grad():
        for e in net.task_embedding_t.values():
            e.weight.copy_(torch.randn(e.weight.shape) * 0.01)
    net.setup_task_id(0)
    x = torch.randn(2, 3, IMG, IMG)
    s_max, batch_idx, num_batches = 400.0, 3, 10
    s = 1 / s_max + (s_max - 1 / s_max) * (batch_idx - 1) / (num_batches - 1)  # the seed's annealing
    ours = net(x, stage="train", s_max=s_max, batch_idx=batch_idx, num_batches=num_batches)[0]
    theirs = _reference(net, x, s)
    assert torch.equal(ours, theirs)  # the same operations in the same order: bit for bit
    params = [p for p in net.parameters() if p.requires_grad]
    g_ours = torch.autograd.grad(ours.square().sum(), params, allow_unused=True)
    g_theirs = torch.autograd.grad(theirs.square().sum(), params, allow_unused=True)
    names = [n for n, p in net.named_parameters() if p.requires_grad]
    for name, a, b in zip(names, g_ours, g_theirs):
        if a is None or b is None:
            assert a is None and b is None, name
            continue
        assert torch.equal(a, b), name
    assert any(n.startswith("task_embedding_t") for n, a in zip(names, g_ours) if a is not None)


def test_parameter_wise_measures_follow_the_attention(hat_vit_cls):
    net = hat_vit_cls()
    g = torch.Generator().manual_seed(3)
    measure = {n: torch.randint(0, 1025, (net.get_layer_by_name(n).weight.size(0),), generator=g).float() / 1024
               for n in net.weighted_layer_names}
    for layer in net.weighted_layer_names:
        w, bias = net.get_layer_measure_parameter_wise(measure, layer, "min")
        own = measure[layer]
        assert torch.equal(bias, own)
        flat = w.reshape(w.shape[0], w.shape[1], -1)
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                if layer.endswith("attn/proj"):  # input j of proj: v's unit j, unit 2D + j of qkv
                    want = min(own[i], measure[layer.replace("proj", "qkv")][2 * D + j])
                elif layer.endswith("mlp/fc2"):
                    want = min(own[i], measure[layer.replace("fc2", "fc1")][j])
                else:  # the image, or a LayerNorm of the residual stream: no layer's units
                    want = own[i]
                assert torch.all(flat[i, j] == want), (layer, i, j)


def _train_step(net, x, task):
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.5)
    net.train()
    feature = net(x, stage="train", s_max=400.0, batch_idx=1, num_batches=2)[0]
    opt.zero_grad()
    feature.square().mean().backward()
    opt.step()


def test_per_task_layernorms_class_token_and_position_embedding(hat_vit_cls):
    torch.manual_seed(2)
    net = hat_vit_cls()
    _randomize(net, seed=2)
    x = torch.randn(4, 3, IMG, IMG)
    net.setup_task_id(0)
    net.initialize_independent_bn()
    _train_step(net, x, 0)
    net.store_mask()
    net.store_bn()
    kept = {k: v.clone() for k, v in net.state_dict().items()
            if k.startswith(("cls_tokens.0", "pos_embeds.0")) or ".norm1s.0." in k or k.startswith("norms.0.")}
    assert {"cls_tokens.0", "pos_embeds.0", "blocks.0.norm1s.0.weight", "norms.0.bias"} <= set(kept)
    assert torch.equal(kept["cls_tokens.0"], net.cls_token.detach())
    net.setup_task_id(1)
    net.initialize_independent_bn()  # CLArena's HAT does this when a task starts
    assert not torch.equal(net.cls_token.detach(), kept["cls_tokens.0"])  # back to the construction values
    _train_step(net, x, 1)
    state = net.state_dict()
    for k, v in kept.items():
        assert torch.equal(state[k], v), k
    assert not torch.equal(net.pos_embed.detach(), kept["pos_embeds.0"])  # the live one did train
    # task 0's test forward reads task 0's copies: changing the live ones changes nothing there
    net.eval()
    before = net(x, stage="test", test_task_id=0)[0]
    with torch.no_grad():
        net.cls_token.add_(1.0)
        net.pos_embed.add_(1.0)
        net.blocks[0].norm1.weight.add_(1.0)
    assert torch.equal(net(x, stage="test", test_task_id=0)[0], before)
    with torch.no_grad():
        net.pos_embeds["0"].add_(1.0)
    assert not torch.equal(net(x, stage="test", test_task_id=0)[0], before)


def test_qk_norm_is_refused_at_its_position(tmp_path):
    with pytest.raises(SpecError, match="cannot mask 'blocks/0/attn' with qk_norm") as e:
        specc.build(_spec(tmp_path, ", qk_norm=true"), output_dim=D, gate="sigmoid")
    attn_line = next(i for i, t in enumerate(VIT.read_text().splitlines(), 1) if "attn: attention(" in t)
    assert e.value.pos.file.endswith("vit.cl") and e.value.pos.line == attn_line


def test_the_avg_pool_variant_masks_the_same_layers(tmp_path):
    net = specc.build(_spec(tmp_path, ', global_pool="avg"'), output_dim=D, gate="sigmoid")
    assert net.weighted_layer_names == LAYERS
    net.setup_task_id(0)
    f = net(torch.randn(2, 3, IMG, IMG), stage="train", s_max=400.0, batch_idx=1, num_batches=2)[0]
    assert f.shape == (2, D) and math.isfinite(f.sum().item())


class _Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1, self.attn = torch.nn.LayerNorm(D), tokens.SelfAttention(D, HEADS)
        self.norm2, self.fc1, self.act, self.fc2 = (torch.nn.LayerNorm(D), torch.nn.Linear(D, 4 * D), torch.nn.GELU(),
                                                    torch.nn.Linear(4 * D, D))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class _HandWritten(torch.nn.Module):
    """A ViT written by hand with specc.runtime.tokens' modules and steps."""

    def __init__(self):
        super().__init__()
        self.patch_embed = tokens.PatchEmbed(3, D, PATCH)
        self.cls_token, self.pos_embed = tokens.class_token(D), tokens.position_embedding(5, D)
        self.blocks, self.norm = torch.nn.Sequential(_Block(), _Block()), torch.nn.LayerNorm(D)

    def forward(self, x):
        x = tokens.add_embedding(tokens.prepend_token(self.patch_embed(x), self.cls_token), self.pos_embed)
        return tokens.select_token(self.norm(self.blocks(x)), 0)


class _TimmStyle(_HandWritten):
    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.norm(self.blocks(x))[:, 0]


def test_specc_mask_on_a_hand_written_vit():
    net = _HandWritten()
    specc.mask(net, "hat")
    assert net.weighted_layer_names == [n.replace("mlp/", "") for n in LAYERS]
    assert net.batch_normalization == "independent" and net._specc_task_parameters == ["cls_token", "pos_embed"]
    net.setup_task_id(0)
    f, _, activations = net(torch.randn(2, 3, IMG, IMG), stage="train", s_max=400.0, batch_idx=1, num_batches=2)
    assert f.shape == (2, D) and list(activations) == net.weighted_layer_names
    # timm's own way of writing the class token is refused, with the line and what to write instead
    with pytest.raises(AnalysisError, match=r"test_hat_vit.py.*prepend_token for a class token"):
        specc.mask(_TimmStyle(), "hat")


def test_the_specs_analysis_agrees_with_the_traced_network(tmp_path, hat_vit_cls):
    """`specc check`/`show` analyse the elaborated spec (attention and patch embedding read as their
    parts); the runtime analyses the traced forward: same layers, same inputs, same mask points."""
    from specc.frontend.elaborate import elaborate
    from specc.frontend.facts import analyse
    from specc.frontend.load import load_program

    path = _spec(tmp_path, ", fused_attn=false")
    net = analyse(elaborate(load_program(path), {"output_dim": D, "gate": "sigmoid"}))
    runtime = hat_vit_cls()._specc_facts
    assert net.weighted_layer_names == runtime.weighted_layer_names == LAYERS
    # (the traced network does not know the image's channel count: None there, 3 in the spec)
    first = "patch_embed/proj"
    assert net.facts.input_segments[first][0].owner is runtime.input_segments[first][0].owner is None
    assert {k: v for k, v in net.facts.input_segments.items() if k != first} == \
        {k: v for k, v in runtime.input_segments.items() if k != first}
    assert net.graph_preceding == runtime.graph_preceding
