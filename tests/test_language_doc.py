"""Every example of docs/language.md, run as the page says (its "Every example on this page is run"
paragraph defines the blocks):

- ```spec blocks: `specc check` and `specc compile` succeed; the generated module is imported, its
  class constructed with the block's `# args:` and run forward on a batch of two; the output and the
  recorded activations are those the front end elaborated for the same arguments;
- ```spec-error blocks: `specc check example.cl` exits 1 and prints the ```text block after it,
  word for word (message, position, excerpt, caret, hint);
- the page's tables of builtin layers and activations list the catalogue, argument for argument.

Everything runs in this process (specc.cli.main, importlib): torch is imported once."""
from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "language.md"
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
DIRECTIVE = re.compile(r"#\s*(args|file):\s*(.*)")


@dataclass
class Example:
    kind: str  # "spec" | "spec-error"
    text: str
    line: int  # of the opening fence in the page
    file: str | None  # the `# file:` name
    args: dict
    expected: str | None = None  # for spec-error: the text block after it

    @property
    def id(self) -> str:
        return f"{self.kind}@{DOC.name}:{self.line}"


def _directives(text: str) -> tuple[str | None, dict]:
    file, args = None, {}
    for line in text.splitlines():
        m = DIRECTIVE.fullmatch(line.strip())
        if not line.strip().startswith("#"):
            break
        if m and m.group(1) == "file":
            file = m.group(2).strip()
        elif m:
            call = ast.parse(f"f({m.group(2)})", mode="eval").body
            args = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    return file, args


def examples(text: str | None = None) -> list[Example]:
    """The page's spec and spec-error blocks, each spec-error with the text block that must follow it."""
    text = DOC.read_text(encoding="utf-8") if text is None else text
    blocks = [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]
    out: list[Example] = []
    for i, (kind, body, line) in enumerate(blocks):
        if kind not in ("spec", "spec-error"):
            continue
        file, args = _directives(body)
        ex = Example(kind, body, line, file, args)
        if kind == "spec-error":
            nxt = blocks[i + 1] if i + 1 < len(blocks) else None
            assert nxt is not None and nxt[0] == "text", f"{ex.id}: a spec-error block is followed by a text block"
            ex.expected = nxt[1]
        out.append(ex)
    return out


def is_library(e: Example) -> bool:
    """A `# file:` block without a network or backbone: only written, for the files that include it."""
    return e.file is not None and not re.search(r"^\s*(network|backbone)\b", e.text, re.M)


EXAMPLES = examples()
SPECS = [e for e in EXAMPLES if e.kind == "spec"]
GOOD = [e for e in SPECS if not is_library(e)]
BAD = [e for e in EXAMPLES if e.kind == "spec-error"]


def test_the_page_has_examples_for_every_section():
    text = DOC.read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    for section in sections:
        title = section.splitlines()[0]
        kinds = {m.group(1) for m in FENCE.finditer(section)}
        assert "spec" in kinds and "spec-error" in kinds, f"section '{title}' lacks an example or a misuse"
    assert len(GOOD) >= 30 and len(BAD) >= 30


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder holding every `# file:` example (later examples include them)."""
    work = tmp_path_factory.mktemp("language")
    for e in SPECS:
        if e.file:
            (work / e.file).write_text(e.text, encoding="utf-8")
    return work


def _run_cli(argv, cwd: Path, capsys, monkeypatch) -> tuple[int, str, str]:
    from specc.cli import main

    monkeypatch.chdir(cwd)
    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _defines(args: dict) -> list[str]:
    return [x for name, value in args.items() for x in ("-D", f"{name}={value!r}")]


def _forward(net, x):
    """(feature, activations) of a forward in the first training step of task 1."""
    if hasattr(net, "setup_task_id"):
        net.setup_task_id(1)
    if hasattr(net, "task_embedding_t"):  # HAT, AmnesiacHAT
        out = net(x, "train", s_max=400, batch_idx=1, num_batches=10)
    elif hasattr(net, "weight_score_t"):  # WSN
        out = net(x, "train", mask_percentage=0.5)
    else:
        out = net(x, "train")
    return out[0], out[-1]


@pytest.mark.parametrize("example", GOOD, ids=[e.id for e in GOOD])
def test_good_example(example: Example, workdir: Path, capsys, monkeypatch):
    import torch

    from specc.frontend.elaborate import elaborate
    from specc.frontend.load import load_program

    name = example.file or f"example_{example.line}.cl"
    (workdir / name).write_text(example.text, encoding="utf-8")
    rc, _, err = _run_cli(["check", name, *_defines(example.args)], workdir, capsys, monkeypatch)
    assert rc == 0, f"{example.id}: specc check failed:\n{err}"
    out_file = workdir / "out" / f"lang_{example.line}.py"
    rc, _, err = _run_cli(["compile", name, "-o", str(out_file)], workdir, capsys, monkeypatch)
    assert rc == 0, f"{example.id}: specc compile failed:\n{err}"

    program = load_program(str(workdir / name))
    spec = importlib.util.spec_from_file_location(f"langdoc_example_{example.line}", out_file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        net = getattr(module, program.class_name)(**example.args)
    finally:
        sys.modules.pop(spec.name, None)
    # What the front end elaborates for these arguments: the input and output shapes, the records.
    ir = elaborate(program, example.args, image_size=8)
    dims = ir.nodes[0].shape.dims
    torch.manual_seed(0)
    x = torch.randn(2, *dims)
    net.train()
    feature, activations = _forward(net, x)
    assert tuple(feature.shape) == (2, *ir.nodes[ir.output].shape.dims), example.id
    assert torch.isfinite(feature).all()
    assert sorted(activations) == sorted(ir.records), example.id
    assert net.weighted_layer_names, f"{example.id}: an example with no weighted layer"


@pytest.mark.parametrize("example", BAD, ids=[e.id for e in BAD])
def test_misuse_example(example: Example, workdir: Path, tmp_path: Path, capsys, monkeypatch):
    for lib in workdir.glob("*.cl"):
        if lib.name.startswith("example_"):
            continue
        shutil.copy(lib, tmp_path / lib.name)
    name = example.file or "example.cl"
    (tmp_path / name).write_text(example.text, encoding="utf-8")
    rc, _, err = _run_cli(["check", name, *_defines(example.args)], tmp_path, capsys, monkeypatch)
    assert rc == 1, f"{example.id}: specc check exited {rc}, not 1:\n{err}"
    assert err.rstrip("\n") == example.expected.rstrip("\n"), (
        f"{example.id}: the documented error differs from what specc prints.\n"
        f"--- documented\n{example.expected}--- printed\n{err}")


# ---------------------------------------------------------------------------------------------
# the tables
# ---------------------------------------------------------------------------------------------

def _literal(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _arguments(params) -> str:
    from specc.core.layers import REQUIRED

    return ", ".join(f"`{n}`" if d is REQUIRED else f"`{n}={_literal(d)}`" for n, _, d in params)


def _table_after(heading: str) -> list[list[str]]:
    """The rows (cells) of the first table in the section `heading`."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows[2:]]


def test_layer_table_lists_the_catalogue():
    from specc.core.layers import OPS
    from specc.core.shape import KINDS as SHAPE_KINDS

    rows = {r[0].strip("`"): r for r in _table_after("Builtin layers and operations")}
    assert sorted(rows) == sorted(OPS), "the table's operations are not the catalogue's"
    for name, spec in OPS.items():
        assert rows[name][1] == _arguments(spec.params), f"{name}: arguments differ from the catalogue"
        built = f"`{spec.torch_module}.{spec.torch_class}`" if spec.torch_class else "no module"
        assert rows[name][2].startswith(built), name
        kinds = "any" if set(spec.accepts) == set(SHAPE_KINDS) else ", ".join(spec.accepts)
        assert rows[name][3] == kinds, name


def test_activation_table_lists_the_catalogue():
    from specc.core.layers import ACTIVATIONS

    listed = {}
    for names, args in _table_after("Activations"):
        for name in re.findall(r"`(\w+)`", names):
            listed[name] = args
    assert sorted(listed) == sorted(ACTIVATIONS)
    for name, params in ACTIVATIONS.items():
        assert listed[name].startswith(_arguments(params)), f"{name}: arguments differ from the catalogue"
        assert bool(listed[name]) == bool(params), name


# ---------------------------------------------------------------------------------------------
# the test itself: a doc that drifts from the behaviour fails
# ---------------------------------------------------------------------------------------------

def test_examples_are_parsed_with_their_directives():
    page = ("```spec\n# file: a.cl\n# args: n=4, widths=[1, 2]\nnetwork A() {}\n```\n"
            "```spec-error\nnetwork B() {}\n```\n```text\nx.cl:1:1: error: e\n```\n")
    good, bad = examples(page)
    assert (good.kind, good.file, good.args, good.line) == ("spec", "a.cl", {"n": 4, "widths": [1, 2]}, 1)
    assert (bad.kind, bad.expected) == ("spec-error", "x.cl:1:1: error: e\n")
    with pytest.raises(AssertionError, match="followed by a text block"):
        examples("```spec-error\nnetwork B() {}\n```\n")


# ---------------------------------------------------------------------------------------------
# README, "Training, validation and test stages": the three schemes' stage loops, run as written
# ---------------------------------------------------------------------------------------------

README = ROOT / "README.md"


def stage_snippets() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n### Training, validation and test stages\n", 1)[1]
    section = re.split(r"\n##+ ", section, maxsplit=1)[0]
    return [body for kind, body in re.findall(r"^```(\w*)[^\n]*\n(.*?)^```", section, re.S | re.M)
            if kind == "python"]


def test_readme_links_the_reference():
    text = README.read_text(encoding="utf-8")
    by_example = text.split("\n## The language by example\n", 1)[1].split("\n## ", 1)[0]
    assert "(docs/language.md)" in by_example


@pytest.mark.parametrize("scheme", ["hat", "wsn", "amnesiac_hat"])
def test_readme_stage_snippet_runs(scheme, monkeypatch):
    import torch

    snippets = stage_snippets()
    assert len(snippets) == 3, "one snippet per scheme: HAT, WSN, AmnesiacHAT"
    body = next(s for s in snippets if f'"specs/mlp_{scheme}.cl"' in s)
    monkeypatch.chdir(ROOT)
    torch.manual_seed(0)
    ns: dict = {}
    exec(compile(body, f"README.md ({scheme} stages)", "exec"), ns)
    # What the snippet's last forward gives, checked against the backbone's own state.
    if scheme == "hat":
        assert sorted(ns["hat"].masks) == [1, 2]
        assert ns["mask"] is ns["hat"].masks[2]  # test stage: the stored mask of task 2
    elif scheme == "wsn":
        assert sorted(ns["masks"]) == [1, 2]
        assert ns["weight_mask"] is ns["masks"][2][0]
    else:
        assert sorted(ns["amn"].masks) == [1, 2]
        assert sorted(ns["backup_features"]) == [1]  # task 2 trained a backup of task 1
        assert all(bool((m == 1).all()) for m in ns["mask"].values())  # unlearning_test: all units
    assert ns["feature"].shape == (32, 64)
