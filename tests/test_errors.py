"""Positioned errors: every problem with a spec is a SpecError at file:line:col, rendered with
the offending line and a caret under the column, with a hint where one helps."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conftest import SPECS

import specc
from specc.emit import emit
from specc.frontend.classdef import class_def
from specc.frontend.elaborate import elaborate
from specc.frontend.errors import Pos, SpecError
from specc.frontend.facts import analyse
from specc.frontend.load import load_program
from specc.frontend.parse import parse_text
from specc.frontend.probe import probe

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def write(tmp_path: Path, text: str, name: str = "t.cl") -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return p


def error_of(path: Path, args: dict | None = None, overrides: dict | None = None) -> SpecError:
    """The SpecError of loading, elaborating and analysing `path` (the `specc check` pipeline)."""
    with pytest.raises(SpecError) as info:
        analyse(elaborate(load_program(str(path)), args or {}, overrides))
    return info.value


def assert_at(err: SpecError, path, line: int, column: int, *, text: str | None = None) -> None:
    """`err` is positioned at path:line:column and renders that line with a caret under column."""
    assert err.pos is not None, "the error has no position"
    assert (Path(err.pos.file).name, err.pos.line, err.pos.column) == (Path(str(path)).name, line, column), str(err)
    rendered = err.render()
    lines = rendered.splitlines()
    assert lines[0].startswith(f"{err.pos.file}:{line}:{column}: error: ")
    src_line = Path(str(err.pos.file)).read_text().splitlines()[line - 1] if text is None else text
    assert lines[1] == f"    {src_line}"
    caret = lines[2]
    assert caret.strip() == "^"
    # The caret sits under the column (tabs are kept, so the prefixes have the same width).
    assert len(caret) - 4 == column, f"caret at {len(caret) - 4}, column {column}"
    assert "Traceback" not in rendered


# ---------------------------------------------------------------------------------------------
# syntax
# ---------------------------------------------------------------------------------------------

def test_missing_closing_brace_at_end_of_file(tmp_path):
    p = write(tmp_path, """
        network A(n: int = 4) {
            input features(n)
            fc: linear(3) -> record
        """)
    err = error_of(p)
    assert "unexpected end of file" in err.message
    assert "'}'" in (err.hint or "") + err.message
    assert err.pos.file == str(p)
    assert err.pos.line == 3 and err.pos.column >= 1
    assert err.render().splitlines()[1] == "        fc: linear(3) -> record"


def test_missing_closing_brace_of_a_block_is_reported_where_parsing_stops(tmp_path):
    p = write(tmp_path, """
        block b(w: int) {
            c1: conv2d(w, kernel=1)

        network P(n: int = 4) {
            input image(n)
            x: b(3)
        }
        """)
    err = error_of(p)
    assert_at(err, p, 4, 12)
    assert "unexpected ':'" in err.message


def test_bad_character(tmp_path):
    p = write(tmp_path, """
        network A(n: int = 4) {
            input features(n)
            fc: linear(3) @ record
        }
        """)
    err = error_of(p)
    assert_at(err, p, 3, 19)
    assert "unexpected character '@'" in err.message


def test_unexpected_token(tmp_path):
    p = write(tmp_path, """
        network A(n: int = 4) {
            input features(n)
            fc: linear(3) -> -> record
        }
        """)
    err = error_of(p)
    assert_at(err, p, 3, 22)
    assert "unexpected '->'" in err.message and "expected" in err.message


@pytest.mark.parametrize("name", ["if", "class"])
def test_keyword_as_module_name_is_a_spec_error(tmp_path, name):
    p = write(tmp_path, f"""
        network A(n: int = 4) {{
            input features(n)
            {name}: linear(3) -> record
        }}
        """)
    with pytest.raises(SpecError) as info:
        specc.build(p)
    assert_at(info.value, p, 3, 5)


@pytest.mark.parametrize("name", ["training", "forward", "output_dim", "weighted_layer_names"])
def test_reserved_attribute_as_module_name_is_a_spec_error(tmp_path, name):
    p = write(tmp_path, f"""
        network A(n: int = 4) {{
            input features(n)
            {name}: linear(3) -> record
        }}
        """)
    with pytest.raises(SpecError) as info:
        specc.build(p)
    assert_at(info.value, p, 3, 5)


def test_unterminated_string(tmp_path):
    p = write(tmp_path, """
        network A(n: int = 4) {
            input features(n)
            fc: linear(3, bias="yes) -> record
        }
        """)
    assert_at(error_of(p), p, 3, 24)


def test_positional_argument_after_keyword_is_a_spec_error(tmp_path):
    p = write(tmp_path, """
        network A(n: int = 4) {
            input features(n)
            fc: linear(out_features=3, 4) -> record
        }
        """)
    assert_at(error_of(p), p, 3, 32)


def test_argument_given_twice_is_a_spec_error(tmp_path):
    p = write(tmp_path, """
        network A(n: int = 4) {
            input features(n)
            fc: linear(3, bias=true, bias=false) -> record
        }
        """)
    err = error_of(p)
    assert err.pos.line == 3 and "twice" in err.message


def test_two_backbones_in_one_file_is_a_spec_error(tmp_path):
    p = write(tmp_path, """
        network A(n: int = 4) {
            input features(n)
            fc: linear(3) -> record
        }
        backbone B = A
        backbone C = A
        """)
    err = error_of(p)
    assert_at(err, p, 6, 1)


def test_parse_text_reports_the_given_path():
    with pytest.raises(SpecError) as info:
        parse_text("network {", "somewhere/x.cl")
    assert info.value.pos.file == "somewhere/x.cl"
    assert info.value.pos.line == 1


# ---------------------------------------------------------------------------------------------
# names, parameters, arguments
# ---------------------------------------------------------------------------------------------

def test_unknown_layer_with_did_you_mean(tmp_path):
    p = write(tmp_path, """
        network A(n: int = 4) {
            input features(n)
            fc: linaer(3) -> record
        }
        """)
    err = error_of(p)
    assert_at(err, p, 3, 9)
    assert "unknown layer 'linaer'" in err.message
    assert err.hint == "did you mean 'linear'?"
    assert err.render().splitlines()[-1] == "hint: did you mean 'linear'?"


def test_unknown_block_name_suggests_the_block(tmp_path):
    p = write(tmp_path, """
        block residual(w: int) {
            c: conv2d(w, kernel=1) -> record
        }
        network A(n: int = 4) {
            input image(n, 4, 4)
            r: residul(3)
        }
        """)
    err = error_of(p)
    assert_at(err, p, 6, 8)
    assert "did you mean 'residual'?" == err.hint


def test_unknown_name_in_expression(tmp_path):
    p = write(tmp_path, """
        network A(width: int = 4) {
            input features(4)
            fc: linear(widht) -> record
        }
        """)
    err = error_of(p)
    assert_at(err, p, 3, 16)
    assert "unknown name 'widht'" in err.message and err.hint == "did you mean 'width'?"


def test_tab_indented_line_keeps_caret_aligned(tmp_path):
    p = tmp_path / "tabs.cl"
    p.write_text("network A(n: int = 4) {\n    input features(n)\n\tfc: linear(m) -> record\n}\n")
    err = error_of(p)
    assert (err.pos.line, err.pos.column) == (3, 13)
    lines = err.render().splitlines()
    assert lines[1] == "    \tfc: linear(m) -> record"
    assert lines[2] == "    \t           ^"


def test_unknown_parameter_in_D_override(tmp_path):
    p = write(tmp_path, """
        network A(width: int = 4) {
            input features(4)
            fc: linear(width) -> record
        }
        """)
    err = error_of(p, overrides={"widht": 3})
    assert_at(err, p, 1, 1)
    assert "no parameter 'widht'" in err.message
    assert err.hint == "did you mean 'width'?"
    # The same through the class interface (what `specc compile -D` uses).
    with pytest.raises(SpecError) as info:
        class_def(load_program(str(p)), {"widht": 3})
    assert "widht" in info.value.message and info.value.pos.line == 1


def test_wrong_type_of_D_value(tmp_path):
    p = write(tmp_path, """
        network A(width: int = 4) {
            input features(4)
            fc: linear(width) -> record
        }
        """)
    err = error_of(p, overrides={"width": "x"})
    assert_at(err, p, 1, 11)
    assert "'width'" in err.message and "int" in err.message


def test_wrong_type_of_constructor_argument_through_build():
    """Generated classes check their arguments at run time (no front end there): a TypeError that
    names the parameter, its declared type in words and the spec line that declares it."""
    with pytest.raises(TypeError) as info:
        specc.build(SPECS / "mlp.cl", input_dim=4, hidden_dims="x", output_dim=2)
    message = str(info.value)
    assert "'hidden_dims'" in message and "list[int]" in message
    assert message.endswith("(declared at mlp.cl:4)")  # `hidden_dims: list[int],`


@pytest.mark.parametrize("kwargs,needle", [
    (dict(input_dim=4, hidden_dims=[2, "3"], output_dim=2), "hidden_dims"),
    (dict(input_dim=4.0, hidden_dims=[2], output_dim=2), "input_dim"),
    (dict(input_dim=True, hidden_dims=[2], output_dim=2), "input_dim"),
    (dict(input_dim=4, hidden_dims=[2], output_dim=2, batch_normalization=1), "batch_normalization"),
    (dict(input_dim=4, hidden_dims=[2], output_dim=2, dropout="0.5"), "dropout"),
    (dict(input_dim=4, hidden_dims=[2], output_dim=2, activation_layer="NoSuchAct"), "activation_layer"),
    (dict(input_dim=4, hidden_dims=[2], output_dim=None), "output_dim"),
])
def test_wrong_constructor_argument_types_name_the_parameter(kwargs, needle):
    with pytest.raises(TypeError) as info:
        specc.build(SPECS / "mlp.cl", **kwargs)
    assert f"'{needle}'" in str(info.value)
    assert "(declared at mlp.cl:" in str(info.value)


def test_generated_class_reports_layer_errors_with_the_spec_position(tmp_path, monkeypatch):
    """A generated class needs no spec file: a layer that cannot be built names itself and the spec
    line it comes from."""
    import generated.mlp

    monkeypatch.chdir(tmp_path)  # no specs/ here
    with pytest.raises(ValueError) as info:
        generated.mlp.MLP(input_dim=4, hidden_dims=[0], output_dim=2)
    assert str(info.value) == "fc/0: linear needs out_features > 0 (at mlp.cl:14)"


# ---------------------------------------------------------------------------------------------
# shapes and structure
# ---------------------------------------------------------------------------------------------

def test_shape_mismatch_at_add(tmp_path):
    p = write(tmp_path, """
        block b(w: int) {
            c1: conv2d(w, kernel=3, stride=2, padding=1) -> add(sc) -> record
            branch sc = identity
        }
        network E(n: int = 4) {
            input image(n, 8, 8)
            x: b(4)
        }
        """)
    err = error_of(p)
    assert_at(err, p, 2, 53)
    assert "add(sc)" in err.message and "(4, 4, 4)" in err.message and "(4, 8, 8)" in err.message
    assert err.hint


def test_channel_mismatch_at_add_in_real_block(tmp_path):
    """The ResNet block from specs/lib without its projection: the add cannot join the shapes."""
    p = write(tmp_path, """
        block small(width: int, stride: int = 1) {
            conv1: conv2d(width, kernel=3, padding=1) -> record
            conv2: conv2d(width, kernel=3, stride=stride, padding=1) -> add(shortcut) -> record
            branch shortcut = identity
        }
        network N(c: int = 3) {
            input image(c, 8, 8)
            b: small(16)
        }
        """)
    err = error_of(p)
    assert_at(err, p, 3, 65)
    assert "(16, 8, 8)" in err.message and "(3, 8, 8)" in err.message


def test_linear_after_unflattened_image(tmp_path):
    p = write(tmp_path, """
        network D(n: int = 4) {
            input image(n, 8, 8)
            fc: linear(3) -> record
        }
        """)
    err = error_of(p)
    assert_at(err, p, 3, 9)
    assert "linear expects features" in err.message and "(4, 8, 8)" in err.message


def test_conv_after_flatten(tmp_path):
    p = write(tmp_path, """
        network D(n: int = 4) {
            input image(n, 8, 8)
            flatten
            c: conv2d(3, kernel=1) -> record
        }
        """)
    err = error_of(p)
    assert_at(err, p, 4, 8)
    assert "expects an image" in err.message


def test_record_without_weighted_layer(tmp_path):
    p = write(tmp_path, """
        network F(n: int = 4) {
            input features(n)
            act: ReLU() -> record
        }
        """)
    err = error_of(p)
    assert_at(err, p, 3, 20)
    assert "`record` needs a weighted layer" in err.message


def test_record_twice(tmp_path):
    p = write(tmp_path, """
        network F(n: int = 4) {
            input features(n)
            fc: linear(3) -> record -> record
        }
        """)
    err = error_of(p)
    assert_at(err, p, 3, 32)
    assert "recorded twice" in err.message


def test_record_in_branch(tmp_path):
    p = write(tmp_path, """
        network F(n: int = 4) {
            input features(n)
            fc: linear(4) -> add(side) -> record
            branch side = proj: linear(4) -> record
        }
        """)
    err = error_of(p)
    assert_at(err, p, 4, 38)
    assert "branch" in err.message


def test_module_declared_twice(tmp_path):
    p = write(tmp_path, """
        network G(n: int = 4) {
            input features(n)
            fc: linear(3)
            fc: linear(3)
        }
        """)
    err = error_of(p)
    assert_at(err, p, 4, 5)
    assert "module 'fc' is declared twice" in err.message


def test_module_declared_twice_inside_a_loop_hints_at_indexing(tmp_path):
    p = write(tmp_path, """
        network G(n: int = 4) {
            input features(n)
            for i in range(3) {
                fc: linear(3)
            }
        }
        """)
    # refused on the spec text, before elaboration (`specc check` runs the probe)
    with pytest.raises(SpecError) as info:
        probe(load_program(str(p)))
    err = info.value
    assert_at(err, p, 4, 9)
    assert "module 'fc' is declared in a loop without an index" in err.message
    assert "`fc[i]: ...`" in (err.hint or "")


def test_non_consecutive_module_index(tmp_path):
    p = write(tmp_path, """
        network H(n: int = 4) {
            input features(n)
            fc[0]: linear(3)
            fc[2]: linear(3)
        }
        """)
    err = error_of(p)
    assert_at(err, p, 4, 8)
    assert "'fc[2]' must follow 'fc[0]'" in err.message


def test_module_list_must_start_at_zero(tmp_path):
    p = write(tmp_path, """
        network H(n: int = 4) {
            input features(n)
            fc[1]: linear(3)
        }
        """)
    err = error_of(p)
    assert_at(err, p, 3, 8)
    assert "index 0" in err.message


def test_unknown_branch(tmp_path):
    p = write(tmp_path, """
        network P(n: int = 4) {
            input features(n)
            fc: linear(3) -> add(nothere) -> record
        }
        """)
    err = error_of(p)
    assert_at(err, p, 3, 22)
    assert "unknown branch 'nothere'" in err.message


def test_unused_branch(tmp_path):
    p = write(tmp_path, """
        network P(n: int = 4) {
            input features(n)
            fc: linear(4) -> record
            branch unused = identity
        }
        """)
    err = error_of(p)
    assert_at(err, p, 4, 12)
    assert "never used" in err.message


def test_in_outside_block(tmp_path):
    p = write(tmp_path, """
        network P(n: int = 4) {
            input features(n)
            fc: linear(in.channels) -> record
        }
        """)
    assert_at(error_of(p), p, 3, 16)


def test_division_by_zero(tmp_path):
    p = write(tmp_path, """
        network P(n: int = 4) {
            input features(n)
            fc: linear(3 // 0) -> record
        }
        """)
    assert_at(error_of(p), p, 3, 16)


def test_error_inside_an_included_block_names_the_included_file(tmp_path):
    write(tmp_path, """
        # a library
        block bad(w: int) {
            c: conv2d(w, kernel=3, padding=1) -> fc: linear(3)
        }
        """, "lib/blocks.cl")
    p = write(tmp_path, """
        include "lib/blocks.cl"
        network P(n: int = 4) {
            input image(n, 4, 4)
            b: bad(2)
        }
        """)
    err = error_of(p)
    assert err.pos.file.endswith("lib/blocks.cl")
    assert_at(err, err.pos.file, 3, 46)


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------

def test_include_cycle(tmp_path):
    write(tmp_path, 'include "b.cl"\n', "a.cl")
    b = write(tmp_path, """
        include "a.cl"
        network I(n: int = 4) {
            input features(n)
        }
        """, "b.cl")
    with pytest.raises(SpecError) as info:
        load_program(str(tmp_path / "a.cl"))
    err = info.value
    assert "include cycle" in err.message
    assert "a.cl" in err.message and "b.cl" in err.message
    assert_at(err, b, 1, 1)


def test_self_include(tmp_path):
    p = write(tmp_path, """
        include "t.cl"
        network I(n: int = 4) {
            input features(n)
        }
        """)
    with pytest.raises(SpecError) as info:
        load_program(str(p))
    assert_at(info.value, p, 1, 1)
    assert "include cycle" in info.value.message


def test_missing_include(tmp_path):
    p = write(tmp_path, """
        # needs a library that is not there
        include "nope.cl"
        network J(n: int = 4) {
            input features(n)
        }
        """)
    with pytest.raises(SpecError) as info:
        load_program(str(p))
    assert_at(info.value, p, 2, 1)
    assert "nope.cl" in info.value.message


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError) as info:
        load_program(str(tmp_path / "absent.cl"))
    assert "absent.cl" in info.value.message


def test_block_defined_twice(tmp_path):
    p = write(tmp_path, """
        block b(w: int) {
            c1: conv2d(w, kernel=1)
        }
        block b(w: int) {
            c1: conv2d(w, kernel=1)
        }
        network N(n: int = 4) {
            input image(n)
            x: b(3)
        }
        """)
    with pytest.raises(SpecError) as info:
        load_program(str(p))
    assert_at(info.value, p, 4, 1)
    assert "defined twice" in info.value.message


def test_backbone_names_unknown_network(tmp_path):
    p = write(tmp_path, """
        network Q(n: int = 4) {
            input features(n)
            fc: linear(3) -> record
        }
        backbone Q2 = continual Nope
        """)
    with pytest.raises(SpecError) as info:
        load_program(str(p))
    assert_at(info.value, p, 5, 1)


# ---------------------------------------------------------------------------------------------
# masking declarations
# ---------------------------------------------------------------------------------------------

NET = """
network K(n: int = 4) {
    input features(n)
    fc: linear(3) -> record
}
"""


@pytest.mark.parametrize("scheme", ["hat", "wsn", "amnesiac_hat"])
def test_known_mask_schemes_are_accepted(tmp_path, scheme):
    p = write(tmp_path, NET + f'mask {scheme}()\n')
    net = analyse(elaborate(load_program(str(p)), {"gate": "sigmoid"} if "hat" in scheme else {}))
    assert net.weighted_layer_names == ["fc"]


def test_unknown_mask_scheme(tmp_path):
    p = write(tmp_path, NET + "mask hta()\n")
    err = error_of(p)
    assert_at(err, p, 5, 1)
    assert "unknown masking scheme 'hta'" in err.message
    assert err.hint == "did you mean 'hat'?"


def test_unknown_mask_scheme_without_close_match(tmp_path):
    p = write(tmp_path, NET + "mask zzzzzz()\n")
    err = error_of(p)
    assert_at(err, p, 5, 1)
    assert "unknown masking scheme" in err.message


# ---------------------------------------------------------------------------------------------
# declarations that only fail when the class is emitted
# ---------------------------------------------------------------------------------------------

def test_python_keyword_as_class_name_is_a_spec_error_on_compile(tmp_path):
    p = write(tmp_path, """
        network class(n: int = 4) {
            input features(n)
            fc: linear(3) -> record
        }
        """)
    with pytest.raises(SpecError) as info:
        emit(load_program(str(p)))
    assert_at(info.value, p, 1, 1)


def test_parameter_declared_twice(tmp_path):
    p = write(tmp_path, """
        network P(n: int = 4, n: int = 5) {
            input features(n)
            fc: linear(3) -> record
        }
        """)
    with pytest.raises(SpecError) as info:
        emit(load_program(str(p)))
    assert info.value.pos.line == 1 and "twice" in info.value.message


def test_unknown_parameter_type_on_compile(tmp_path):
    p = write(tmp_path, """
        network R(n: int = 4, m: foo = none) {
            input features(n)
            fc: linear(3) -> record
        }
        """)
    with pytest.raises(SpecError) as info:
        emit(load_program(str(p)))
    assert "foo" in info.value.message
    assert info.value.pos.line == 1


def test_errors_are_one_family():
    err = SpecError("boom", Pos("x.cl", 2, 3), hint="do this")
    assert isinstance(err, Exception)
    assert str(err) == err.render()
    assert err.render().splitlines()[0] == "x.cl:2:3: error: boom"
    assert err.render().splitlines()[-1] == "hint: do this"


def test_spec_without_network_has_a_position(tmp_path):
    p = write(tmp_path, "# only a comment\n")
    with pytest.raises(SpecError) as info:
        load_program(str(p))
    assert info.value.pos is not None
    assert Path(info.value.pos.file).name == "t.cl" and info.value.pos.line >= 1 and info.value.pos.column >= 1


def test_check_unknown_parameter_type_without_default(tmp_path, capsys):
    from specc.cli import main

    p = write(tmp_path, """
        network R(n: foo) {
            input features(4)
            fc: linear(3) -> record
        }
        """)
    assert main(["check", str(p)]) == 1
    err = capsys.readouterr().err
    assert f"{p}:1:14: error: " in err and "foo" in err


def test_default_parameter_before_required_one(tmp_path):
    p = write(tmp_path, """
        network A(a: int = 1, b: int) {
            input features(a)
            fc: linear(b) -> record
        }
        """)
    with pytest.raises(SpecError) as info:
        specc.build(p, b=3)
    assert info.value.pos.line == 1


@pytest.mark.parametrize("name", ["shapes", "check_argument", "nn", "super"])
def test_name_that_would_shadow_the_generated_module_is_a_spec_error(tmp_path, name):
    # A constructor parameter named `shapes` would shadow the module the generated constructor
    # calls; a class named `nn` the module it imports.
    p = write(tmp_path, f"""
        network A({name}: int = 4) {{
            input features(3)
            fc: linear(3) -> record
        }}
        """)
    err = error_of(p)
    assert f"'{name}' cannot be a parameter name" in err.message
    assert (err.pos.line, err.pos.column) == (1, 11)
    q = write(tmp_path, """
        network nn(n: int = 4) {
            input features(3)
            fc: linear(3) -> record
        }
        """)
    assert "'nn' cannot be a class name" in error_of(q).message
