"""`check` and the compiled class must agree (issue 20): a differential property test.

Hypothesis draws specs over the language (parameters of every type with argument values drawn
apart from their defaults, loops, guards on elements and groups, branches joined by `add` and
`concat`, module lists, computed names, sequences and repetitions, `record`, `use`, blocks that
read `in`, several layer kinds, `mask hat()` / `mask wsn()`), and for each one:

1. `compile` (the emitter, in memory) succeeds exactly when `check` (specc.frontend.probe.probe,
   what the CLI's `check` runs) succeeds for the same values (the defaults);
2. for the drawn constructor arguments, `check -D args` succeeds exactly when the compiled class
   constructs with them and runs one forward;
3. every refusal names the spec's position: a SpecError (file:line:col) from the front end, or
   from a constructor an exception whose message (or note) names `file.cl:line`; never an internal
   error;
4. when both succeed, the compiled class has the modules `check` elaborated, its output has the
   shape `check` inferred, and the class written by the emitter equals specc.build's
   (state_dict and output torch.equal).

SPECC_AGREE_EXAMPLES raises the example count (the default keeps this file under a minute);
HYPOTHESIS_PROFILE=explore draws new examples (tests/conftest.py).
"""
from __future__ import annotations

import collections
import os
import re
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import specc
from specc.builder import runtime_class
from specc.frontend.errors import SpecError
from specc.frontend.load import load_program
from specc.frontend.probe import probe

EXAMPLES = int(os.environ.get("SPECC_AGREE_EXAMPLES", "80"))
SIZE = 8  # the input images' height and width
OUTCOMES = collections.Counter()  # how the examples ended (a generator that only makes refusals tests little)
RUNTIME_POSITION = re.compile(r"spec\.cl:\d+")

# -- the generator ---------------------------------------------------------------------------------

# name, declaration, strategy of argument values
PARAMS = [
    ("ch", "ch: int = 3", st.sampled_from([1, 2, 3, 4])),
    ("w", "w: int = 4", st.sampled_from([2, 4, 6])),
    ("flag", "flag: bool = false", st.booleans()),
    ("on", "on: bool = true", st.booleans()),
    ("n", "n: int = 2", st.sampled_from([0, 1, 2, 3])),
    ("widths", "widths: list[int] = [4, 6]", st.lists(st.sampled_from([2, 4, 6]), min_size=0, max_size=3)),
    ("act", "act: activation? = ReLU", st.sampled_from(["ReLU", "Tanh", None])),
    ("p", "p: float = 0.25", st.sampled_from([0.0, 0.5])),
    ("pad", "pad: int = 0", st.sampled_from([-1, 0, 1, 2])),
    ("tag", 'tag: str = "a"', st.sampled_from(["a", "b"])),
    ("drop", "drop: float? = none", st.sampled_from([None, 0.5])),
]

BLOCKS = """
block res(width: int, stride: int = 1) {
    branch sc = sp: conv2d(width, kernel=1, stride=stride) if in.channels != width or stride != 1
    c1: conv2d(width, kernel=3, stride=stride, padding=1) -> b1: batchnorm2d() -> add(sc) -> r1: ReLU()
}
block opta(width: int) {
    branch sc = pad_channels(0, width - in.channels)
    c1: conv2d(width, kernel=3, padding=1) -> add(sc) -> r1: act()
}
block two(width: int) {
    (c1: conv2d(width, kernel=1) -> record) if flag
    c2: conv2d(in.channels, kernel=1) -> r: ReLU() -> use r
}
"""

# statement templates; {j} makes the names of one statement unique
STATEMENTS = [
    "c{j}: conv2d(w, kernel=3, padding=1) -> bn{j}: batchnorm2d() if flag -> a{j}: act() -> record",
    "(g{j}: conv2d(w, kernel=1) -> ga{j}: ReLU() -> record) if flag",
    "(g{j}: conv2d(w, kernel=1) -> ga{j}: ReLU()) if not flag",
    "t{j}: conv2d(w, kernal=3) if flag",
    "t{j}: conv2d(w, kernel=3, padding=1) if on -> tt{j}: Tanh() if flag",
    "for i, v in widths {{\n    L{j}[i]: conv2d(v, kernel=3, padding=1) -> La{j}[i]: act()\n}}",
    "for i in range(n) {{\n    k{j}_{{i}}: conv2d(w, kernel=1) -> record\n}}",
    "for i in range(n) {{\n    o{j}[i + pad]: ReLU()\n}}",
    "s{j}: conv2d(w, kernel=1), ReLU() * n",
    "s{j}: res(w) * n",
    "q{j}[0]: conv2d(w, kernel=1), ReLU()",
    "u{j}[0]: conv2d(w, kernel=1) if flag -> u{j}[1]: ReLU()",
    "r{j}: ReLU() -> c{j}: conv2d(w, kernel=1) -> use r{j}",
    "(r{j}: ReLU()) if flag -> use r{j}",
    "ip{j}: ReLU(inplace=true)",
    "aa{j}: act(inplace=true)",
    "aa{j}: act()",
    "ni{j}: conv2d(in.channels, kernel=1)",
    "ni{j}: conv2d(w, kernel=1) if in.channels > 2",
    "rb{j}: res(w)",
    "rb{j}: res(w, stride=2)",
    "pb{j}: opta(w)",
    "tb{j}: two(w)",
    "branch b{j} = bc{j}: conv2d(w, kernel=1)\nnc{j}: conv2d(w, kernel=1) -> add(b{j})",
    "branch cc{j} = cb{j}: conv2d(w, kernel=1) -> cr{j}: ReLU() -> record\ncm{j}: conv2d(w, kernel=1) -> concat(cc{j})",
    "for i in range(n) {{\n    lb{j}[i]: conv2d(w, kernel=1) -> add(bb{j})\n}}\nbranch bb{j} = bd{j}: conv2d(w, kernel=1)",
    "block_res: ReLU()",
    "self: ReLU()",
    "mp{j}: maxpool2d(2)",
    "d{j}: dropout(p) -> dd{j}: dropout(0.5) if on",
    "pad_channels(0, pad) -> pc{j}: conv2d(w, kernel=1)",
    "z{j}: zork(3) if flag",
    "c{j}: conv2d(w, kernel=1) -> record if on -> cr{j}: ReLU() -> use cr{j} if flag",
    "hw{j}: conv2d(w, kernel=3, padding=in.height // 8)",
    "c{j}: conv2d(w, kernel=1) -> x{j}: ReLU() if flag -> x{j}: Tanh() if on -> y{j}: ReLU()",
    "c{j}: conv2d(w, kernel=1) -> r{j}: ReLU() -> record if flag -> ip{j}: ReLU(inplace=true) -> y{j}: ReLU()",
    "for i in range(n - 2) {{\n    (l{j}[i]: conv2d(w, kernel=1)) if flag -> record\n}}",
    "for i in range(n - 2) {{\n    q{j}x{{i}}s: conv2d(w, kernel=1) -> qb{j}x{{i}}: batchnorm2d()\n}}",
    "x{j}: res(\"a\") if flag -> y{j}: ReLU()",
    "(pl{j}: maxpool2d(2) -> pc{j}: conv2d(w, kernel=1)) if on -> cc{j}: conv2d(w, kernel=1)",
    "x{j}: conv2d(w, kernel=n + 1, stride=2)",
    "(tg{j}: conv2d(w, kernel=1) -> tr{j}: ReLU()) if tag == \"a\"",
    "c{j}: conv2d(w, kernel=1) -> (dr{j}: dropout(drop) if drop != none) -> e{j}: ReLU(inplace=true)",
    "for i, v in widths {{\n    (m{j}[i]: conv2d(v, kernel=1)) if i > 0 -> mr{j}[i]: act()\n}}",
    "for i in range(n) {{\n    for k in range(2) {{\n        y{j}_{{i}}_{{k}}: conv2d(w, kernel=1)\n    }}\n}}",
    "e{j}: conv2d(w * n, kernel=1, groups=n)",
    "branch pp{j} = pad_channels(0, w - in.channels)\npq{j}: conv2d(w, kernel=1) -> add(pp{j})",
    "branch g{j} = gp{j}: adaptive_avgpool2d(1) -> flatten -> gl{j}: linear(w) -> gs{j}: Sigmoid()\n"
    "gc{j}: conv2d(w, kernel=1) -> mul(g{j}) if on -> record",
    "branch h{j} = hp{j}: adaptive_avgpool2d(1) -> hl{j}: conv2d(n + 1, kernel=1)\nhc{j}: conv2d(w, kernel=1) -> mul(h{j})",
    "branch ga{j} = gb{j}: conv2d(w, kernel=1)\ngn{j}: conv2d(w, kernel=1) -> add(ga{j}) if flag -> gr{j}: ReLU()",
    "branch gi{j} = identity\ngm{j}: conv2d(w, kernel=1) -> add(gi{j}) if in.channels == w and not flag -> record",
]

# the same for feature vectors (`input features(ch * 4)`)
FEATURE_STATEMENTS = [
    "f{j}: linear(w) -> fb{j}: batchnorm1d() if flag -> fa{j}: act() -> record",
    "(g{j}: linear(w) -> gr{j}: ReLU()) if on",
    "for i, v in widths {{\n    fc{j}[i]: linear(v) -> fd{j}[i]: dropout(p) -> fr{j}[i]: act()\n}}",
    "for i in range(n) {{\n    h{j}_{{i}}: linear(w + i) -> record\n}}",
    "s{j}: linear(w), ReLU(), linear(w) * n",
    "branch b{j} = bl{j}: linear(w)\nnl{j}: linear(w) -> add(b{j})",
    "branch cc{j} = cl{j}: linear(w) -> record\ncm{j}: linear(w) -> concat(cc{j})",
    "d{j}: dropout(p) -> ip{j}: ReLU(inplace=true)",
    "ni{j}: linear(in.features // 2 + 1)",
    "bn{j}: batchnorm1d(momentum=none) if flag -> x{j}: linear(n * 2)",
    "z{j}: linear(w, bais=false) if flag",
    "flatten -> f{j}: linear(w) -> (u{j}[0]: ReLU()) if on -> u{j}[1]: Tanh()",
    "r{j}: ReLU() -> l{j}: linear(w) -> use r{j}",
    "branch g{j} = gl{j}: linear(w) -> gs{j}: Sigmoid()\ngf{j}: linear(w) -> mul(g{j}) -> record",
]
FEATURE_TAILS = ["", "head: linear(w)", "head: linear(w) -> hb: batchnorm1d() if on -> ha: act()"]
BINDINGS = ["", "", "backbone M = N(tag=\"a\")", "backbone M = continual N"]

TAILS = ["", "flatten -> head: linear(w)", "ap: adaptive_avgpool2d(1) -> flatten -> head: linear(w) -> record",
         "flatten -> f1: linear(w) -> fb: batchnorm1d() if on -> fa: act() -> record -> f2: linear(n + 1)"]
MASKS = ["", "", "", "", "", "", "mask hat()", "mask wsn()", "mask amnesiac_hat()",
         'mask hat(batch_normalization = "independent")', 'mask wsn(batch_normalization = "independent")']


@st.composite
def specs(draw):
    """(spec text, constructor arguments, mask)."""
    features = draw(st.integers(0, 3)) == 0
    chosen = draw(st.lists(st.sampled_from(FEATURE_STATEMENTS if features else STATEMENTS), min_size=1, max_size=5))
    body = [s.format(j=j) for j, s in enumerate(chosen)]
    body.append(draw(st.sampled_from(FEATURE_TAILS if features else TAILS)))
    mask = draw(st.sampled_from(MASKS))
    binding = draw(st.sampled_from(BINDINGS))
    params = [p for p in PARAMS]
    args = {}
    for name, _, values in params:
        if draw(st.integers(0, 3)) and not (name == "tag" and "tag=" in binding):
            args[name] = draw(values)
    text = (BLOCKS + "network N(\n" + "".join(f"    {decl},\n" for _, decl, _ in params) + ") {\n"
            + ("    input features(ch * 4)\n" if features else "    input image(ch, 8, 8)\n")
            + "".join("    " + line + "\n" for stmt in body for line in stmt.split("\n") if line)
            + "}\n" + (binding + "\n" if binding else "") + (mask + "\n" if mask else ""))
    if "hat(" in mask:
        args["gate"] = "sigmoid"  # the masked class's parameter without a default
    return text, args, mask


# -- the property ----------------------------------------------------------------------------------

def _front(program, overrides):
    """None, or the SpecError `check` gives (any other exception propagates: a bug)."""
    try:
        return None, probe(program, overrides, image_size=SIZE)
    except SpecError as e:
        assert e.pos is not None and e.pos.line > 0, f"unpositioned SpecError: {e}"
        return e, None


def _forward(model, x, mask):
    model.train()
    if "hat(" in mask:
        model.setup_task_id(1)
        return model(x, "train", s_max=400, batch_idx=1, num_batches=3)[0]
    if "wsn(" in mask:
        model.setup_task_id(1)
        return model(x, "train", mask_percentage=0.5)[0]
    return model(x)[0]


def _construct_and_run(cls, args, mask, features, seed=0):
    torch.manual_seed(seed)
    model = cls(**args)
    size = (args.get("ch", 3) * 4,) if features else (args.get("ch", 3), SIZE, SIZE)
    x = torch.randn(2, *size, generator=torch.Generator().manual_seed(1))
    before = x.clone()
    torch.manual_seed(seed + 1)
    out = _forward(model, x, mask)
    assert torch.equal(x, before), "the forward changed the caller's input tensor"
    return model, out


def disagreement(text: str, args: dict, mask: str, folder: Path) -> str | None:
    """Why `check` and the compiled class disagree on this spec (a short class name first), or None."""
    path = folder / "spec.cl"
    path.write_text(text)
    try:
        program = load_program(path)
    except SpecError as e:  # the parser is shared by both sides
        assert e.pos is not None and e.pos.line > 0, f"unpositioned SpecError: {e}"
        return None
    checked, _ = _front(program, {})
    features = program.network.input.kind == "features"
    try:
        cls = runtime_class(program)
        compiled = None
    except SpecError as e:
        cls, compiled = None, e
        if e.pos is None:
            return f"compile: unpositioned SpecError: {e.message}"
    # 1. compile refuses exactly what check refuses (for the same values)
    if (checked is None) != (compiled is None):
        return (f"check {'ok' if checked is None else 'refuses'} / compile "
                f"{'ok' if compiled is None else 'refuses'}: {(checked or compiled).message}")
    if cls is None:
        OUTCOMES["refused by both for the defaults"] += 1
        return None
    # 2. for the drawn arguments
    refused, net = _front(program, args)
    try:
        model, out = _construct_and_run(cls, args, mask, features)
        failed = None
    except SpecError as e:
        return f"construction raised a SpecError: {e.message}"
    except AssertionError as e:
        return f"forward: {e}"
    except Exception as e:  # what a constructor refuses with: positioned by the spec's line
        failed = e
        if refused is not None and not RUNTIME_POSITION.search(_shown(e)):
            return f"construction: unpositioned {type(e).__name__}: {str(e)[:120]}"
    if (refused is None) != (failed is None):
        return (f"check {'ok' if refused is None else 'refuses'} / construct "
                f"{'ok' if failed is None else 'refuses'}: {(refused.message if refused else f'{type(failed).__name__}: {failed}')[:160]}")
    if refused is not None:
        OUTCOMES["refused by both for the arguments"] += 1
        return None
    OUTCOMES["accepted by both"] += 1
    # 3. both succeed: the same modules, the same output shape, and specc.build's class
    expected = {".".join(m.path) for m in net.modules}
    if not mask:
        actual = {name for name, _ in model.named_modules() if name}
        if expected != actual:
            return f"modules differ: check only {sorted(expected - actual)}, compiled only {sorted(actual - expected)}"
    out_shape = net.nodes[net.output].shape.dims
    if tuple(out.shape[1:]) != tuple(out_shape):
        return f"output shape: check {out_shape}, compiled {tuple(out.shape[1:])}"
    built_model, built_out = _construct_and_run(lambda **a: _build(path, a), args, mask, features)
    sa, sb = model.state_dict(), built_model.state_dict()
    if list(sa) != list(sb) or not all(torch.equal(sa[k], sb[k]) for k in sa):
        return "the compiled class's state_dict differs from specc.build's"
    if not torch.equal(out, built_out):
        return "the compiled class's output differs from specc.build's"
    return None


def _shown(e: BaseException) -> str:
    """An exception as a traceback shows it: its message, then its notes."""
    return "\n".join([str(e)] + list(getattr(e, "__notes__", ())))


def _build(path, args):
    return specc.build(path, **args)


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(specs())
def test_check_agrees_with_the_compiled_class(folder, drawn):
    text, args, mask = drawn
    note(text)
    note(f"arguments: {args}")
    problem = disagreement(text, args, mask, folder)
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


def _constructor_refuses(folder: Path, text: str, args: dict, check_needle: str, runtime_needle: str) -> None:
    """`check -D args` refuses with `check_needle`; the compiled class (compiled for the defaults,
    which check accepts) refuses `args` at construction, positioned at the spec's line."""
    path = folder / "spec.cl"
    path.write_text(text)
    program = load_program(path)
    probe(program)
    with pytest.raises(SpecError) as info:
        probe(program, args)
    assert check_needle in info.value.message, info.value.render()
    with pytest.raises(Exception) as failed:
        runtime_class(program)(**args)
    assert runtime_needle in str(failed.value) and RUNTIME_POSITION.search(_shown(failed.value)), _shown(failed.value)
    assert disagreement(text, args, "", folder) is None


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
