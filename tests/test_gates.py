"""`mul(b)`: a channel-wise gate (squeeze-excitation) joined to the stream.

The compiled class is compared with a hand-written plain-PyTorch SE block (the SE layer as
senet.pytorch writes its forward: `x * y.view(b, c, 1, 1)`), the shape rule's refusals are positioned
in `check` and in `compile`, and under HAT a masked unit of the stream, of the gate's first linear and
of its last linear reaches its consumers as exactly 0 (checked with hooks, not with specc's analysis)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import specc
from specc.frontend.errors import SpecError

SPEC = """
block SEBlock(width: int, r: int = 4) {
  branch se = avgpool: adaptive_avgpool2d(1) -> flatten -> fc1: linear(width // r) -> relu_se: ReLU()
              -> fc2: linear(width) -> sigmoid: Sigmoid()
  conv: conv2d(width, kernel=3, padding=1) -> bn: batchnorm2d() -> mul(se) -> relu: ReLU() -> record
}
network SENet(c: int = 8) {
  input image(3, 8, 8)
  stem: conv2d(c, kernel=3, padding=1) -> relu: ReLU()
  b1: SEBlock(c)
  pool: adaptive_avgpool2d(1) -> flatten -> fc: linear(5) -> record
}
"""


class RefSE(nn.Module):
    def __init__(self, c: int, r: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(c, c // r)
        self.relu_se = nn.ReLU()
        self.fc2 = nn.Linear(c // r, c)
        self.sigmoid = nn.Sigmoid()
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.bn(self.conv(x))
        b, c = x.shape[:2]
        y = self.sigmoid(self.fc2(self.relu_se(self.fc1(self.avgpool(x).view(b, c)))))
        return self.relu(x * y.view(b, c, 1, 1))


class RefNet(nn.Module):
    def __init__(self, c: int = 8):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.relu = nn.ReLU()
        self.b1 = RefSE(c)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, 5)

    def forward(self, x):
        return self.fc(self.pool(self.b1(self.relu(self.stem(x)))).flatten(1))


def _write(tmp_path, text, name="se.cl"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_se_network_equals_plain_pytorch(tmp_path):
    torch.manual_seed(0)
    net = specc.build(_write(tmp_path, SPEC))
    ref = RefNet()
    assert list(net.state_dict()) == list(ref.state_dict())
    ref.load_state_dict(net.state_dict())
    x = torch.randn(4, 3, 8, 8)
    for mode in ("train", "eval"):
        net.train(mode == "train"), ref.train(mode == "train")
        a, b = net(x)[0], ref(x)
        assert torch.equal(a, b), mode
        a.sum().backward(), b.sum().backward()
        for (name, p), q in zip(net.named_parameters(), ref.parameters()):
            assert torch.equal(p.grad, q.grad), (mode, name)
        net.zero_grad(), ref.zero_grad()


@pytest.mark.parametrize("fc2, where, what", [
    ("linear(width // 2)", "5:68", "the gate has 4 units and the stream 8"),
    ("linear(width) -> unflat: linear(3)", "5:68", "the gate has 3 units"),
])
def test_a_gate_that_does_not_fit_is_refused_with_its_position(tmp_path, fc2, where, what):
    text = SPEC.replace("fc2: linear(width)", f"fc2: {fc2}")
    path = _write(tmp_path, text)
    with pytest.raises(SpecError) as err:
        specc.build(path)
    assert what in str(err.value) and f"se.cl:{where}" in str(err.value)


@pytest.mark.parametrize("bad, message", [
    ("g: mul(se)", "builds no module"),
    ("mul(se, se)", "takes the name of one branch"),
    ("mul(se) -> mul(se)", "used by mul twice"),
    ("mul(se) -> add(se)", "joined both by add and by mul"),
])
def test_misused_mul_is_refused(tmp_path, bad, message):
    path = _write(tmp_path, SPEC.replace("mul(se)", bad, 1))
    with pytest.raises(SpecError, match=message):
        specc.build(path)


def _probe(net, x):
    seen = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: seen.__setitem__(name, args[0].detach()))
             for name, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.ReLU))]
    net(x, "train", s_max=400.0, batch_idx=2, num_batches=2)
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("layer, unit, consumers", [
    ("b1/conv", 3, ["b1.fc1", "b1.relu"]),  # the stream: before the gate's pooling and after the product
    ("b1/fc1", 1, ["b1.relu_se"]),           # the gate's hidden unit reaches fc2 as 0 (ReLU(0) = 0)
    ("b1/fc2", 5, ["b1.relu"]),              # a gate masked to 0 zeroes the product's channel
])
def test_hat_masked_unit_reaches_its_consumers_as_zero(tmp_path, layer, unit, consumers):
    path = _write(tmp_path, SPEC + 'backbone HATSE = SENet\nmask hat(gate="sigmoid")\n')
    torch.manual_seed(0)
    net = specc.build(path)
    net.setup_task_id(1)
    assert net.weighted_layer_names == ["stem", "b1/conv", "b1/fc1", "b1/fc2", "fc"]
    with torch.no_grad():
        for emb in net.task_embedding_t.values():
            emb.weight.fill_(1.0)
        net.task_embedding_t[layer].weight[0, unit] = -100.0
    net.train()
    seen = _probe(net, torch.randn(3, 3, 8, 8))
    for c in consumers:
        got = seen[c][:, unit]
        assert torch.all(got == 0), f"unit {unit} of {layer} reaches {c} non-zero"
    # and only that unit: the others are not zero
    assert not torch.all(seen[consumers[-1]] == 0)


def test_wsn_scores_the_gate_linears(tmp_path):
    path = _write(tmp_path, SPEC + "backbone WSNSE = SENet\nmask wsn()\n")
    net = specc.build(path)
    net.setup_task_id(1)
    assert net.weighted_layer_names == ["stem", "b1/conv", "b1/fc1", "b1/fc2", "fc"]
    out = net(torch.randn(2, 3, 8, 8), "train", mask_percentage=0.5)[0]
    assert out.shape == (2, 5)


GUARDED = """
block B(width: int, stride: int = 1) {
  branch shortcut = identity
  branch se = avgpool: adaptive_avgpool2d(1) -> flatten -> fc: linear(width) -> sigmoid: Sigmoid()
  conv: conv2d(width, kernel=3, stride=stride, padding=1) -> mul(se) if gated
    -> add(shortcut) if stride == 1 and in.channels == width -> relu: ReLU()
}
network N(s: int = 1, gated: bool = true) {
  input image(4, 8, 8)
  b1: B(4, stride=s)
}
"""


@pytest.mark.parametrize("s, gated", [(1, True), (2, True), (1, False), (2, False)])
def test_guarded_joins_follow_their_guards(tmp_path, s, gated):
    """`add(b) if c` and `mul(b) if c` (issue 21): the join happens exactly when its guard holds, and
    a gate under a false guard builds no modules (it is built where its `mul` is)."""
    text = GUARDED.replace("block B(width: int, stride: int = 1)", "block B(width: int, stride: int = 1, gated: bool = true)")
    text = text.replace("b1: B(4, stride=s)", "b1: B(4, stride=s, gated=gated)")
    torch.manual_seed(0)
    net = specc.build(_write(tmp_path, text), s=s, gated=gated)
    assert any(k.startswith("b1.fc.") for k in net.state_dict()) == gated
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        b = net.b1
        y = b.conv(x)
        if gated:
            y = y * b.sigmoid(b.fc(b.avgpool(y).flatten(1)))[:, :, None, None]
        if s == 1:
            y = y + x
        assert torch.equal(net(x)[0], torch.relu(y))


def test_hat_measures_read_the_stream_units_through_the_product(tmp_path):
    """The product carries the stream's units (operand 0), not the gate's: the classifier's input j
    is b1/conv's unit j, fc1's input j is b1/conv's unit j, fc2's input j is fc1's unit j."""
    from test_hat_measure import AGG, random_measure

    net = specc.build(_write(tmp_path, SPEC + 'backbone HATSE = SENet\nmask hat(gate="sigmoid")\n'))
    measure = random_measure(net, 7)
    preceding = {"b1/conv": "stem", "b1/fc1": "b1/conv", "b1/fc2": "b1/fc1", "fc": "b1/conv"}
    for layer, before in preceding.items():
        for mode, agg in AGG.items():
            weight, _ = net.get_layer_measure_parameter_wise(measure, layer, mode)
            weight = weight.reshape(weight.shape[0], weight.shape[1], -1)
            expected = torch.tensor([[agg(a, b) for b in measure[before].tolist()] for a in measure[layer].tolist()])
            assert torch.equal(weight[:, :, 0], expected), (layer, mode)


@pytest.mark.parametrize("mask, kwargs", [
    ('mask hat(gate="sigmoid")', dict(s_max=400.0, batch_idx=2, num_batches=2)),
    ("mask wsn()", dict(mask_percentage=0.5)),
    ("", {}),
])
def test_an_exported_se_network_imports_torch_only_and_equals_the_built_one(tmp_path, mask, kwargs):
    import importlib.util
    import sys

    from specc.emit.export import export_source
    from specc.frontend.load import load_program

    path = _write(tmp_path, SPEC + (f"backbone M = SENet\n{mask}\n" if mask else ""))
    program = load_program(path)
    out = tmp_path / f"exported_se_{abs(hash(mask))}.py"
    out.write_text(export_source(program, {}), encoding="utf-8")
    assert "specc" not in "".join(line for line in out.read_text().splitlines(True)
                                  if line.startswith(("import ", "from ")))
    spec = importlib.util.spec_from_file_location(out.stem, out)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules.pop(out.stem, None)
    torch.manual_seed(0)
    exported = getattr(mod, program.class_name)()
    torch.manual_seed(0)
    built = specc.build(path)
    exported.load_state_dict(built.state_dict())
    x = torch.randn(2, 3, 8, 8)
    args = ("train",) if mask else ()
    for net in (exported, built):
        if mask:
            net.setup_task_id(1)
    with specc.flush_denormals() if "hat" in mask else torch.no_grad():
        a = exported(x, *args, **kwargs)[0]
    b = built(x, *args, **kwargs)[0]
    assert torch.equal(a, b)


def test_hat_refuses_a_gate_before_a_residual_add_with_its_position(tmp_path):
    """SE-ResNet's block gates before the residual add: conv2's units fork into the gate at bn2, so
    its mask sits after bn2 and the shortcut is added after it (a masked unit would reach the next
    block as the shortcut's value): refused, positioned at the add. WSN builds it."""
    from pathlib import Path

    text = Path(__file__).parent.parent.joinpath("specs", "peers", "se_resnet18.cl").read_text()
    path = _write(tmp_path, text + 'backbone H = SEResNet18\nmask hat(gate="sigmoid")\n', "se_resnet18_hat.cl")
    with pytest.raises(SpecError) as err:
        specc.build(path, width=8, reduction=4)
    assert "the residual add" in str(err.value) and "se_resnet18_hat.cl:25:" in str(err.value)
    wsn = _write(tmp_path, text + "backbone W = SEResNet18\nmask wsn()\n", "se_resnet18_wsn.cl")
    net = specc.build(wsn, width=8, reduction=4)
    net.setup_task_id(1)
    assert net(torch.randn(2, 3, 32, 32), "train", mask_percentage=0.5)[0].shape == (2, 64)
