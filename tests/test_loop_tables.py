"""Config tables in loops: lists of strings and of tuples, a loop unpacking each row
(`for i, (k, c, s) in table`), string comparisons in guards. Each spec is compared with a
hand-written plain PyTorch module (same state-dict keys, equal outputs with the same weights),
and each refusal is made by `check` and `compile` alike, at the same file:line:col."""
from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

import specc
from specc.builder import emit, runtime_class
from specc.frontend.elaborate import elaborate
from specc.frontend.errors import SpecError
from specc.frontend.load import load_program
from specc.frontend.probe import probe

VGG = """
# torchvision's VGG configuration style: a number is a 3x3 convolution's width, "M" a 2x2 max pool.
network VGGish(output_dim: int = 10) {
    input image(3, 16, 16)
    for i, v in [8, "M", 16, "M"] {
        (features[i]: maxpool2d(2) if v == "M")
            -> ((features[i]: conv2d(v, kernel=3, padding=1) -> act{i}: ReLU()) if v != "M")
    }
    flatten
    fc: linear(output_dim)
}
"""

# MobileNet's configuration style: one row per block (kernel, out channels, batch norm, activation, stride).
MOBILE = """
network Mobile(output_dim: int = 5) {
    input image(3, 16, 16)
    for i, (k, c, use_bn, act, s) in [(3, 8, true, "RE", 1), (3, 12, false, "HS", 2), (1, 6, true, "RE", 1)] {
        block[i]: conv2d(c, kernel=k, stride=s, padding=k // 2)
            -> (bn{i}: batchnorm2d() if use_bn)
            -> (r{i}: ReLU() if act == "RE")
            -> (h{i}: Hardswish() if act == "HS")
    }
    for (a, b) in [(2, 3)] {
        pool{b}: maxpool2d(a - 1)
    }
    flatten
    fc: linear(output_dim)
}
"""


class HandVGG(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.ModuleList([nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(2),
                                       nn.Conv2d(8, 16, 3, padding=1), nn.MaxPool2d(2)])
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = torch.relu(self.features[0](x))
        x = self.features[1](x)
        x = torch.relu(self.features[2](x))
        x = self.features[3](x)
        return self.fc(torch.flatten(x, 1))


class HandMobile(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.ModuleList([nn.Conv2d(3, 8, 3, stride=1, padding=1), nn.Conv2d(8, 12, 3, stride=2, padding=1),
                                    nn.Conv2d(12, 6, 1, stride=1, padding=0)])
        self.bn0 = nn.BatchNorm2d(8)
        self.bn2 = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6 * 8 * 8, 5)

    def forward(self, x):
        x = torch.relu(self.bn0(self.block[0](x)))
        x = nn.functional.hardswish(self.block[1](x))
        x = torch.relu(self.bn2(self.block[2](x)))
        return self.fc(torch.flatten(x, 1))  # maxpool2d(1) is the identity


def _spec(tmp_path, text: str):
    p = tmp_path / "t.cl"
    p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return p


@pytest.mark.parametrize("text, hand", [(VGG, HandVGG), (MOBILE, HandMobile)], ids=["vgg", "mobilenet"])
def test_a_table_driven_spec_is_the_hand_written_module(tmp_path, text, hand):
    path = _spec(tmp_path, text)
    torch.manual_seed(0)
    ref = hand().eval()
    for m in ref.modules():  # non-trivial batch-norm statistics, so that they are compared too
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    module = specc.build(path).eval()
    assert sorted(module.state_dict()) == sorted(ref.state_dict())
    module.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        out, _ = module(x)
        assert torch.equal(out, ref(x))
    # what `check` elaborates is what the compiled class holds
    ir = elaborate(load_program(str(path)), {})
    assert sorted(".".join(m.path) for m in ir.modules) == sorted(n for n, _ in module.named_modules() if n)
    assert tuple(out.shape[1:]) == ir.nodes[ir.output].shape.dims


def test_the_generated_loop_unpacks_each_row_and_compares_strings(tmp_path):
    text = emit(load_program(_spec(tmp_path, MOBILE)))
    assert 'for i, (k, c, use_bn, act, s) in enumerate([(3, 8, True, "RE", 1), ' in text
    assert "for (a, b) in [(2, 3)]:" in text
    assert 'if act == "HS":' in text


def test_loop_names_that_are_python_keywords_are_renamed_in_the_generated_class(tmp_path):
    # `lambda` and `self` are spec names; the generated loop binds them as `lambda_` and `self_`
    # (the compiled source used to be a SyntaxError: an internal error, for plain loops too)
    path = _spec(tmp_path, """
    network K(output_dim: int = 2) {
        input features(4)
        for i, (lambda, self) in [(1, 2), (3, 4)] {
            fc[i]: linear(lambda + self)
        }
        for class in [5] {
            out{class}: linear(class) if class == 5
        }
    }
    """)
    module = specc.build(path)
    assert [m.out_features for m in module.fc] == [3, 7] and module.out5.out_features == 5
    assert "for i, (lambda_, self_) in enumerate(" in emit(load_program(path))


BAD = """
network Bad(output_dim: int = 2) {
    input features(4)
    LOOP
}
"""


@pytest.mark.parametrize("loop, needle, column", [
    ("for (a, b) in [(1, 2), (3, 4, 5)] {\n        fc{a}: linear(b)\n    }",
     "item 1 of the loop's list has 3 values, but the loop unpacks 2 names (a, b)", 5),
    ("for i, (a, b) in [(1, 2), 7] {\n        fc{a}: linear(b)\n    }",
     "item 1 of the loop's list is int 7, which cannot be unpacked into 2 names (a, b)", 5),
    ("for i, w in [(1, 2)] {\n        fc[i]: linear(w)\n    }",
     "argument 'out_features' of linear must be an int, not a tuple (1, 2)", 23),
    ("for i, w in [(1, 2)] {\n        fc[i]: linear(w + 1)\n    }",
     "'+' needs numbers, not a tuple (1, 2) and int 1", 23),
])
def test_check_and_compile_refuse_a_bad_row_alike(tmp_path, loop, needle, column):
    path = _spec(tmp_path, BAD.replace("LOOP", loop))
    program = load_program(path)
    line = 3 if column == 5 else 4
    for run in (lambda: probe(program), lambda: runtime_class(program)):
        with pytest.raises(SpecError) as info:
            run()
        assert needle in info.value.message, info.value.render()
        assert (info.value.pos.file, info.value.pos.line, info.value.pos.column) == (str(path), line, column)
        assert f"t.cl:{line}:{column}:" in info.value.render()


@pytest.mark.parametrize("loop, needle", [
    ("for (a, a) in [(1, 2)] {\n        fc{a}: linear(a)\n    }", "loop variable 'a' is named twice"),
    ("for (i, j), w in [(1, 2)] {\n        fc{w}: linear(w)\n    }", "a loop's index is one name"),
])
def test_a_malformed_unpacking_is_refused_when_parsed(tmp_path, loop, needle):
    path = _spec(tmp_path, BAD.replace("LOOP", loop))
    with pytest.raises(SpecError) as info:
        probe(load_program(path))
    assert needle in info.value.message
    assert (info.value.pos.line, info.value.pos.column) == (3, 5)
