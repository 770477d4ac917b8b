"""No code execution through what a spec or its file name puts into generated source, and no
pickle anywhere near the parser (issue 13, code-execution items)."""
from __future__ import annotations

import ast
import io
import json
import os
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

from conftest import GENERATED, REPO

SPECC = [sys.executable, "-m", "specc.cli"]

# Innocent in UTF-8; under UTF-7 the `+AAo-` sequences decode to newlines, so the comment's
# tail becomes a statement that creates the marker file when the module is imported.
UTF7_PAYLOAD = (
    "# a comment +AAo-import pathlib+ADs-pathlib.Path(MARKER).touch()+AAo-#\n"
)
TINY = """
network Tiny(width: int = 4) {
    input features(3)
    fc: linear(width) -> record
}
"""


def _python_reads(data: bytes) -> str:
    """The encoding Python uses for a source file with these bytes (PEP 263)."""
    return tokenize.detect_encoding(io.BytesIO(data).readline)[0]


def _compile(tmp_path: Path, name: str, text: str) -> subprocess.CompletedProcess:
    spec = tmp_path / name
    spec.write_text(text, encoding="utf-8")
    return subprocess.run(SPECC + ["compile", str(spec), "-o", str(tmp_path / "out.py")],
                          capture_output=True, text=True, cwd=REPO)


@pytest.mark.parametrize("name", [
    "vgg_coding=utf_7,v2.cl",          # a PEP 263 cookie if it reached line 1 or 2
    "vgg_coding=latin-1.cl",
    'tri"""ple.cl',                    # would close a docstring
    "new\nline.cl",                    # would end a comment
    "caf\u00e9 \u2028sep.cl",          # non-ASCII and a Unicode line separator
])
def test_spec_file_names_do_not_reach_source_unescaped(tmp_path, name):
    marker = tmp_path / "marker"
    text = f"MARKER = 1\n{UTF7_PAYLOAD}{TINY}".replace("MARKER = 1\n", "")
    text = text.replace("MARKER", repr(str(marker)))
    done = _compile(tmp_path, name, text)
    assert done.returncode == 0, done.stderr
    data = (tmp_path / "out.py").read_bytes()
    assert data.splitlines()[0] == b"# -*- coding: utf-8 -*-"
    assert _python_reads(data) == "utf-8"
    # Importing the module runs nothing from the spec: only the class is defined.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-c", "import runpy, sys; runpy.run_path(sys.argv[1])",
                          str(tmp_path / "out.py")], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert not marker.exists()


def _is_data(node: ast.AST) -> bool:
    """A literal, a name or `a.b`, containers of these, or `Segment(...)` / `Facts.of(...)` of these:
    what a prepared structure's key and facts are written with."""
    if isinstance(node, (ast.Constant, ast.Name)):
        return True
    if isinstance(node, ast.Attribute):
        return isinstance(node.value, ast.Name)
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(_is_data(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _is_data(k) and _is_data(v) for k, v in zip(node.keys, node.values))
    if isinstance(node, ast.Call):
        callee = ast.unparse(node.func)
        return callee in ("Segment", "Facts.of") and all(_is_data(a) for a in node.args) \
            and all(_is_data(k.value) for k in node.keywords)
    return False


# Calls a prepared forward may make: submodules of self (also through getattr(container, "index")),
# torch's functions, tensor methods of its own values and the runtime helpers it imports.
_FORWARD_CALLEES = re.compile(r"(self(\.\w+)*|getattr\(self(\.\w+)*, '\d+'\)(\.\w+)*|torch(\.\w+)+|"
                              r"[a-z_][a-z0-9_]*\.(view|size|dim|flatten|reshape)|specc_runtime_\w+|getattr)")


def _prepared_forward_problems(fn: ast.FunctionDef) -> list[str]:
    problems = []
    for node in ast.walk(fn):
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.Lambda, ast.ClassDef,
                             ast.Global, ast.Nonlocal)) and node is not fn:
            problems.append(f"forward: {ast.dump(node)[:120]}")
        if isinstance(node, ast.Call):
            callee = ast.unparse(node.func)
            nested = isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Call)
            if not (_FORWARD_CALLEES.fullmatch(callee) or nested and _FORWARD_CALLEES.fullmatch(
                    ast.unparse(node.func.value))):
                problems.append(f"forward calls {callee}")
    return problems


def generated_shape_problems(text: str) -> list[str]:
    """What, at the top level of a generated module, is not one of: the docstring, imports, the
    runtime version check `require_runtime("<version>")`, class definitions (whose bodies hold
    methods, docstrings and class attributes naming classes), and for each prepared structure
    `def forward` (only calls of submodules, torch, tensor methods and runtime helpers), the
    `structure.prepare(...)` call registering it (with data only) and `del forward`."""
    tree = ast.parse(text)
    problems = []
    body = tree.body
    if not (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)):
        problems.append("no module docstring")
    for node in body[1:]:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.ClassDef)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) \
                and getattr(node.value.func, "id", None) == "require_runtime" \
                and all(isinstance(a, ast.Constant) for a in node.value.args):
            continue
        if isinstance(node, ast.FunctionDef) and node.name == "forward" and not node.decorator_list:
            problems += _prepared_forward_problems(node)
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) \
                and ast.unparse(node.value.func) == "structure.prepare" and not node.value.keywords \
                and all(_is_data(a) for a in node.value.args):
            continue
        if isinstance(node, ast.Delete) and ast.unparse(node) == "del forward":
            continue
        problems.append(ast.dump(node)[:120])
    for cls in [n for n in body if isinstance(n, ast.ClassDef)]:
        for item in cls.body:
            if isinstance(item, ast.FunctionDef):
                continue
            if isinstance(item, ast.Expr) and isinstance(item.value, ast.Constant):
                continue
            if isinstance(item, ast.Assign) and isinstance(item.value, (ast.Name, ast.Attribute, ast.Call)):
                continue
            problems.append(f"{cls.name}: {ast.dump(item)[:120]}")
    return problems


def test_every_generated_file_reads_as_utf8_and_holds_only_imports_and_classes():
    files = sorted(GENERATED.glob("*.py"))
    assert files
    for path in files:
        data = path.read_bytes()
        assert _python_reads(data) == "utf-8", path
        assert generated_shape_problems(data.decode("utf-8")) == [], path


def test_parser_tables_are_fresh_json_and_parse_like_the_grammar():
    from specc.frontend import tables

    assert tables.tables_are_fresh(), "run `python -m specc.frontend.tables` after editing the grammar"
    json.loads(tables.TABLES.read_text(encoding="utf-8"))  # plain data
    built = tables.build_parser()
    shipped = tables.parser()
    for spec in sorted((REPO / "specs").rglob("*.cl")):
        text = spec.read_text(encoding="utf-8")
        assert shipped.parse(text) == built.parse(text), spec


def test_nothing_is_unpickled_or_cached_by_the_parser():
    # Lark's own cache is a pickle in the shared temp folder: never ask for it.
    for path in sorted((REPO / "specc").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        assert "cache=True" not in source, path
        assert "pickle.load" not in source, path


def test_parsing_creates_no_file_in_the_temp_folder(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    spec = REPO / "specs" / "mlp.cl"
    done = subprocess.run(SPECC + ["check", str(spec)], capture_output=True, text=True, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_spec_line_comments_name_includes_relative_to_the_compiled_spec(tmp_path):
    (tmp_path / "common").mkdir()
    (tmp_path / "nets").mkdir()
    (tmp_path / "common" / "blocks.cl").write_text("block two(w: int) {\n    a: linear(w) -> record\n}\n")
    (tmp_path / "nets" / "net.cl").write_text(
        'include "../common/blocks.cl"\nnetwork N(w: int = 4) {\n    input features(3)\n    b: two(w)\n}\n')
    done = subprocess.run(SPECC + ["compile", str(tmp_path / "nets" / "net.cl"), "-o", str(tmp_path / "out.py")],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "out.py").read_text()
    assert "# ../common/blocks.cl:2" in text and "# net.cl:4" in text
    assert str(tmp_path) not in text


def test_shape_check_refuses_code_smuggled_into_a_prepared_section():
    """The check above is what guards the prepared sections: code in the forward or in the data
    of `structure.prepare(...)` other than what the pass writes is reported."""
    text = (GENERATED / "resnet18_hat.py").read_text(encoding="utf-8")
    assert "\ndef forward(" in text and generated_shape_problems(text) == []
    line = "    input_1 = input\n"
    assert line in text
    smuggled = text.replace(line, line + "    __import__('os').system('true')\n", 1)
    assert any("forward calls" in p for p in generated_shape_problems(smuggled))
    evaluated = text.replace('structure.prepare(\n    "', 'structure.prepare(\n    eval("1"), "', 1)
    assert evaluated != text and generated_shape_problems(evaluated)
    extra = text.replace("del forward\n", "del forward\nprint('hi')\n", 1)
    assert generated_shape_problems(extra)
