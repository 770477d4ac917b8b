"""The residual-branch kinds `drop_path` (stochastic depth) and `layer_scale` (specc/core/layers.py,
modules in specc/runtime/tokens.py).

References: timm's DropPath and LayerScale (timm 1.0.15, imported under tests/timm_reference.py's
torchvision stub), torchvision's StochasticDepth(p, "row") as the hand-written peer reference writes
it (tests/reference/peers/efficientnet_b0.py), and the documented formula written out here: in
training each sample is kept with probability 1 - p (a (B, 1, ...) tensor, bernoulli_(1 - p) from
torch's default generator) and divided by 1 - p; the identity in eval and at p = 0. The ViT and
EfficientNet specs that use them are checked in tests/test_vit.py and tests/test_efficientnet.py."""
from __future__ import annotations

import re

import pytest
import torch
from timm_reference import vision_transformer
from torch import nn

from reference.peers import efficientnet_b0 as ref_mod

import specc
from specc.frontend.errors import SpecError
from specc.runtime import fx_graph
from specc.runtime.tokens import DropPath, LayerScale

vt = vision_transformer()
needs_timm = pytest.mark.skipif(vt is None, reason="timm is not installed (scripts/venv.sh installs it)")

SHAPES = [(8, 5), (8, 4, 6), (8, 3, 4, 4)]


def _formula(x: torch.Tensor, p: float, scale_by_keep: bool = True) -> torch.Tensor:
    keep = 1.0 - p
    noise = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype).bernoulli_(keep)
    return x * (noise / keep if keep > 0.0 and scale_by_keep else noise)


def _draw(module: nn.Module, x: torch.Tensor, seed: int = 11) -> torch.Tensor:
    torch.manual_seed(seed)
    return module(x)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("p, scale_by_keep", [(0.3, True), (0.5, False), (0.9, True), (1.0, True)])
def test_drop_path_draws_as_timm_torchvision_and_the_formula(shape, p, scale_by_keep):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    ours = DropPath(p, scale_by_keep=scale_by_keep).train()
    y = _draw(ours, x)
    torch.manual_seed(11)
    assert torch.equal(y, _formula(x, p, scale_by_keep))
    if scale_by_keep:
        assert torch.equal(y, _draw(ref_mod.StochasticDepth(p).train(), x))
    if vt is not None:
        assert torch.equal(y, _draw(vt.DropPath(p, scale_by_keep=scale_by_keep).train(), x))
    kept = (y.flatten(1) != 0).any(dim=1)
    assert kept.sum() < x.shape[0] and (kept.sum() == 0 if p == 1.0 else p > 0.5 or kept.sum() > 0)  # some dropped
    assert ours.eval()(x) is x and DropPath(0.0).train()(x) is x  # the identity, its input itself


@needs_timm
def test_timms_linspace_rule_in_float32():
    """step/steps give timm's per-block rates (its VisionTransformer's DropPath probabilities), which
    double arithmetic rate * i / (depth - 1) misses in the last bits for rate 0.1, depth 12."""
    theirs = vt.VisionTransformer(num_classes=0, img_size=16, patch_size=8, embed_dim=12, depth=12, num_heads=2,
                                  drop_path_rate=0.1)
    rates = [b.drop_path1.drop_prob for b in theirs.blocks[1:]]
    assert [DropPath(0.1, step=i, steps=12).p for i in range(1, 12)] == rates
    assert [0.1 * i / 11 for i in range(1, 12)] != rates
    assert DropPath(0.1, step=0, steps=12).p == 0.0


@pytest.mark.parametrize("table", [ref_mod.B0, ref_mod.TINY])
def test_torchvisions_fraction_rule(table):
    """schedule="fraction": torchvision's p * float(block) / blocks, in that order (TINY's 5 blocks
    tell it from p * (block / blocks))."""
    ref = ref_mod.EfficientNetB0(num_classes=None, setting=table, stochastic_depth_prob=0.9)
    probs = [m.p for m in ref.modules() if isinstance(m, ref_mod.StochasticDepth)]
    assert [DropPath(0.9, step=i, steps=len(probs), schedule="fraction").p for i in range(len(probs))] == probs


@needs_timm
def test_layer_scale_equals_timms():
    ours, theirs = LayerScale(6, init_values=0.25), vt.LayerScale(6, init_values=0.25)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["gamma"]
    assert torch.equal(ours.gamma, theirs.gamma)
    with torch.no_grad():
        theirs.gamma.copy_(torch.randn(6, generator=torch.Generator().manual_seed(1)))
    ours.load_state_dict(theirs.state_dict())
    xa = torch.randn(3, 4, 6, generator=torch.Generator().manual_seed(2)).requires_grad_()
    xb = xa.detach().clone().requires_grad_()
    ya, yb = ours(xa), theirs(xb)
    assert torch.equal(ya, yb)
    ya.sum().backward(), yb.sum().backward()
    assert torch.equal(xa.grad, xb.grad) and torch.equal(ours.gamma.grad, theirs.gamma.grad)


RES = """
network Res(p: float = 0.4, output_dim: int = 6) {
    input features(6)
    fc0: linear(6)
    (+ fc1: linear(6) -> ls: layer_scale(0.5) -> dp: drop_path(p))
}
"""


class _HandWritten(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.fc0, self.fc1 = nn.Linear(6, 6), nn.Linear(6, 6)
        self.gamma = nn.Parameter(torch.full((6,), 0.5))

    def forward(self, x):
        x = self.fc0(x)
        y = self.fc1(x) * self.gamma
        return (_formula(y, self.p) if self.training else y) + x


def test_spec_equals_hand_written_pytorch(tmp_path):
    path = tmp_path / "res.cl"
    path.write_text(RES, encoding="utf-8")
    ours, ref = specc.build(path), _HandWritten(0.4)
    assert list(ours.state_dict()) == ["fc0.weight", "fc0.bias", "fc1.weight", "fc1.bias", "ls.gamma"]
    assert torch.equal(ours.ls.gamma, ref.gamma)  # initialised to init_values
    g = torch.Generator().manual_seed(3)
    ref_sd = {k: torch.randn(v.shape, generator=g) for k, v in ref.state_dict().items()}
    ref.load_state_dict(ref_sd)
    ours.load_state_dict({("ls.gamma" if k == "gamma" else k): v for k, v in ref_sd.items()})
    x0 = torch.randn(16, 6, generator=torch.Generator().manual_seed(4))
    for train in (True, False, True):
        ours.train(train), ref.train(train)
        xa, xb = x0.clone().requires_grad_(), x0.clone().requires_grad_()
        ya, yb = _draw(lambda v: ours(v)[0], xa), _draw(ref, xb)
        assert torch.equal(ya, yb), train
        ya.square().sum().backward(), yb.square().sum().backward()
        assert torch.equal(xa.grad, xb.grad)
        assert torch.equal(ours.ls.gamma.grad, ref.gamma.grad) and torch.equal(ours.fc1.weight.grad, ref.fc1.weight.grad)
        ours.zero_grad(), ref.zero_grad()


CHAIN = """
network Chain(output_dim: int = 6) {
    input features(6)
    fc0: linear(6) -> ls: layer_scale(0.5) -> dp: drop_path(0.5)
    fc1: linear(6)
}
backbone Masked = Chain
mask SCHEME()
"""


def _masked(tmp_path, scheme: str):
    path = tmp_path / f"{scheme}.cl"
    path.write_text(CHAIN.replace("SCHEME", scheme), encoding="utf-8")
    torch.manual_seed(0)
    return specc.build(path, gate="sigmoid") if scheme == "hat" else specc.build(path)


def test_traced_graph_calls_them_as_modules_with_their_roles(tmp_path):
    path = tmp_path / "chain.cl"
    path.write_text(CHAIN.split("backbone")[0], encoding="utf-8")
    net = specc.build(path)
    graph = fx_graph.analysis_graph(fx_graph.trace(net), net)
    roles = {n.name: n.role for n in graph.nodes if n.module}
    assert roles["ls"] == "scale" and roles["dp"] == "dropout"


def test_hat_masked_unit_stays_zero_and_drop_path_follows_the_mode(tmp_path):
    """HAT masks fc0's units at its mask point; the masked unit reaches fc1 as exactly 0 through
    layer_scale and drop_path in training. The masked forward (compiled from a graph traced at
    construction, in train mode) still reads drop_path's mode when it runs: in eval it is the
    identity (a traced-through DropPath would keep drawing)."""
    net = _masked(tmp_path, "hat")
    assert net.weighted_layer_names == ["fc0", "fc1"]
    net.setup_task_id(1)
    with torch.no_grad():
        for emb in net.task_embedding_t.values():
            emb.weight.fill_(1.0)
        net.task_embedding_t["fc0"].weight[0, 2] = -100.0
    seen = []
    net.fc1.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach()))
    x = torch.randn(16, 6, generator=torch.Generator().manual_seed(1))
    net.train()
    torch.manual_seed(5)
    train_out = net(x, "train", s_max=400.0, batch_idx=2, num_batches=2)[0]
    assert torch.all(seen[-1][:, 2] == 0) and torch.count_nonzero(seen[-1]) > 0
    dropped = (seen[-1] == 0).all(dim=1)
    assert 0 < dropped.sum() < 16  # p = 0.5 drops samples in training
    net.eval()
    a = net(x, "validation", s_max=400.0)[0]
    assert not (seen[-1] == 0).all(dim=1).any()  # no sample dropped in eval
    assert torch.equal(a, net(x, "validation", s_max=400.0)[0])
    assert not torch.equal(a, train_out)


def test_wsn_scores_the_projections_only(tmp_path):
    net = _masked(tmp_path, "wsn")
    assert net.weighted_layer_names == ["fc0", "fc1"]
    scored = {name.split(".")[1] for name, _ in net.named_parameters() if "score" in name}
    assert scored == {"fc0", "fc1"}


@pytest.mark.parametrize("element, message", [
    ("dp: drop_path(1.5)", "drop_path probability must be in [0, 1], got 1.5"),
    ("dp: drop_path(0.1, step=1)", "drop_path takes step and steps together"),
    ("dp: drop_path(0.1, step=3, steps=3)", "drop_path needs 0 <= step < steps, got step=3, steps=3"),
    ('dp: drop_path(0.1, schedule="cosine")', "drop_path schedule must be 'linspace' or 'fraction', got 'cosine'"),
    ("flatten -> ls: layer_scale()", None),
    ("ls: layer_scale()", "layer_scale expects features or tokens (length, features) but gets an image of shape (3, 8, 8)"),
])
def test_misuse_is_a_positioned_error(tmp_path, element, message):
    path = tmp_path / "bad.cl"
    path.write_text(f"network Bad(output_dim: int = 4) {{\n    input image(3, 8, 8)\n    {element}\n}}\n",
                    encoding="utf-8")
    if message is None:  # the same element on features is fine
        specc.build(path)
        return
    with pytest.raises(SpecError, match=re.escape(message)) as e:
        specc.build(path)
    assert e.value.pos.line == 3 and e.value.pos.column >= 5


def test_hat_task_network_keeps_layer_scale_whole(tmp_path):
    """specc.task_network prunes around layer_scale (a unit-wise "scale"): its gamma meets every unit
    it had, and the task network computes the test stage's feature (to float rounding: masks folded)."""
    net = _masked(tmp_path, "hat")
    net.setup_task_id(1)
    with torch.no_grad():
        for emb in net.task_embedding_t.values():
            emb.weight.fill_(1.0)
        net.task_embedding_t["fc0"].weight[0, 2] = -100.0
        net.ls.gamma.copy_(torch.randn(6, generator=torch.Generator().manual_seed(3)))
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    net.train()
    net(x, "train", s_max=400.0, batch_idx=2, num_batches=2)
    net.eval()
    net.store_mask()
    with torch.no_grad():
        ref = net(x, "test", test_task_id=1)[0]
        out = specc.task_network(net, 1, x[:1])(x)
    assert (out - ref).abs().max() <= 1e-6 * ref.abs().max()


@needs_timm
def test_specc_mask_wsn_on_timms_vit_with_stochastic_depth_and_layer_scale():
    """timm's own DropPath and LayerScale are traced as leaves (by class name): WSN keeps every weight
    at mask_percentage 1.0, so the masked ViT equals timm's in train mode under one seed (drop paths
    drawing) and in eval, and scores no gamma."""
    torch.manual_seed(0)
    model = vt.VisionTransformer(img_size=16, patch_size=8, embed_dim=16, depth=3, num_heads=2, num_classes=0,
                                 drop_path_rate=0.5, init_values=0.5)
    plain = vt.VisionTransformer(img_size=16, patch_size=8, embed_dim=16, depth=3, num_heads=2, num_classes=0,
                                 drop_path_rate=0.5, init_values=0.5)
    plain.load_state_dict(model.state_dict())
    net = specc.mask(model, "wsn", output_dim=16)
    assert not any("ls" in name for name in net.weighted_layer_names)
    net.setup_task_id(1)
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    outs = []
    for train in (True, False, True):
        net.train(train), plain.train(train)
        torch.manual_seed(4)
        a = net(x, "train", mask_percentage=1.0)[0]
        torch.manual_seed(4)
        assert torch.equal(a, plain(x)), train
        outs.append(a)
    assert not torch.equal(outs[0], outs[1])  # the drop paths drew in training
