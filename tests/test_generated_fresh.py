"""generated/ is kept fresh: every spec in specs/ compiles to exactly the bytes checked in.

Compilation is deterministic (twice -> identical bytes, whatever the working directory or the
spelling of the spec's path) and the output names its spec and the compiler version, with no
absolute path and no time in it."""
from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import pytest

from conftest import GENERATED, REPO, SPECS, top_level_specs

import specc
from specc.cli import main as cli_main
from specc.emit import emit
from specc.frontend.load import load_program

SPEC_FILES = top_level_specs()
IDS = [p.stem for p in SPEC_FILES]


def compile_from_repo_root(spec: Path) -> str:
    """emit(load_program('specs/NAME.cl')) run from the repository root, as `specc compile` is."""
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        return emit(load_program(f"specs/{spec.name}"))
    finally:
        os.chdir(cwd)


def test_every_spec_has_a_generated_module_and_nothing_else():
    assert SPEC_FILES, "no specs found"
    generated = sorted(p.stem for p in GENERATED.glob("*.py") if p.name != "__init__.py")
    assert generated == sorted(IDS), "generated/ does not match specs/*.cl; run: specc compile specs/*.cl"


@pytest.mark.parametrize("spec", SPEC_FILES, ids=IDS)
def test_generated_module_is_fresh(spec):
    expected = (GENERATED / f"{spec.stem}.py").read_text(encoding="utf-8") if (GENERATED / f"{spec.stem}.py").exists() else ""
    actual = compile_from_repo_root(spec)
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(keepends=True), actual.splitlines(keepends=True),
                                            f"generated/{spec.stem}.py (checked in)",
                                            f"generated/{spec.stem}.py (compiled now)", n=2))
        pytest.fail(f"generated/{spec.stem}.py is stale; run: specc compile specs/*.cl\n{diff}", pytrace=False)
    # The file on disk, byte for byte (no CRLF, one trailing newline).
    assert (GENERATED / f"{spec.stem}.py").read_bytes() == actual.encode("utf-8")


@pytest.mark.parametrize("spec", SPEC_FILES, ids=IDS)
def test_cli_output_equals_checked_in_bytes(spec, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    out = tmp_path / f"{spec.stem}.py"
    assert cli_main(["compile", f"specs/{spec.name}", "-o", str(out)]) == 0
    assert out.read_bytes() == (GENERATED / f"{spec.stem}.py").read_bytes(), \
        "run: specc compile specs/*.cl"


@pytest.mark.parametrize("spec", SPEC_FILES, ids=IDS)
def test_compilation_is_deterministic_and_location_independent(spec, monkeypatch):
    first = compile_from_repo_root(spec)
    assert compile_from_repo_root(spec) == first
    # An absolute path, or a relative one from inside specs/, gives the same bytes.
    assert emit(load_program(str(spec.resolve()))) == first
    monkeypatch.chdir(SPECS)
    assert emit(load_program(spec.name)) == first


@pytest.mark.parametrize("spec", SPEC_FILES, ids=IDS)
def test_header_names_spec_and_version_without_paths_or_times(spec):
    text = (GENERATED / f"{spec.stem}.py").read_text(encoding="utf-8")
    first, second = text.splitlines()[:2]
    # Line 1 is a fixed encoding cookie and line 2 fixed text: nothing from the spec's file name
    # may reach the two lines where PEP 263 looks for an encoding declaration.
    assert first == "# -*- coding: utf-8 -*-"
    assert second.startswith("#") and specc.__version__ in second and spec.name not in second
    import ast

    assert spec.name in ast.get_docstring(ast.parse(text))
    for bad in (str(REPO), "/work", "/tmp", "/home", "/root", os.path.expanduser("~")):
        assert bad not in text, f"absolute path {bad!r} in generated/{spec.stem}.py"
    assert not re.search(r"\b(19|20)\d\d-\d\d-\d\d\b", text), "a date in the generated file"
    assert not re.search(r"\b\d\d:\d\d(:\d\d)?\b", text), "a time of day in the generated file"
    assert "\r" not in text and text.endswith("\n") and not text.endswith("\n\n")


@pytest.mark.parametrize("spec", SPEC_FILES, ids=IDS)
def test_generated_module_embeds_no_spec_text_and_loads_no_front_end(spec):
    """A generated module is plain PyTorch over specc's runtime: it carries no spec text (only
    `# file:line` comments), and importing it loads neither lark nor any front-end module."""
    import subprocess
    import sys

    text = (GENERATED / f"{spec.stem}.py").read_text(encoding="utf-8")
    program = load_program(f"{SPECS}/{spec.name}")
    for path, source in program.sources.items():
        lines = [line.strip() for line in source.splitlines() if len(line.strip()) > 30]
        assert not any(line in text for line in lines), f"spec text of {path} in generated/{spec.stem}.py"
    code = (f"import sys; import generated.{spec.stem}; "
            "bad = sorted(m for m in sys.modules if m == 'lark' or m.startswith(('lark.', 'specc.frontend', "
            "'specc.emit', 'specc.cli', 'jinja2'))); print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
