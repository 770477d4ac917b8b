"""The activation catalogue (specc/core/activations.py): each entry against torch itself (its class,
keyword arguments and defaults, `inplace`, f(0) = 0), and an activation added as one entry: indexed
into a copy of the catalogue, `check`, `compile` and the analysis of traced models all know it."""
from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

import specc
from specc.core import activations, roles
from specc.core.activations import ENTRIES, ActivationKind
from specc.core.layers import ACTIVATIONS
from specc.frontend.elaborate import elaborate
from specc.frontend.errors import SpecError
from specc.frontend.facts import analyse
from specc.frontend.load import load_program


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_entry_agrees_with_torch(entry):
    cls = getattr(nn, entry.name)
    torch_params = inspect.signature(cls.__init__).parameters
    assert ("inplace" in torch_params) == entry.inplace
    for name, _, default in entry.params:
        assert torch_params[name].default == default, name
    zero = cls()(torch.zeros(3))
    assert torch.equal(zero, torch.zeros(3)) == entry.keeps_zero
    for fn in entry.functions:
        module, _, name = fn.rpartition(".")
        x = torch.tensor([-1.0, 0.0, 2.0])
        assert torch.equal(getattr(eval(module, {"torch": torch}), name)(x), cls()(x)), fn
    for method in entry.methods:
        x = torch.tensor([-1.0, 0.0, 2.0])
        assert torch.equal(getattr(x, method)(), cls()(x)), method


def test_views_are_the_entries():
    assert ACTIVATIONS == {e.name: e.params + (("inplace", "bool", False),) * e.inplace for e in ENTRIES if e.spec}
    for e in ENTRIES:
        assert (roles.MODULES[e.name].role, roles.MODULES[e.name].keeps_zero) == (e.role, e.keeps_zero)
        assert all(roles.FUNCTIONS[f] is e for f in e.functions) and all(roles.METHODS[m] is e for m in e.methods)


# RReLU: a torch.nn activation the catalogue does not hold, added below as the README says
RRELU = ActivationKind(
    "RReLU", (("lower", "float", 1.0 / 8), ("upper", "float", 1.0 / 3)), inplace=True,
    checks=lambda name, a: None if a["lower"] <= a["upper"] else f"{name} needs lower <= upper")


@pytest.fixture
def with_rrelu():
    activations.index(ENTRIES + (RRELU,))
    try:
        yield
    finally:
        activations.index(ENTRIES)


SPEC = """\
network Act(output_dim: int = 3) {{
    input features(6)
    fc1: linear(5) -> act: {act}
    fc2: linear(output_dim)
}}
mask hat(gate="sigmoid")
"""


def _analysed(tmp_path, act: str):
    path = tmp_path / "act.cl"
    path.write_text(SPEC.format(act=act))
    return analyse(elaborate(load_program(str(path)), {}))


class _Model(nn.Module):
    def __init__(self, act: nn.Module):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(6, 5), act, nn.Linear(5, 3)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def test_an_activation_is_one_entry(tmp_path, with_rrelu):
    # check: known, its arguments bound and checked, positioned
    assert _analysed(tmp_path, "RReLU(lower=0.1, upper=0.2)").weighted_layer_names == ["fc1", "fc2"]
    with pytest.raises(SpecError) as info:
        _analysed(tmp_path, "RReLU(lower=0.3, upper=0.2)")
    assert "RReLU needs lower <= upper" in info.value.message and info.value.pos.line == 3
    with pytest.raises(SpecError) as info:
        _analysed(tmp_path, "RReLU(slope=0.3)")
    assert "slope" in info.value.message and info.value.pos.line == 3
    # compile: the generated class builds it (eval: RReLU's fixed slope), equal to torch's
    path = tmp_path / "plain.cl"
    path.write_text(SPEC.format(act="RReLU(lower=0.1, upper=0.2, inplace=true)").replace('mask hat(gate="sigmoid")\n', ""))
    net = specc.build(path).eval()
    assert isinstance(net.act, nn.RReLU) and (net.act.lower, net.act.upper, net.act.inplace) == (0.1, 0.2, True)
    ref = _Model(nn.RReLU(0.1, 0.2)).eval()
    ref.load_state_dict(net.state_dict())
    x = torch.randn(4, 6)
    assert torch.equal(net(x, "test")[0], ref(x))
    # the analysis of a traced model: its role, from the entry (it keeps zeros: HAT masks fc1 before it)
    masked = specc.mask(_Model(nn.RReLU()), "hat", output_dim=3)
    assert masked.weighted_layer_names == ["fc1", "fc2"]
    assert roles.MODULES["RReLU"].keeps_zero is True


def test_without_its_entry_an_activation_is_unknown(tmp_path):
    with pytest.raises(SpecError) as info:
        _analysed(tmp_path, "RReLU(lower=0.1, upper=0.2)")
    assert "RReLU" in info.value.message and info.value.pos.line == 3
    assert "RReLU" not in roles.MODULES
    with pytest.raises(Exception, match="cannot tell what 'act' does to the units"):
        specc.mask(_Model(nn.RReLU()), "hat", output_dim=3)


def test_f0_decides_the_mask_point(tmp_path, with_rrelu, monkeypatch):
    """keeps_zero is what the analysis reads: an activation with f(0) != 0 moves HAT's mask point after it."""
    def point():
        net = _analysed(tmp_path, "RReLU()")
        return next(n.name for n in net.nodes if n.meta.get("mask_point_of") == "fc1")

    assert point() == "fc1"
    monkeypatch.setitem(activations.BY_NAME, "RReLU", ActivationKind("RReLU", RRELU.params, keeps_zero=False,
                                                                     inplace=True))
    assert point() == "act"
