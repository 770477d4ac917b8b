"""Hostile inputs for the syntax of issue 12 (groups and guards, `concat`, `use`, computed module
names, `in` at network level, backbone bindings and block-typed parameters), in the style of
tests/test_hostile_inputs.py: whatever the spec says, `specc check` (and `compile`) ends with exit
status 0 or 1, a positioned message and no traceback, in bounded time, and nothing from the spec
reaches generated code unvalidated."""
from __future__ import annotations

import ast
import time

import pytest
from test_hostile_inputs import check_error, cli, image_net, net, write

from specc.core.limits import LIST_LENGTH, NESTING

# ---------------------------------------------------------------------------------------------
# groups and guards
# ---------------------------------------------------------------------------------------------

def test_ten_thousand_nested_groups(tmp_path, capsys):
    body = "    " + "(" * 10000 + "x: linear(4)" + ")" * 10000 + " if true"
    check_error(tmp_path, capsys, net(body), "nested too deeply", 3)


def test_groups_within_the_nesting_limit_still_work(tmp_path, capsys):
    depth = NESTING - 2
    p = write(tmp_path, "t.cl", net("    " + "(" * depth + "x: linear(4) -> record" + ") if true" * depth))
    rc, _, err = cli(["check", p], capsys)
    assert rc == 0, err


@pytest.mark.parametrize("body, needle", [
    ("    (x: linear(4) -> record", "unexpected '}'"),      # unclosed (the error is at the `}`)
    ("    x: linear(4) -> record)", "unexpected"),          # unopened
    ("    () if true", "unexpected"),                        # empty
    ("    (x: linear(4)) if", "unexpected '}'"),             # guard without condition
    ("    (x: linear(4)) if true if true", "unexpected"),    # two guards
    ("    x: linear(4) -> ((y: ReLU() -> z: ReLU() if true))", "guards only the last element"),
    ("    x: linear(4) -> " + " -> ".join(["record"] * 2) + " if true", "guards only the last element"),
])
def test_broken_groups_are_positioned_errors(tmp_path, capsys, body, needle):
    check_error(tmp_path, capsys, net(body), needle, 4 if needle == "unexpected '}'" else 3)


def test_a_refused_guard_in_a_huge_chain_gives_a_bounded_hint(tmp_path, capsys):
    chain = " -> ".join(f"a{i}: ReLU()" for i in range(3000))
    err = check_error(tmp_path, capsys, net(f"    x: linear(4) -> {chain} -> z: ReLU() if true"),
                      "guards only the last element", 3)
    assert len(err) < 3000  # message and hint cut to their limits, the excerpt around the column


# ---------------------------------------------------------------------------------------------
# concat, use
# ---------------------------------------------------------------------------------------------

def test_concat_of_one_branch_a_thousand_times(tmp_path, capsys):
    names = ", ".join(["b"] * 1000)
    check_error(tmp_path, capsys, image_net(f"    branch b = identity\n    c: conv2d(4, kernel=1) -> concat({names})"),
                "named twice", 4)


def test_concat_of_many_branches_is_fast(tmp_path, capsys):
    branches = "\n".join(f"    branch b{i} = c{i}: conv2d(1, kernel=1)" for i in range(300))
    joined = ", ".join(f"b{i}" for i in range(300))
    p = write(tmp_path, "t.cl", image_net(f"{branches}\n    c: conv2d(1, kernel=1) -> concat({joined})"))
    start = time.monotonic()
    rc, out, err = cli(["check", p], capsys)
    assert rc == 0, err
    assert time.monotonic() - start < 30


def test_concat_channels_past_the_value_size_limit(tmp_path, capsys):
    # each side below the limit (2**30 + 4 channels of unstated height and width), their
    # concatenation above it: refused at the concat
    big = 2 ** 30
    check_error(tmp_path, capsys, net(f"    branch b = pad_channels(0, {big})\n"
                                      f"    pad_channels(0, {big}) -> concat(b)", inp="image(4)"),
                "more than 2,147,483,648", 4)


def test_use_in_a_loop_of_the_list_limit_ends(tmp_path, capsys):
    p = write(tmp_path, "t.cl", net(f"    r: ReLU()\n    for i in range({LIST_LENGTH}) {{\n        use r\n    }}"))
    start = time.monotonic()
    rc, out, err = cli(["check", p], capsys)
    assert rc in (0, 1) and "Traceback" not in err, err
    assert time.monotonic() - start < 60


@pytest.mark.parametrize("body, needle", [
    ("    use", "unexpected '}'"),
    ("    use use", "no module 'use'"),  # a keyword only where a keyword can be
    ("    use r[0]", "unexpected"),
    ("    use __class__", "no module '__class__'"),
    ("    use forward", "no module 'forward'"),
    ("    r: ReLU() -> use r(1)", "unexpected"),
])
def test_broken_uses_are_positioned_errors(tmp_path, capsys, body, needle):
    check_error(tmp_path, capsys, net(body), needle, 4 if needle == "unexpected '}'" else 3)


# ---------------------------------------------------------------------------------------------
# computed module names
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, needle", [
    ("x{9223372036854775807}", None),                    # a long name is still a name
    ("x{9223372036854775807 + 1}", "integer too large"),
    ("x{-9}", "ints >= 0"),
    ("x{1.5}", "ints >= 0"),
    ("x{none}", "ints >= 0"),
    ("x{[1]}", "ints >= 0"),
    ('x{"__class__"}', "ints >= 0"),
    ("x{true}", "ints >= 0"),
    ("float{16}", None),                                  # float16: no method of nn.Module
    ("bfloat{16}", "cannot be a module name"),
    ("half{0}", None),
    ("_{0}", None),
    ("__{0}", "cannot be a module name"),
    ("x{" + "(" * 200 + "1" + ")" * 200 + "}", None),    # parentheses do not nest the expression
    ("x{" + "-" * 200 + "1}", "nested too deeply"),
    ("x{1}{2}{3}" * 50, None),
])
def test_hostile_computed_names(tmp_path, capsys, name, needle):
    text = net(f"    {name}: linear(4) -> record")
    if needle is None:
        p = write(tmp_path, "t.cl", text)
        rc, _, err = cli(["compile", p, "-o", tmp_path / "out.py"], capsys)
        assert rc == 0, err
        tree = ast.parse((tmp_path / "out.py").read_text())  # the generated module parses ...
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "module_name"]
        assert calls and all(isinstance(a, ast.Constant) and isinstance(a.value, (str, int)) for c in calls
                             for a in c.args)  # ... and names modules from literals only
    else:
        check_error(tmp_path, capsys, text, needle, 3)


def test_a_computed_name_a_scheme_would_take_is_refused(tmp_path, capsys):
    text = ("network A(n: int = 1, batch_normalization: bool = true) {\n    input features(4)\n"
            "    x: linear(4) -> bn{n}s: batchnorm1d() -> record\n}\nbackbone B = A\nmask hat()\n")
    check_error(tmp_path, capsys, text, "does not end in 's'", 3)


# ---------------------------------------------------------------------------------------------
# `in`, bindings, block parameters
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("body, needle", [
    ("    x: linear(in)", "argument 'out_features' of linear"),
    ("    x: linear(in.nothing)", "`in` has no 'nothing'"),
    ("    x: linear(in.channels)", "`in` has no 'channels'"),
    ("    flatten -> x: linear(in.features * 9223372036854775807)", "integer too large"),
    ("    x{0}: linear(4) if in.features > 1", "cannot be used in a condition"),
])
def test_hostile_in_at_network_level(tmp_path, capsys, body, needle):
    check_error(tmp_path, capsys, net(body), needle, 3)


@pytest.mark.parametrize("decl, needle", [
    ("A(n=9223372036854775808)", "integer too large"),
    ("A(n=[" + "[" * 200 + "]" * 200 + "])", "nested too deeply"),
    ("A(n=1, n=2)", "given twice"),
    ("A(n=range(1000000000))", "range() too long"),
    ("A(__class__=1)", "has no parameter '__class__'"),
    ("A(n=in)", "not available here"),
    ("A(n=x)", "unknown name 'x'"),
    ("B", "made from itself"),
    ("continual A(n=1)", None),
])
def test_hostile_bindings(tmp_path, capsys, decl, needle):
    text = net("    x: linear(n) -> record") + f"backbone B = {decl}\n"
    if needle is None:
        p = write(tmp_path, "t.cl", text)
        rc, _, err = cli(["check", p], capsys)
        assert rc == 0, err
    elif needle == "made from itself":
        write(tmp_path, "b.cl", 'include "t.cl"\nbackbone B = B\n')
        p = write(tmp_path, "t.cl", net("    x: linear(n) -> record") + 'include "b.cl"\nbackbone B = B\n')
        rc, _, err = cli(["check", p], capsys)
        assert rc == 1 and "Traceback" not in err, err
    else:
        check_error(tmp_path, capsys, text, needle, 5)


def test_block_parameters_cannot_name_anything_else(tmp_path, capsys):
    base = "block b() {\n    x: linear(4)\n}\n"
    check_error(tmp_path, capsys, base + net("    y: k()", params="k: block = linear"),
                "takes a block defined in the spec", 4)
    check_error(tmp_path, capsys, base + net("    y: k()", params='k: block = "b"'),
                "takes a block defined in the spec", 4)
    check_error(tmp_path, capsys, base + "block c(k: block = b) {\n    y: k()\n}\n" + net("    z: c()"),
                "only a network may have", 4)
