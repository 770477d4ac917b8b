"""Residual groups `(+ a -> b)` (the stream plus the group's output, modules in the current scope) and
`in.units` / `in.length` of tokens and signals in generated constructors, against hand-written plain
PyTorch with the same weights (state_dict keys, forward and gradients, torch.equal)."""
from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

import specc
from specc.frontend.errors import SpecError

PRE_NORM = """
    block layer(hidden: int) {
        (+ norm1: layernorm() -> fc1: linear(hidden) -> act1: ReLU() -> record -> fc2: linear(in.features)) if hidden > 0
        (+ norm2: layernorm() -> fc3: linear(in.units))
    }
    network PreNorm(output_dim: int = 6, hidden: int = 12) {
        input features(6)
        first: layer(hidden)
        (+ fc: linear(6))
    }
"""


class Layer(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.hidden = hidden
        if hidden > 0:
            self.norm1, self.fc1, self.act1, self.fc2 = nn.LayerNorm(6), nn.Linear(6, hidden), nn.ReLU(), \
                nn.Linear(hidden, 6)
        self.norm2, self.fc3 = nn.LayerNorm(6), nn.Linear(6, 6)

    def forward(self, x):
        acts = {}
        if self.hidden > 0:
            h = acts["first/fc1"] = self.act1(self.fc1(self.norm1(x)))
            x = x + self.fc2(h)
        return x + self.fc3(self.norm2(x)), acts


class Ref(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.first, self.fc = Layer(hidden), nn.Linear(6, 6)

    def forward(self, x):
        x, acts = self.first(x)
        return x + self.fc(x), acts


@pytest.mark.parametrize("hidden", [12, 0])
def test_residual_groups_equal_hand_written_pytorch(tmp_path, hidden):
    p = tmp_path / "pre.cl"
    p.write_text(textwrap.dedent(PRE_NORM), encoding="utf-8")
    ours, ref = specc.build(p, hidden=hidden), Ref(hidden)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for q in ref.parameters():
            q.copy_(torch.randn(q.shape, generator=g))
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    xa = torch.randn(4, 6, generator=g).requires_grad_()
    xb = xa.detach().clone().requires_grad_()
    (ya, acts_a), (yb, acts_b) = ours(xa), ref(xb)
    assert torch.equal(ya, yb) and acts_a.keys() == acts_b.keys()
    assert all(torch.equal(acts_a[k], acts_b[k]) for k in acts_a)
    ya.sum().backward(), yb.sum().backward()
    assert torch.equal(xa.grad, xb.grad)


def test_in_units_and_length_follow_the_shape_kind(tmp_path):
    """tokens (L, D): units and features D, length L; a signal (C, L): units C, length L."""
    p = tmp_path / "k.cl"
    p.write_text(textwrap.dedent("""
        network Kinds(output_dim: int = 4) {
            input image(3, 8, 8)
            patch_embed: patch_embed(6, 4) -> fc: linear(2 * in.units + in.length) -> select_token(3)
        }
    """), encoding="utf-8")
    m = specc.build(p)
    assert (m.fc.in_features, m.fc.out_features) == (6, 16)
    assert m(torch.randn(2, 3, 8, 8))[0].shape == (2, 16)
    p.write_text(textwrap.dedent("""
        network Sig(output_dim: int = 4) {
            input signal(3, 10)
            conv: conv1d(2 * in.units + in.length, kernel=1)
        }
    """), encoding="utf-8")
    assert specc.build(p).conv.out_channels == 16


def test_a_residual_group_must_keep_its_shape_and_be_a_plus(tmp_path):
    p = tmp_path / "bad.cl"
    p.write_text("network R(output_dim: int = 2) {\n    input features(8)\n    (+ fc: linear(output_dim))\n}\n")
    with pytest.raises(SpecError, match=r"the residual group's output \(2\) and its input \(8\) differ") as e:
        specc.build(p)
    assert (e.value.pos.line, e.value.pos.column) == (3, 5)
    p.write_text("network R(output_dim: int = 2) {\n    input features(8)\n    (- fc: linear(8))\n}\n")
    with pytest.raises(SpecError, match=r"a residual group is written `\(\+ \.\.\.\)`"):
        specc.build(p)
