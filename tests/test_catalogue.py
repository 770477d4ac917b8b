"""The layer catalogue (specc/core/layers.py): each layer kind is one entry, and each entry agrees with
torch. Every module-building entry is checked against the torch.nn class it names (its keyword
arguments construct it; its shape rule gives torch's output shape, over features, signals, images
and token sequences; its parameter count is the module's); the kinds added by following the
README's "Adding a layer kind" (conv1d, layernorm) are checked end to end: a spec using each builds
the same network as a hand-written plain PyTorch module, `check`/`show` report its shapes and
parameters, and the masking schemes treat it as its entry says (HAT's mask view, WSN's functional,
the layer norm's place before a HAT mask point)."""
from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

import specc
from specc.core.layers import BY_CLASS, OPS, REQUIRED, Shape, check, out_shape, parameter_count, torch_kwargs
from specc.frontend.elaborate import elaborate
from specc.frontend.errors import SpecError
from specc.frontend.facts import analyse
from specc.frontend.load import load_program
from specc.report import weighted_layer_table
from specc.runtime import tokens

# Spec arguments of every module-building kind, several per kind (the required ones included).
ARGS = {
    "linear": [{"out_features": 5}, {"out_features": 3, "bias": False}],
    "conv2d": [{"out_channels": 4, "kernel": 3}, {"out_channels": 6, "kernel": 3, "stride": 2, "padding": 1,
                                                  "dilation": 2, "groups": 2, "bias": False}],
    "conv1d": [{"out_channels": 4, "kernel": 3}, {"out_channels": 6, "kernel": 2, "stride": 3, "padding": 2,
                                                  "dilation": 2, "groups": 2, "bias": False}],
    "batchnorm1d": [{}, {"affine": False, "momentum": None}],
    "batchnorm2d": [{}, {"eps": 1e-3, "track_running_stats": False}],
    "layernorm": [{}, {"elementwise_affine": False}, {"bias": False, "eps": 1e-6}],
    "dropout": [{}, {"p": 0.2}],
    "maxpool2d": [{"kernel": 2}, {"kernel": 3, "stride": 2, "padding": 1, "ceil_mode": True}],
    "maxpool1d": [{"kernel": 2}, {"kernel": 3, "stride": 2, "padding": 1, "dilation": 2, "ceil_mode": True}],
    "avgpool2d": [{"kernel": 2}, {"kernel": 3, "stride": 1, "padding": 1, "count_include_pad": False}],
    "adaptive_avgpool2d": [{"size": 1}, {"size": 3}],
    "adaptive_maxpool2d": [{"size": 2}],
    # the vision transformer kinds (specc.runtime.tokens): patch sizes > 1 in tests/test_vit.py
    "patch_embed": [{"embed_dim": 6, "patch": 1}, {"embed_dim": 4, "patch": 1, "bias": False}],
    "attention": [{"num_heads": 2}, {"num_heads": 4, "qkv_bias": False, "proj_bias": False, "qk_norm": True,
                                     "fused": False}],
    "class_token": [{}],
    "position_embedding": [{}],
    # residual-branch kinds: drop_path's training draws are checked against timm and torchvision in
    # tests/test_drop_path.py
    "drop_path": [{"p": 0.3}, {"p": 0.5, "scale_by_keep": False, "step": 1, "steps": 4},
                  {"p": 0.2, "step": 3, "steps": 5, "schedule": "fraction"}],
    "layer_scale": [{}, {"init_values": 0.5}],
}
INPUTS = [Shape((8,)), Shape((4, 13)), Shape((4, 9, 7)), Shape.tokens(5, 8)]


def _torch_class(entry):
    return getattr({"nn": nn, "tokens": tokens}[entry.torch_module], entry.torch_class)


class _ByForm(nn.Module):
    """A parameter kind as generated source calls it: the entry's forward form, {module} its parameter."""

    def __init__(self, param: nn.Parameter, form: str):
        super().__init__()
        self.param, self.form = param, form.format(x="x", module="self.param")

    def forward(self, x):
        # the catalogue's own text, with the names generated modules import for it
        return eval(self.form, {"torch": torch, "tokens": tokens}, {"x": x, "self": self})


def _bound(kind: str, given: dict) -> dict:
    return {name: given.get(name, default) for name, _, default in OPS[kind].params
            if name in given or default is not REQUIRED}


def _batch(s: Shape) -> torch.Tensor:
    return torch.randn(2, *s.dims, generator=torch.Generator().manual_seed(0))


def test_every_module_kind_is_an_entry_with_arguments_to_test():
    assert {k for k, e in OPS.items() if e.torch_class is not None} == set(ARGS)
    assert set(BY_CLASS) == {OPS[k].torch_class for k in ARGS}


@pytest.mark.parametrize("kind", sorted(ARGS))
def test_entry_agrees_with_its_torch_class(kind):
    """For every shape kind an entry accepts: its kwargs build the torch class, which maps the input
    to the shape the entry's rule says, and has the entry's parameter count."""
    entry = OPS[kind]
    tried = 0
    for s in INPUTS:
        for given in ARGS[kind]:
            a = _bound(kind, given)
            problem = check(kind, a, s)
            if s.kind not in entry.accepts:
                assert problem is not None and "expects" in problem, (kind, s)
                continue
            assert problem is None, (kind, s, problem)
            kw = torch_kwargs(kind, a, s)
            module = _torch_class(entry)(**kw)
            if entry.parameter:  # a parameter, called through the entry's forward form
                assert isinstance(module, nn.Parameter)
                module = _ByForm(module, entry.forward)
            module.eval()
            assert parameter_count(entry.torch_class, kw) == sum(p.numel() for p in module.parameters())
            with torch.no_grad():
                y = module(_batch(s))
            assert tuple(y.shape[1:]) == out_shape(kind, a, s).dims, (kind, s, given)
            tried += 1
    assert tried >= len(ARGS[kind])


def test_shape_kinds_keep_the_existing_rules_and_add_tokens():
    assert Shape((3, 8, 8)).kind == "image" and Shape((8,)).kind == "features" and Shape((2, 16)).kind == "signal"
    t = Shape.tokens(7, 16)
    assert (t.kind, t.units, t.spatial, t.unit_view) == ("tokens", 16, (), None)
    assert Shape((4, 9, 7)).unit_view == (1, -1, 1, 1) and Shape((4, 13)).unit_view == (1, -1, 1)
    assert out_shape("linear", {"out_features": 3, "bias": True}, t) == Shape.tokens(7, 3)
    assert out_shape("flatten", {}, t).dims == (112,) and out_shape("flatten", {}, Shape((4, 13))).dims == (52,)
    assert "expects a signal (channels, length) but gets an image" in check(
        "conv1d", _bound("conv1d", ARGS["conv1d"][0]), Shape((4, 9, 7)))


def _write(tmp_path, text: str, name: str = "t.cl"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return p


SIGNAL = """
    network Sig(in_channels: int = 2, width: int = 4) {
        input signal(in_channels, 16)
        conv1: conv1d(width, kernel=3, padding=1) -> bn1: batchnorm1d() -> act1: ReLU() -> record
        conv2: conv1d(6, kernel=3, stride=2, groups=2, bias=false) -> act2: ReLU() -> record
        flatten
        fc: linear(5) -> ln: layernorm() -> act3: Tanh() -> record
    }
"""


class SigRef(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1, self.act1 = nn.Conv1d(2, 4, 3, padding=1), nn.BatchNorm1d(4), nn.ReLU()
        self.conv2, self.act2 = nn.Conv1d(4, 6, 3, stride=2, groups=2, bias=False), nn.ReLU()
        self.fc, self.ln, self.act3 = nn.Linear(42, 5), nn.LayerNorm(5), nn.Tanh()

    def forward(self, x):
        acts = {}
        x = acts["conv1"] = self.act1(self.bn1(self.conv1(x)))
        x = acts["conv2"] = self.act2(self.conv2(x))
        x = acts["fc"] = self.act3(self.ln(self.fc(torch.flatten(x, 1))))
        return x, acts


def _randomize(module: nn.Module) -> None:
    g = torch.Generator().manual_seed(5)
    for p in module.parameters():
        p.data = torch.randn(p.shape, generator=g)


def test_conv1d_and_layernorm_spec_equals_hand_written_pytorch(tmp_path):
    p = _write(tmp_path, SIGNAL)
    ours, ref = specc.build(p), SigRef()
    _randomize(ref)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    assert ours.weighted_layer_names == ["conv1", "conv2", "fc"]
    x = torch.randn(3, 2, 16, generator=torch.Generator().manual_seed(1))
    for train in (False, True):
        ours.train(train), ref.train(train)
        ours.zero_grad(), ref.zero_grad()
        (f1, a1), (f2, a2) = ours(x), ref(x)
        assert torch.equal(f1, f2) and list(a1) == list(a2) and all(torch.equal(a1[k], a2[k]) for k in a2)
        f1.square().sum().backward()
        f2.square().sum().backward()
        g1, g2 = dict(ours.named_parameters()), dict(ref.named_parameters())
        assert list(g1) == list(g2) and all(torch.equal(g1[k].grad, g2[k].grad) for k in g2)
    # another input length: the generated constructor runs conv1d's shape rule (16 -> 10: fc's input)
    p2 = _write(tmp_path, SIGNAL.replace("signal(in_channels, 16)", "signal(in_channels, 10)"), "t2.cl")
    assert specc.build(p2).fc.in_features == 6 * 4


def test_check_and_show_report_conv1d_and_layernorm(tmp_path):
    p = _write(tmp_path, SIGNAL)
    net = analyse(elaborate(load_program(str(p)), {}))
    table = weighted_layer_table(net)
    rows = {line.split()[1]: line.split() for line in table.splitlines()[2:-1]}
    assert rows["conv1"][2:6] == ["Conv1d", "(2,", "16)", "(4,"] and rows["conv1"][7] == f"{2 * 4 * 3 + 4:,}"
    assert rows["conv2"][2] == "Conv1d" and "(6, 7)" in table and rows["conv2"][7] == f"{6 * 2 * 3:,}"
    assert rows["fc"][2:5] == ["Linear", "(42)", "(5)"]
    ln = next(m for m in net.modules if m.path == ("ln",))
    assert (ln.cls, ln.kwargs["normalized_shape"]) == ("LayerNorm", 5)
    assert parameter_count(ln.cls, ln.kwargs) == 10
    # the CLI: check says ok, show prints the table
    from specc.cli import main
    assert main(["check", str(p)]) == 0
    assert main(["show", str(p)]) == 0


@pytest.mark.parametrize("body, message", [
    ("c: conv1d(4, kernel=0)", "conv1d needs out_channels, kernel and stride > 0"),
    ("c: conv1d(4, kernel=3, groups=3)", "conv1d groups=3 must divide in_channels=2"),
    ("c: conv1d(4, kernel=17)", "conv1d leaves no spatial extent: (2, 16) -> (4, 0)"),
    ("c: conv2d(4, kernel=3)", "conv2d expects an image (channels, height, width) but gets a signal"),
    ("n: layernorm()", "layernorm expects features or tokens (length, features) but gets a signal"),
    ("flatten -> n: layernorm(eps=0.0)", "layernorm needs eps > 0"),
    ("flatten -> n: layernorm(affine=false)", "layernorm has no argument 'affine'"),
])
def test_conv1d_and_layernorm_misuse_is_a_positioned_error(tmp_path, body, message):
    p = _write(tmp_path, f"network N() {{\n    input signal(2, 16)\n    {body}\n}}\n")
    with pytest.raises(SpecError) as info:
        analyse(elaborate(load_program(str(p)), {}))
    assert message in info.value.message and info.value.pos.line == 3, info.value.render()


def _hat(tmp_path, spec: str, name: str):
    _write(tmp_path, spec, "plain.cl")
    return specc.build(_write(tmp_path, f'include "plain.cl"\nbackbone {name} = Sig\nmask hat(gate="sigmoid")\n',
                              "hat.cl"))


def _binary_masks(hat) -> dict:
    """Embeddings of +-100: masks of exactly 1 and 0 at s = s_max; the off units per layer."""
    g = torch.Generator().manual_seed(0)
    off = {}
    for name in hat.weighted_layer_names:
        emb = hat.task_embedding_t[name].weight
        keep = torch.rand(emb.shape[1], generator=g) > 0.4
        keep[0], keep[-1] = True, False
        emb.data = torch.where(keep, 100.0, -100.0).view_as(emb)
        off[name] = (~keep).nonzero().flatten().tolist()
    return off


def test_hat_masks_conv1d_channels(tmp_path):
    """HAT's unit mask of a conv1d is over its output channels, viewed (1, -1, 1) after its batch
    norm: a masked channel reaches the next layer as zero over its whole length, and the forward
    equals the hand-written network with the masks applied by hand."""
    hat = _hat(tmp_path, SIGNAL, "HATSig")
    hat.setup_task_id(1)
    off = _binary_masks(hat)
    seen = {}
    handles = [hat.get_submodule(n).register_forward_pre_hook(lambda m, a, n=n: seen.__setitem__(n, a[0].detach()))
               for n in ("conv2", "fc")]
    x = torch.randn(3, 2, 16, generator=torch.Generator().manual_seed(1))
    hat.train()
    feature, mask, acts = hat(x, "train", s_max=400, batch_idx=4, num_batches=4)
    for h in handles:
        h.remove()
    assert off["conv1"] and all(torch.equal(seen["conv2"][:, u], torch.zeros(3, 16)) for u in off["conv1"])
    flat = seen["fc"].view(3, 6, 7)  # fc reads conv2's channels flattened: each over its 7 positions
    assert off["conv2"] and all(torch.equal(flat[:, u], torch.zeros(3, 7)) for u in off["conv2"])
    ref = SigRef()
    ref.load_state_dict({k: v for k, v in hat.state_dict().items() if not k.startswith("task_embedding")})
    ref.train()
    h = ref.act1(ref.bn1(ref.conv1(x)) * mask["conv1"].view(1, -1, 1))
    h = ref.act2(ref.conv2(h) * mask["conv2"].view(1, -1, 1))
    want = ref.act3(ref.ln(ref.fc(torch.flatten(h, 1))) * mask["fc"])
    assert torch.equal(feature, want)


def test_wsn_scores_and_masks_conv1d_weights(tmp_path):
    _write(tmp_path, SIGNAL, "plain.cl")
    wsn = specc.build(_write(tmp_path, 'include "plain.cl"\nbackbone WSNSig = Sig\nmask wsn()\n', "wsn.cl"))
    assert wsn.weighted_layer_names == ["conv1", "conv2", "fc"]
    assert tuple(wsn.weight_score_t["conv1"].weight.shape) == (4, 2 * 3)
    assert tuple(wsn.weight_score_t["conv2"].weight.shape) == (6, 2 * 3)
    wsn.eval()
    x = torch.randn(3, 2, 16, generator=torch.Generator().manual_seed(1))
    feature, weight_mask, bias_mask, acts = wsn(x, "train", mask_percentage=0.5)
    c1, c2 = wsn.conv1, wsn.conv2
    assert 0 < weight_mask["conv1"].sum() < weight_mask["conv1"].numel()
    h = nn.functional.conv1d(x, c1.weight * weight_mask["conv1"].view_as(c1.weight), c1.bias * bias_mask["conv1"],
                             padding=1)
    h = wsn.act1(wsn.bn1(h))
    h = wsn.act2(nn.functional.conv1d(h, c2.weight * weight_mask["conv2"].view_as(c2.weight), None, stride=2,
                                      groups=2))
    fc = wsn.fc
    want = wsn.act3(wsn.ln(nn.functional.linear(torch.flatten(h, 1), fc.weight * weight_mask["fc"],
                                                fc.bias * bias_mask["fc"])))
    assert torch.equal(feature, want)


MLP_LN = """
    network Sig(d: int = 6) {
        input features(d)
        fc1: linear(8) -> ln1: layernorm() -> act1: ReLU() -> record
        fc2: linear(5) -> act2: ReLU() -> record
    }
"""


def test_layernorm_comes_before_the_hat_mask_point(tmp_path):
    """A layer norm moves zeros (and mixes units): HAT masks after it, so a masked unit reaches the
    next layer as zero."""
    net = analyse(elaborate(load_program(str(_write(tmp_path, _hat_spec(MLP_LN), "h.cl"))), {}))
    assert next(n.name for n in net.nodes if n.meta.get("mask_point_of") == "fc1") == "ln1"
    hat = _hat(tmp_path, MLP_LN, "HATSig")
    hat.setup_task_id(1)
    off = _binary_masks(hat)
    seen = {}
    hat.fc2.register_forward_pre_hook(lambda m, a: seen.__setitem__("fc2", a[0].detach()))
    hat.train()
    hat(torch.randn(4, 6), "train", s_max=400, batch_idx=4, num_batches=4)
    assert off["fc1"] and all(torch.equal(seen["fc2"][:, u], torch.zeros(4)) for u in off["fc1"])


def _hat_spec(plain: str) -> str:
    return textwrap.dedent(plain) + 'mask hat(gate="sigmoid")\n'


def test_a_layernorm_beyond_a_hat_mask_point_is_refused(tmp_path):
    """After a concatenation the units of two layers meet; a layer norm there would turn their masked
    zeros into values: HAT refuses it (at the layer norm), WSN (parameter masks) accepts it."""
    plain = """
        network Sig(d: int = 6) {
            input features(d)
            branch left = a: linear(4) -> act_a: ReLU() -> record
            b: linear(4) -> act_b: ReLU() -> record -> concat(left)
            ln: layernorm()
            fc: linear(3)
        }
    """
    with pytest.raises(SpecError) as info:
        analyse(elaborate(load_program(str(_write(tmp_path, _hat_spec(plain), "h.cl"))), {}))
    assert "'ln' follows the unit mask" in info.value.message and info.value.pos.line == 5, info.value.render()
    wsn = textwrap.dedent(plain) + "mask wsn()\n"
    assert analyse(elaborate(load_program(str(_write(tmp_path, wsn, "w.cl"))), {})).weighted_layer_names


def test_maxpool1d_is_one_entry(tmp_path):
    """A kind added by its catalogue entry alone (and its ARGS line above): a spec using it (twice,
    through `use`) equals the hand-written network, its shape rule runs in the generated constructor."""
    p = _write(tmp_path, """
        network P(length: int = 20) {
            input signal(3, length)
            conv: conv1d(4, kernel=3) -> act: ReLU() -> pool: maxpool1d(3, stride=2, padding=1, ceil_mode=true)
            use pool
            flatten
            fc: linear(2)
        }
    """)

    class Ref(nn.Module):
        def __init__(self, length):
            super().__init__()
            self.conv, self.act = nn.Conv1d(3, 4, 3), nn.ReLU()
            self.pool = nn.MaxPool1d(3, 2, 1, ceil_mode=True)
            with torch.no_grad():
                n = self.pool(self.pool(torch.zeros(1, 4, length - 2))).numel()
            self.fc = nn.Linear(n, 2)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.pool(self.act(self.conv(x)))), 1)), {}

    for length in (20, 13):
        ours, ref = specc.build(p, length=length), Ref(length)
        _randomize(ref)
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(2, 3, length, generator=torch.Generator().manual_seed(2))
        assert torch.equal(ours(x)[0], ref(x)[0])


def test_amnesiac_hat_routes_conv1d_channels_through_its_backups(tmp_path):
    """AmnesiacHAT mixes each layer's backup and main outputs by the backup mask, viewed as the
    entry's hat_view: with backups equal to the network, the mix is the network's own forward."""
    _write(tmp_path, SIGNAL, "plain.cl")
    net = specc.build(_write(tmp_path, 'include "plain.cl"\nbackbone AmnSig = Sig\nmask amnesiac_hat(gate="sigmoid")\n',
                             "amn.cl"))
    for t in (1, 2):
        net.setup_task_id(t)
        _binary_masks(net)
        net.store_mask()
    net.setup_task_id(3)
    net.instantiate_backup_backbones([1, 2])
    plain = {k: v for k, v in net.state_dict().items() if not k.startswith(("task_embedding", "backup"))}
    for backup in net.backup_backbones.values():
        backup.load_state_dict(plain)
    net.eval()
    x = torch.randn(3, 2, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mixed = net(x, "train_with_backup", s_max=400, batch_idx=4, num_batches=4)[0]
        own = net(x, "train", s_max=400, batch_idx=4, num_batches=4)[0]
    assert mixed.shape == own.shape == (3, 5) and torch.allclose(mixed, own, atol=1e-6)


def test_specc_mask_reads_a_hand_written_conv1d_layernorm_model_through_the_catalogue(tmp_path):
    """specc.mask on a model written with nn.Conv1d, nn.BatchNorm1d and nn.LayerNorm: the traced
    graph's modules get their roles, units and mask views from the same entries, so it equals the
    spec-built HAT class."""
    spec = _hat(tmp_path, SIGNAL, "HATSig")
    torch.manual_seed(0)
    ours = specc.mask(SigRef(), "hat", output_dim=5)
    assert ours.weighted_layer_names == spec.weighted_layer_names == ["conv1", "conv2", "fc"]
    ours.load_state_dict(spec.state_dict())
    x = torch.randn(3, 2, 16, generator=torch.Generator().manual_seed(1))
    outs = []
    for net in (ours, spec):
        net.setup_task_id(1)
        _binary_masks(net)
        net.train()
        outs.append(net(x, "train", s_max=400, batch_idx=4, num_batches=4))
    (fa, ma, aa), (fb, mb, ab) = outs
    assert torch.equal(fa, fb) and all(torch.equal(ma[k], mb[k]) for k in mb)
    assert list(aa) == list(ab) and all(torch.equal(aa[k], ab[k]) for k in ab)


def test_a_kind_without_module_or_shape_helper_uses_the_generic_shape_helper(tmp_path, monkeypatch):
    """README "Adding a layer kind": an entry alone is enough, also for a kind without a module; its
    generated constructor computes the shape with the generic `shapes.layer` (an entry without
    `shape_helper` once wrote `None(shape, ...)`)."""
    import dataclasses

    monkeypatch.setitem(OPS, "subsample", dataclasses.replace(OPS["subsample"], shape_helper=None))
    p = _write(tmp_path, textwrap.dedent("""\
        network Sub(output_dim: int = 4) {
            input image(3, 8, 8)
            conv: conv2d(4, kernel=3, padding=1) -> subsample(2) -> flatten -> fc: linear(output_dim)
        }
        """), "generic_shape.cl")
    net = specc.build(p)
    assert net.fc.in_features == 4 * 4 * 4
    assert net(torch.randn(2, 3, 8, 8))[0].shape == (2, 4)
