"""`check` and the compiled class must agree (issue 20): a differential property test.

Hypothesis draws specs over the whole language (tests/agree_specs.py: parameters of every type with
argument values drawn apart from their defaults, the four input kinds, every layer kind and
activation, loops, guards, branches, residual groups, gates, module lists, computed names, `use`,
nested blocks and block parameters, includes, `pretrained`, every mask and `prepare`), and checks
the property of tests/agreement.py on each: `check -D args` succeeds exactly when the compiled
class constructs and runs, every refusal is positioned, and an accepted spec's class has `check`'s
modules and output shape and equals specc.build's.

SPECC_AGREE_EXAMPLES raises the example count (the default keeps this file under a minute);
HYPOTHESIS_PROFILE=explore draws new examples (tests/conftest.py); SPECC_AGREE_OPEN=1 also draws
the disagreements still open (tests/test_agree_regressions.py's xfails).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import agreement
import pytest
from agree_specs import Drawn, specs
from agreement import _shown
from hypothesis import HealthCheck, given, note, settings

from specc.builder import runtime_class
from specc.frontend.errors import SpecError
from specc.frontend.load import load_program
from specc.frontend.probe import probe

EXAMPLES = int(os.environ.get("SPECC_AGREE_EXAMPLES", "80"))


def disagreement(text: str, args: dict, mask: str, folder: Path, kind: str = "image") -> str | None:
    return agreement.disagreement(Drawn(text, "", args, mask, kind), folder)


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(specs())
def test_check_agrees_with_the_compiled_class(folder, drawn):
    note(drawn.text)
    note(f"arguments: {drawn.args}")
    problem = agreement.disagreement(drawn, folder)
    assert problem is None, problem


# -- regressions: the disagreements the property found (issue 20), each with its minimal spec -----

def _net(body: str, params: str = "ch: int = 3, w: int = 4, flag: bool = false, n: int = 2, pad: int = 0, "
                                  "act: activation? = ReLU", blocks: str = "") -> str:
    return f"{blocks}network N({params}) {{\n    input image(ch, 8, 8)\n{body}\n}}\n"


def _check_and_compile_refuse(folder: Path, text: str, needle: str, line: int) -> None:
    """`check` and `compile` both refuse `text` with one positioned error naming `needle` at `line`."""
    path = folder / "spec.cl"
    path.write_text(text)
    program = load_program(path)
    for run in (lambda: probe(program), lambda: runtime_class(program)):
        with pytest.raises(SpecError) as info:
            run()
        assert needle in info.value.message and info.value.pos.line == line, info.value.render()
    assert disagreement(text, {}, "", folder) is None


@pytest.mark.parametrize("body, needle, line", [
    # rules compile knew and check did not (now in specc.frontend.static_rules, which both run)
    ("    for i in range(n) {\n        l[i]: conv2d(w, kernel=1) -> add(b)\n    }\n    branch b = bc: conv2d(w, kernel=1)",
     "branch 'b' is added inside a loop before it is declared", 6),
    ("    a: act(inplace=true)", "activation parameter 'act' takes no arguments here", 3),
    ("    q[0]: conv2d(w, kernel=1), ReLU()", "a sequence cannot be an element of a module list", 3),
    # `in` at network level in what the forward computes (compile crashed: internal ValueError)
    ("    branch p = pad_channels(0, w - in.channels)\n    c: conv2d(w, kernel=1) -> add(p)",
     "`in` cannot be used in the arguments of pad_channels", 3),
    # what does not depend on the arguments is checked under a guard that is false for them
    ("    t: conv2d(4, kernal=3) if flag", "conv2d has no argument 'kernal'", 3),
    ("    t: conv2d(4, kernel=\"3\") if flag", "argument 'kernel' of conv2d", 3),
    ("    t: conv2d(kernel=3) if flag", "conv2d needs argument 'out_channels'", 3),
    ("    z: zork(3) if flag", "unknown layer 'zork'", 3),
    ("    (z: ReLU(1, 2)) if flag", "ReLU takes at most 1 positional arguments", 3),
    ("    z: conv2d(4, kernel=1) if flag -> y: n()", "'n' is a parameter of type int, not a layer", 3),
    # rules of the elaborator that depended on the guards (the compiled class did not refuse)
    ("    c: conv2d(w, kernel=1) -> x: ReLU() if flag -> x: Tanh() -> y: ReLU()", "module 'x' is declared twice", 3),
    ("    c: conv2d(w, kernel=1) -> r: ReLU() -> record if flag -> ip: ReLU(inplace=true) -> y: ReLU()",
     "its input may be a value recorded as an activation", 3),
    # a chain in a loop that runs zero times for the values checked (n=0 would let it through)
    ("    for i in range(n - 2) {\n        (l[i]: conv2d(w, kernel=1)) if flag -> record\n    }",
     "which layer's activation this `record` stores depends on the guard", 4),
])
def test_check_refuses_what_compile_refuses(folder, body, needle, line):
    _check_and_compile_refuse(folder, _net(body), needle, line)


def test_a_generated_class_name_is_refused_by_check_too(folder):
    blocks = "block b(width: int) {\n    c: conv2d(width, kernel=1)\n}\n"
    text = _net("    x: b(w)\n    block_b: ReLU()", blocks=blocks)
    _check_and_compile_refuse(folder, text, "module name 'block_b' is taken by the generated class", 7)


def test_a_computed_name_the_scheme_takes_is_refused_whatever_the_loop_counts(folder):
    text = _net("    for i in range(n - 2) {\n        c{i}s: conv2d(w, kernel=1) -> b{i}: batchnorm2d()\n    }\n"
                "    r: ReLU()") + "mask hat()\n"
    _check_and_compile_refuse(folder, text, "the masking scheme names the per-task copies", 4)


def test_block_arguments_are_checked_whatever_the_guards(folder):
    blocks = "block b(width: int) {\n    c: conv2d(width, kernel=1)\n}\n"
    _check_and_compile_refuse(folder, _net("    x: b(\"a\") if flag -> r: ReLU()", blocks=blocks),
                              "argument 'width' of block 'b' must be an int", 6)
    _check_and_compile_refuse(folder, _net("    x: b(w, depth=2) if flag -> r: ReLU()", blocks=blocks),
                              "block 'b' has no argument 'depth'", 6)


def test_a_block_body_is_checked_whatever_the_guards(folder):
    blocks = "block b(width: int) {\n    c: conv2d(width, kernel=1) -> (d: conv2d(width, strid=2)) if flag -> r: ReLU()\n}\n"
    _check_and_compile_refuse(folder, _net("    x: b(w)", blocks=blocks), "conv2d has no argument 'strid'", 2)


_constructor_refuses = agreement.constructor_refuses


def test_a_module_list_whose_first_element_is_guarded_off(folder):
    # before: AttributeError: 'N' object has no attribute 'u' (no position)
    text = _net("    u[0]: conv2d(w, kernel=1) if flag -> u[1]: ReLU()").replace("flag: bool = false", "flag: bool = true")
    _constructor_refuses(folder, text, {"flag": False}, "'u' must start at index 0, not 1",
                         "module list index 1 out of order")


def test_module_list_order_is_checked_for_the_arguments_given(folder):
    # before: ValueError without the spec's position
    text = _net("    for i in range(n) {\n        o[i + pad]: ReLU()\n    }")
    _constructor_refuses(folder, text, {"pad": 1}, "'o' must start at index 0, not 1", "module list index 1 out of order")


def test_pad_channels_sign_is_checked_for_the_arguments_given(folder):
    text = _net("    pad_channels(0, pad) -> c: conv2d(w, kernel=1)")
    _constructor_refuses(folder, text, {"pad": -1}, "pad_channels", "pad_channels")


def test_add_shapes_are_checked_for_the_arguments_given(folder):
    blocks = "block r(width: int) {\n    branch s = identity\n    c: conv2d(width, kernel=1) -> add(s)\n}\n"
    text = _net("    x: r(w)", params="ch: int = 4, w: int = 4", blocks=blocks)
    _constructor_refuses(folder, text, {"w": 2}, "add(s) joins shapes", "the add joins shapes")


@pytest.mark.parametrize("body", [
    # before: check accepted the defaults (n=2); the class compiled for them, constructed with n=0,
    # overwrote the caller's input in its forward
    "    s: b(w) * n -> ip: ReLU(inplace=true)",
    "    (c: conv2d(w, kernel=1)) if flag -> ip: ReLU(inplace=true)",
    "    d: dropout(0.5) -> ip: ReLU(inplace=true)",  # dropout in eval mode returns its input
    "    flatten -> ip: ReLU(inplace=true)",  # a view of the input
    "    x: b(w) -> ip: ReLU(inplace=true)",  # the block may pass its input through
])
def test_inplace_on_what_may_be_the_callers_input_is_refused_whatever_the_arguments(folder, body):
    blocks = "block b(width: int) {\n    (c: conv2d(width, kernel=1) -> r: ReLU()) if flag -> d: dropout(0.1)\n}\n"
    _check_and_compile_refuse(folder, _net(body, blocks=blocks), "may be the network's input", 6)


def test_inplace_on_a_block_input_its_branches_read_is_refused_whatever_the_guards(folder):
    # refused by the static rule, before the elaborator (which, for flag=false, says the branch is unused)
    blocks = "block b(width: int) {\n    branch s = identity\n" \
             "    ip: ReLU(inplace=true) -> c: conv2d(width, kernel=1) -> (add(s)) if flag -> r: ReLU()\n}\n"
    text = _net("    c: conv2d(w, kernel=1) -> x: b(w)", blocks=blocks)
    _check_and_compile_refuse(folder, text, "other layers or branches read too", 3)


def test_inplace_after_a_new_tensor_is_accepted(folder):
    blocks = "block b(width: int) {\n    c: conv2d(width, kernel=1) -> r: ReLU()\n}\n"
    for body in ("    c: conv2d(w, kernel=1) -> ip: ReLU(inplace=true)", "    x: b(w) -> ip: ReLU(inplace=true)",
                 "    x: b(w) * n -> c: conv2d(w, kernel=1) -> ip: ReLU(inplace=true)"):
        text = _net(body, blocks=blocks)
        (folder / "spec.cl").write_text(text)
        probe(load_program(folder / "spec.cl"))
        for n in (0, 2):
            assert disagreement(text, {"n": n}, "", folder) is None


@pytest.mark.parametrize("body, args, lists", [
    # a loop that runs zero times: the generated constructor creates its lists before the loop
    ("    for i in range(n) {\n        l[i]: conv2d(w, kernel=1) -> la[i]: act()\n    }", {"n": 0}, {"l", "la"}),
    # guards: one that holds for the arguments, one that does not, one that changes with the iteration
    ("    for i in range(n) {\n        (l[i]: conv2d(w, kernel=1)) if flag -> (m[i]: ReLU()) if i > 5 -> z[i]: act()\n    }",
     {"n": 0, "flag": False, "act": None}, {"m"}),
    ("    for i in range(n) {\n        (l[i]: conv2d(w, kernel=1)) if flag -> (m[i]: ReLU()) if i > 5\n            -> z[i]: act()\n    }",
     {"n": 2, "flag": True}, {"l", "m", "z"}),
])
def test_the_lists_of_a_loop_are_the_same_on_both_sides(folder, body, args, lists):
    text = _net(body)
    assert disagreement(text, args, "", folder) is None
    program = load_program(folder / "spec.cl")
    net = probe(program, args)
    assert {m.path[0] for m in net.modules if m.cls == "ModuleList"} == lists
    model = runtime_class(program)(**args)
    # registered in the same order (the state dict's order)
    assert [m.path[0] for m in net.modules if len(m.path) == 1] == [n for n, _ in model.named_children()]


def test_torch_errors_at_construction_name_the_spec_line(folder):
    # before: ValueError: groups must be a positive integer (torch's, without the layer or the line)
    text = _net("    c: conv2d(w, kernel=1)\n    e: conv2d(w * n, kernel=1, groups=n)")
    _constructor_refuses(folder, text, {"n": 0}, "conv2d needs out_channels", "groups must be a positive integer")
    with pytest.raises(ValueError) as failed:
        runtime_class(load_program(folder / "spec.cl"))(n=0)
    assert "spec.cl:4:" in _shown(failed.value), _shown(failed.value)  # the line of `e`, not of `c`


def test_a_masking_analysis_error_at_construction_names_the_spec_line(folder):
    # before: AnalysisError naming modules, without the spec position (check -D flag=true names it)
    text = ("network N(w: int = 4, flag: bool = false) {\n    input features(8)\n"
            "    branch cc = cl: linear(w) -> record\n    cm: linear(w) -> concat(cc)\n"
            "    bn: batchnorm1d() if flag -> x: linear(w)\n}\nmask hat()\n")
    _constructor_refuses(folder, text, {"flag": True, "gate": "sigmoid"}, "does not keep a zero unit zero",
                         "does not keep a zero unit zero")
    with pytest.raises(Exception) as failed:
        runtime_class(load_program(folder / "spec.cl"))(flag=True, gate="sigmoid")
    assert "spec.cl:5" in _shown(failed.value), _shown(failed.value)  # the batch norm's line
