"""The lowering both interpreters consume (specc.frontend.lower): what `check` evaluates is what
the compiled class does. Each case here was decided by two copies of a rule before (the elaborator's
and the source writer's) and is decided by one lowered guard now."""
from __future__ import annotations

import textwrap

import pytest
import torch

import specc
from specc.frontend.elaborate import elaborate
from specc.frontend.errors import SpecError
from specc.frontend.load import load_program
from specc.frontend.probe import probe

REPEATED = """
network Rep(output_dim: int = 2, act: activation? = none) {
    input features(4)
    fc: linear(4) -> acts: act() * 2 -> out: linear(output_dim)
}
"""

LISTS = """
network Lists(output_dim: int = 2, act: activation? = none, widths: list[int] = [4, 6]) {
    input features(4)
    for i, w in widths {
        fc[i]: linear(w) -> a[i]: act()
    }
    out: linear(output_dim)
}
"""


def _spec(tmp_path, text: str):
    p = tmp_path / "t.cl"
    p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return p


def _agree(path, **args) -> list[str]:
    """The modules `check` elaborates for `args` are the compiled class's (sorted names), and its forward
    has the output shape `check` inferred."""
    ir = elaborate(load_program(str(path)), args)
    module = specc.build(path, **args)
    names = sorted(n for n, _ in module.named_modules() if n)
    assert sorted(".".join(m.path) for m in ir.modules) == names
    out, _ = module(torch.zeros(2, 4))
    assert tuple(out.shape[1:]) == ir.nodes[ir.output].shape.dims
    return names


def test_a_repeated_optional_activation_is_left_out_when_none(tmp_path):
    # The element's implicit guard (`act is not None`) covers its repetition on both sides; the
    # elaborator used to refuse it ("'act' cannot be repeated") where the compiled class skipped it.
    path = _spec(tmp_path, REPEATED)
    probe(load_program(str(path)))  # what `specc check` runs: ok
    assert _agree(path) == ["fc", "out"]
    assert _agree(path, act="Tanh") == ["acts", "acts.0", "acts.1", "fc", "out"]


def test_a_loop_list_of_an_optional_activation_exists_under_its_implicit_guard(tmp_path):
    path = _spec(tmp_path, LISTS)
    probe(load_program(str(path)))
    assert _agree(path) == ["fc", "fc.0", "fc.1", "out"]
    assert _agree(path, act="ReLU") == ["a", "a.0", "a.1", "fc", "fc.0", "fc.1", "out"]
    source = specc.emit.source.emit_source(load_program(str(path)))
    assert "if act is not None:\n            self.a = nn.ModuleList()" in source


def test_an_activation_parameter_in_a_sequence_builds_on_both_sides(tmp_path):
    # the writer used to refuse it ("'act' cannot be repeated") where `check` accepted it
    path = _spec(tmp_path, REPEATED.replace("act: activation? = none", "act: activation = Tanh")
                 .replace("act() * 2", "linear(4), act()"))
    probe(load_program(str(path)))
    assert _agree(path) == ["acts", "acts.0", "acts.1", "fc", "out"]


@pytest.mark.parametrize("seq, message", [
    ("linear(4), act()", "activation parameter 'act' may be none, so it cannot be part of a sequence"),
    ("linear(4), flatten()", "'flatten' has no module, so it cannot be repeated or part of a sequence"),
    ("flatten() * 2", "'flatten' has no module, so it cannot be repeated or part of a sequence"),
])
def test_what_cannot_be_part_of_a_sequence_is_refused_whatever_the_guards(tmp_path, seq, message):
    path = _spec(tmp_path, REPEATED.replace("acts: act() * 2", f"acts: {seq} if output_dim == 99"))
    with pytest.raises(SpecError) as info:
        probe(load_program(str(path)))
    assert message in str(info.value)
    assert info.value.pos.line == 3


USES = """
network U(output_dim: int = 2, n: int = 2) {
    input features(4)
    branch b = r: ReLU()
    for i in range(n) {
        fc{i}: linear(4) -> t{i}: Tanh()
    }
    fc: linear(4) -> add(b) -> s: Sigmoid() -> USE -> out: linear(output_dim)
}
"""


@pytest.mark.parametrize("use", ["use r", "use t0", "use r if n == 99"])
def test_a_use_of_a_module_declared_in_a_branch_or_a_loop_is_refused(tmp_path, use):
    # `check` used to accept these (the elaborator found the module) and `compile` failed with an
    # internal KeyError (the writer's targets are the scope's own chains): one rule now
    path = _spec(tmp_path, USES.replace("USE", use))
    with pytest.raises(SpecError) as info:
        probe(load_program(str(path)))
    name = use.split()[1]
    assert f"`use {name}`: the network has no module '{name}' declared before this point" in str(info.value)
    assert (info.value.pos.line, info.value.pos.column) == (7, path.read_text().splitlines()[6].index(use) + 5)


def test_a_use_of_a_module_of_the_scope_chains_builds_on_both_sides(tmp_path):
    path = _spec(tmp_path, USES.replace("USE", "use s"))
    probe(load_program(str(path)))
    assert "s" in _agree(path)


def test_a_module_list_whose_first_element_is_guarded_exists_on_both_sides(tmp_path):
    # the compiled class creates the list before the guard; `check` used to leave it out
    path = _spec(tmp_path, """
        network M(output_dim: int = 2, flag: bool = false) {
            input features(4)
            fc[0]: linear(4) if flag
            out: linear(output_dim)
        }
        """)
    assert _agree(path) == ["fc", "out"]
    assert _agree(path, flag=True) == ["fc", "fc.0", "out"]


@pytest.mark.parametrize("name, reason", [
    ("forward", "'forward' cannot be a module name"),
    ("self", "'self' cannot be a module name"),
])
def test_a_reserved_module_name_is_refused_whatever_the_guards(tmp_path, name, reason):
    # the name was checked only where the elaborator declared the module (flag true)
    path = _spec(tmp_path, f"""
        network M(output_dim: int = 2, flag: bool = false) {{
            input features(4)
            {name}: linear(4) if flag
            out: linear(output_dim)
        }}
        """)
    with pytest.raises(SpecError) as info:
        probe(load_program(str(path)))
    assert reason in str(info.value)
    assert (info.value.pos.line, info.value.pos.column) == (3, 5)


def test_a_module_named_like_a_parameter_is_refused_whatever_the_guards(tmp_path):
    path = _spec(tmp_path, """
        network M(output_dim: int = 2, flag: bool = false, width: int = 4) {
            input features(4)
            width: linear(4) if flag
            out: linear(output_dim)
        }
        """)
    with pytest.raises(SpecError) as info:
        probe(load_program(str(path)))
    assert "module 'width' has the name of a parameter" in str(info.value)
    assert (info.value.pos.line, info.value.pos.column) == (3, 5)
