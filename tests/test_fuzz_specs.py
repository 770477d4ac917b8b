"""Fuzzing the command line with hostile specs (issue 13), with hypothesis.

Two sources of input:
1. grammar-aware generation: spec texts assembled from the language's constructs, with hostile
   names (keywords, reserved attributes, dunders, names a masking scheme takes), hostile values
   (huge or non-finite numbers, deep nesting, long lists, control characters, huge ranges) and
   hostile includes;
2. byte-level mutation of every spec in specs/ and specs/lib/ (flips, insertions of hostile bytes
   and tokens, deletions, duplications, splices from other specs).

Each input runs through `specc check` (and often `specc compile`) in-process, and must:
- end with exit status 0, 1 or 2, no exception escaping `main` and no traceback printed;
- on exit 1 from `check`, print a positioned message (file:line:col: error: ...);
- end within TIME_LIMIT seconds, without raising the process's peak memory by MEMORY_GROWTH;
- on a failed `compile`, leave no file (output or temporary) behind;
- on a successful `compile`, write a module whose top level has only the expected shape
  (`generated_shape_problems`, the one place that knows that shape).

SPECC_FUZZ_EXAMPLES scales the example counts for long sessions (e.g. 2000); the defaults keep
this file under about a minute on two cores.
"""
from __future__ import annotations

import ast
import contextlib
import io
import os
import random
import re
import resource
import shutil
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from test_codegen_safety import _is_data, _prepared_forward_problems

from conftest import SPECS

from specc.cli import main
from specc.core.limits import NESTING

SCALE = os.environ.get("SPECC_FUZZ_EXAMPLES")
TIME_LIMIT = 30.0  # seconds for one command (the limits keep the worst case to a few seconds)
MEMORY_GROWTH = 1 << 30  # bytes one example may raise the test process's peak resident memory by
POSITIONED = re.compile(r"^.*:\d+:\d+: error: \S")

ALL_SPECS = sorted(p.relative_to(SPECS).as_posix() for p in SPECS.rglob("*.cl"))
def _includes(path: Path) -> set[Path]:
    """Every file `path` includes, directly or through others (includes are relative to the file)."""
    seen: set[Path] = set()
    todo = [path]
    while todo:
        f = todo.pop()
        for name in re.findall(r'^\s*include "([^"]+)"', f.read_text(), flags=re.M):
            target = (f.parent / name).resolve()
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


# the top-level specs that include each library file, directly or through another library file
LIB_USERS = {lib.relative_to(SPECS).as_posix(): [p.name for p in sorted(SPECS.glob("*.cl")) if lib.resolve() in _includes(p)]
             for lib in (SPECS / "lib").glob("*.cl")}
assert all(LIB_USERS.values()), LIB_USERS  # each library file is used by some spec


def examples(default: int) -> int:
    return int(SCALE) if SCALE else default


# ---------------------------------------------------------------------------------------------
# the expected shape of a generated module: the one place that knows it
# ---------------------------------------------------------------------------------------------

ALLOWED_IMPORTS = ("__future__", "torch", "specc", "typing", "math")
GUARDS = ("require", "require_runtime")  # a version guard called at the top level


def generated_shape_problems(source: str) -> list[str]:
    """Why `source` is not shaped like a module specc generates, or []: a module docstring, imports
    (from torch, specc and the standard library's typing and math), calls of a version guard with
    literal arguments, assignments of literals, and class definitions whose bases are imported
    names. Nothing else at the top level, so no statement there can come from spec text; inside a
    class, only a docstring, assignments and method definitions."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        return [f"does not parse: {e}"]
    problems = []
    body = tree.body
    if not (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)):
        problems.append("no module docstring first")
    imported: set[str] = set()
    classes = 0
    for node in body[1:]:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names]
            roots = [module] if module else names
            if not all(r.split(".")[0] in ALLOWED_IMPORTS for r in roots):
                problems.append(f"imports from {roots}")
            imported |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.FunctionDef) and node.name == "forward" and not node.decorator_list:
            problems += _prepared_forward_problems(node)  # a `prepare(...)` section's forward
        elif isinstance(node, ast.Delete) and ast.unparse(node) == "del forward":
            pass
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) \
                and ast.unparse(node.value.func) == "structure.prepare" and "structure" in imported:
            if node.value.keywords or not all(_is_data(a) for a in node.value.args):
                problems.append(f"top-level call {ast.unparse(node)[:80]}")
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            call = node.value
            if not (isinstance(call.func, ast.Name) and call.func.id in GUARDS and call.func.id in imported
                    and all(isinstance(a, ast.Constant) for a in call.args) and not call.keywords):
                problems.append(f"top-level call {ast.unparse(node)[:80]}")
        elif isinstance(node, ast.Assign):
            if not all(isinstance(t, ast.Name) for t in node.targets) or not _literal_or_imported_call(node.value, imported):
                problems.append(f"top-level assignment {ast.unparse(node)[:80]}")
        elif isinstance(node, ast.ClassDef):
            classes += 1
            bases = [_root_name(b) for b in node.bases]
            if not all(b in imported or b in {c.name for c in body if isinstance(c, ast.ClassDef)} for b in bases):
                problems.append(f"class {node.name} derives from what was not imported")
            for item in node.body:
                if not isinstance(item, (ast.FunctionDef, ast.Assign, ast.AnnAssign)) and not (
                        isinstance(item, ast.Expr) and isinstance(item.value, ast.Constant)):
                    problems.append(f"class body statement {ast.unparse(item)[:80]}")
        else:
            problems.append(f"top-level {type(node).__name__}: {ast.unparse(node)[:80]}")
    if classes < 1:
        problems.append("no class")
    for node in ast.walk(tree):
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else \
            node.name if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else None
        if name is not None and not (name.isascii() and name.isidentifier()):
            problems.append(f"identifier {name!r}")
    return problems


def _root_name(e: ast.expr) -> str | None:
    """`a` for `a`, `a.b` or `a.b.c`; None for anything else."""
    while isinstance(e, ast.Attribute):
        e = e.value
    return e.id if isinstance(e, ast.Name) else None


def _literal_or_imported_call(value: ast.expr, imported: set[str]) -> bool:
    try:
        ast.literal_eval(value)
        return True
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    return (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in imported
            and all(_literal_or_imported_call(a, imported) or isinstance(a, ast.Name) for a in value.args))


def test_shape_helper_accepts_the_committed_generated_modules_and_refuses_code():
    from conftest import GENERATED

    for path in sorted(GENERATED.glob("*.py")):
        if path.name != "__init__.py":
            assert generated_shape_problems(path.read_text(encoding="utf-8")) == [], path
    good = '"""doc"""\nfrom torch import nn\nclass A(nn):\n    """x"""\n    def __init__(self):\n        pass\n'
    assert generated_shape_problems(good) == []
    assert generated_shape_problems(good.replace("class A(nn)", "class A(Module)")) != []
    assert generated_shape_problems(good.replace('"""x"""', "print(1)")) != []
    for bad in ("import os", "print(1)", "x = open('f')", "if True:\n    pass", "def f():\n    pass",
                "from subprocess import run", "exec('1')"):
        src = '"""doc"""\nfrom torch import nn\n' + bad + "\nclass A(nn):\n    pass\n"
        assert generated_shape_problems(src), bad


# ---------------------------------------------------------------------------------------------
# running the CLI and checking the invariants
# ---------------------------------------------------------------------------------------------

def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def run(args: list) -> tuple[int, str, str, float]:
    out, err = io.StringIO(), io.StringIO()
    t = time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])  # an exception escaping main fails the test
    return rc, out.getvalue(), err.getvalue(), time.monotonic() - t


def check_invariants(folder: Path, spec: Path, compile_too: bool) -> None:
    peak_before = _peak_rss()
    rc, out, err, seconds = run(["check", spec])
    note(f"check -> {rc}: {err[:2000]}")
    assert rc in (0, 1, 2), rc
    assert "Traceback" not in err and "Traceback" not in out
    assert "internal error" not in err, err  # main's last resort: a bug, even without a traceback
    if rc == 1:
        assert POSITIONED.match(err.splitlines()[0]), err
    assert seconds < TIME_LIMIT, seconds
    # The peak only grows: an example may not raise it by MEMORY_GROWTH (the hard bound is in
    # test_hostile_inputs.py::test_worst_cases_run_within_a_memory_limit).
    assert _peak_rss() < peak_before + MEMORY_GROWTH
    if not compile_too:
        return
    target_dir = folder / "out"
    target_dir.mkdir(exist_ok=True)
    before = sorted(os.listdir(target_dir))
    rc, out, err, seconds = run(["compile", spec, "-o", target_dir / "gen.py"])
    note(f"compile -> {rc}: {err[:2000]}")
    assert rc in (0, 1, 2), rc
    assert "Traceback" not in err
    assert "internal error" not in err, err
    assert seconds < TIME_LIMIT
    after = sorted(os.listdir(target_dir))
    if rc == 0:
        assert after == sorted(set(before) | {"gen.py"}), after
        problems = generated_shape_problems((target_dir / "gen.py").read_text(encoding="utf-8"))
        assert problems == [], problems
    else:
        assert after == before, after  # no output, no temporary file


@contextlib.contextmanager
def spec_folder():
    """A fresh copy of specs/ (with lib/) to write one example into."""
    folder = Path(tempfile.mkdtemp(prefix="specc-fuzz-"))
    try:
        shutil.copytree(SPECS, folder / "specs")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# grammar-aware generation
# ---------------------------------------------------------------------------------------------

HOSTILE_NAMES = ["x", "fc", "conv1", "width", "n", "self", "super", "kwargs", "forward", "training", "__class__",
                 "__dict__", "__init__", "__x", "gate", "output_dim", "fc_bns", "original_fc_bn_state_dict",
                 "task_embedding_t", "backup_backbones", "masks", "nn", "torch", "assemble", "_SOURCES", "True",
                 "class", "import", "lambda", "Linear", "ReLU", "linear", "in_", "x" * 300]
TYPES = ["int", "float", "bool", "str", "list[int]", "list[float]", "activation", "int?", "float?", "str?",
         "activation?", "list[str]", "foo", "list"]
LAYERS = ["linear({a})", "conv2d({a}, kernel={b})", "conv2d({a}, kernel={b}, stride={c}, padding={c}, dilation={c}, groups={c})",
          "batchnorm1d()", "batchnorm2d(momentum={f})", "dropout({f})", "maxpool2d({b}, stride={c}, padding={c})",
          "avgpool2d({b})", "adaptive_avgpool2d({a})", "flatten", "identity", "ReLU()", "GELU(approximate={s})",
          "LeakyReLU({f})", "Hardtanh({f}, {f})", "CELU(alpha={f})", "Softplus(beta={f})", "act()", "blk({a})",
          "blk({a}) * {c}", "blk({a}), blk({b}) * {c}", "nosuch({a})", "linear(out_features={a}, bias={e})",
          # issue 12's operations and arguments
          "subsample({c})", "pad_channels({c}, {b})", "adaptive_maxpool2d({a})", "ReLU(inplace={e})",
          "maxpool2d({b}, dilation={c}, ceil_mode={e})", "avgpool2d({b}, ceil_mode={e}, count_include_pad={e})",
          "batchnorm2d(affine={e}, track_running_stats={e}, momentum=none)", "dropout({f}, inplace={e})",
          "concat({a})", "blkparam({a})"]
INTS = ["0", "1", "2", "3", "4", "-1", "-2", "8", "64", "100000", "100001", "9223372036854775807",
        "9223372036854775808", "9" * 25, "9" * 5000, "0" * 50 + "1"]
FLOATS = ["0.5", "0.0", "1.0", "2.5", "1e999", "1e-999", "0.1", "1e308 * 10.0", "-0.0"]
STRINGS = ['"none"', '"tanh"', '"sigmoid"', '"independent"', '"shared"', '"bogus"', '"\x00"', '"\x1b[31m"',
           '"\u2028"', '"caf\u00e9"', '"""', '"abc', '"a\\b"', '""']


@st.composite
def expressions(draw, depth=3):
    leaf = st.one_of(st.sampled_from(INTS), st.sampled_from(FLOATS), st.sampled_from(STRINGS),
                     st.sampled_from(["true", "false", "none", "n", "w", "in.channels", "in.features", "in.units",
                                      "in", "widths", "undefined", "ReLU", "range(3)", "range(100000)",
                                      "range(1000000000)", "range(1, 9, 0)", "[]", "[1, 2, 3]"]))
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        return draw(leaf)
    kind = draw(st.sampled_from(["bin", "cmp", "bool", "not", "neg", "tern", "index", "call", "list", "paren", "deep"]))
    sub = lambda: draw(expressions(depth - 1))  # noqa: E731
    if kind == "bin":
        return f"{sub()} {draw(st.sampled_from(['+', '-', '*', '//', '%']))} {sub()}"
    if kind == "cmp":
        return f"{sub()} {draw(st.sampled_from(['==', '!=', '<', '<=', '>', '>=']))} {sub()}"
    if kind == "bool":
        return f"{sub()} {draw(st.sampled_from(['and', 'or']))} {sub()}"
    if kind == "not":
        return f"not {sub()}"
    if kind == "neg":
        return f"-{sub()}"
    if kind == "tern":
        return f"{sub()} if {sub()} else {sub()}"
    if kind == "index":
        return f"{sub()}[{sub()}]"
    if kind == "call":
        f = draw(st.sampled_from(["len", "range", "min", "max", "eval", "open"]))
        return f"{f}({', '.join(sub() for _ in range(draw(st.integers(0, 3))))})"
    if kind == "list":
        return f"[{', '.join(sub() for _ in range(draw(st.integers(0, 4))))}]"
    if kind == "paren":
        return f"({sub()})"
    # deep nesting around the limit
    n = draw(st.sampled_from([NESTING - 2, NESTING - 1, NESTING, NESTING + 1, 500, 3000]))
    op = draw(st.sampled_from(["-", "not ", "[", "(", "1 + "]))
    closing = {"[": "]", "(": ")"}.get(op, "")
    return op * n + sub() + closing * n


@st.composite
def chains(draw, blocks: bool):
    elements = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["layer", "layer", "layer", "record", "add", "cond", "group", "use", "concat",
                                     "record_if"]))
        if kind == "record":
            elements.append("record")
        elif kind == "record_if":
            elements.append(f"record if {draw(expressions(1))}")
        elif kind == "add":
            elements.append(f"add({draw(st.sampled_from(['sc', 'nosuch']))})")
        elif kind == "concat":
            elements.append(f"concat({draw(st.sampled_from(['sc', 'nosuch', 'sc, sc', 'sc, in']))})")
        elif kind == "use":
            elements.append(f"use {draw(st.sampled_from(HOSTILE_NAMES + ['y', 'z'] * 4))}")
        elif kind == "group":
            guard = draw(st.sampled_from(["", f" if {draw(expressions(1))}"]))
            elements.append(f"({draw(chains(blocks))}){guard}")
        else:
            template = draw(st.sampled_from(LAYERS if blocks else [t for t in LAYERS if "blk" not in t]))
            layer = template.format(a=draw(expressions(1)), b=draw(st.sampled_from(INTS[:8])),
                                    c=draw(st.sampled_from(INTS[:7])), f=draw(st.sampled_from(FLOATS)),
                                    s=draw(st.sampled_from(STRINGS)), e=draw(st.sampled_from(["true", "false", "1"])))
            name = draw(st.sampled_from(HOSTILE_NAMES + ["y", "z"] * 8))
            path = draw(st.sampled_from(["", f"{name}: ", f"{name}[i]: ", f"{name}[{draw(expressions(1))}]: ",
                                         f"{name}{{{draw(expressions(1))}}}: ", f"{name}{{i}}x{{i}}: "]))
            cond = f" if {draw(expressions(1))}" if kind == "cond" else ""
            elements.append(path + layer + cond)
    return " -> ".join(elements)


@st.composite
def bodies(draw, blocks: bool, depth: int = 2):
    stmts = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["chain", "chain", "chain", "for", "branch", "blockdef"]))
        if kind == "for" and depth > 0:
            var = draw(st.sampled_from(["i", "i, w", "w", "n"]))
            iterable = draw(st.one_of(expressions(1), st.sampled_from(
                ["range(3)", "range(100000)", "range(1000000000)", "widths", "range(100001)"])))
            stmts.append(f"for {var} in {iterable} {{\n{draw(bodies(blocks, depth - 1))}\n}}")
        elif kind == "branch":
            stmts.append(f"branch sc = {draw(chains(blocks))}")
        elif kind == "blockdef":
            stmts.append("block inner() { x: linear(2) }")
        else:
            stmts.append(draw(chains(blocks)))
    return "\n".join("    " + s for s in stmts)


@st.composite
def spec_texts(draw):
    parts = []
    for _ in range(draw(st.integers(0, 2))):
        parts.append("include " + draw(st.sampled_from([
            '"lib/resnet_blocks.cl"', '"lib/../lib/resnet_blocks.cl"', '"gen.cl"', '"/etc/passwd"',
            '"/dev/zero"', '"zero.cl"', '"nosuch.cl"', '"lib"', '"../specs/lib/resnet_blocks.cl"', '"a\x00b.cl"',
            '""', '"mlp.cl"'])))
    if draw(st.booleans()):
        params = ", ".join(f"{draw(st.sampled_from(['w', 'd'] + HOSTILE_NAMES[:12]))}: "
                           f"{draw(st.sampled_from(TYPES))} = {draw(expressions(1))}" for _ in range(draw(st.integers(0, 2))))
        recursive = draw(st.sampled_from(["", " -> r: blk(w - 1) if w > 0", " -> r: other(w)"]))
        parts.append(f"block blk({params}) {{\n{draw(bodies(True, 1))}{recursive}\n}}")
        if "other" in recursive:
            parts.append("block other(w: int) {\n    q: blk(w)\n}")
    params = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(["n", "widths", "act", "batch_normalization", "output_dim", "blkparam"]
                                    + HOSTILE_NAMES))
        typ = draw(st.sampled_from(TYPES + ["block"]))
        default = draw(st.one_of(st.none(), expressions(1)))
        params.append(f"{name}: {typ}" + (f" = {default}" if default is not None else ""))
    inp = draw(st.sampled_from(["features(4)", "features(n)", "image(3, 8, 8)", "image(3)", "image(3, 0, 0)",
                                "features(0)", "bogus(1)", "image(3, 100000, 100000)", "features(9223372036854775807)"]))
    cls = draw(st.sampled_from(["A", "A", "A", "class", "nn", "self", "__init__", "Backbone"]))
    parts.append(f"network {cls}({', '.join(params)}) {{\n    input {inp}\n{draw(bodies(True))}\n}}")
    if draw(st.booleans()):
        binding = draw(st.sampled_from(["", "", f"(n={draw(expressions(1))})", "(blkparam=blk)", "(nosuch=1)",
                                        f"({draw(expressions(1))})", "(output_dim=1)"]))
        parts.append(f"backbone {draw(st.sampled_from(['H', 'H', 'super', 'forward']))} = "
                     f"{draw(st.sampled_from(['', 'continual ']))}{cls}{binding}")
        if draw(st.booleans()):
            opts = draw(st.sampled_from(['', 'gate="sigmoid"', 'gate="bogus"', 'batch_normalization="independent"',
                                         'gate="sigmoid", batch_normalization="shared"', 'gate=1', 'protect_shortcuts=true',
                                         'fold_batch_norm=true', 'nosuch=1', '"sigmoid"']))
            parts.append(f"mask {draw(st.sampled_from(['hat', 'hat', 'wsn', 'amnesiac_hat', 'bogus']))}({opts})")
    text = "\n".join(parts) + "\n"
    if draw(st.integers(0, 9)) == 0:  # a hostile byte somewhere
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(["\x00", "\f", "\v", "\u2028", "\r", "\ufeff", "\t", '"', "\\"])) + text[at:]
    return text


@settings(max_examples=examples(60), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(text=spec_texts(), compile_too=st.integers(0, 2))
def test_generated_specs_end_well(text, compile_too):
    with spec_folder() as folder:
        spec = folder / "specs" / "gen.cl"
        spec.write_text(text, encoding="utf-8", errors="surrogatepass")
        os.symlink("/dev/zero", folder / "specs" / "zero.cl")
        note(text[:3000])
        check_invariants(folder, spec, compile_too == 0)


# ---------------------------------------------------------------------------------------------
# byte-level mutation of every spec
# ---------------------------------------------------------------------------------------------

HOSTILE_BYTES = [b"\x00", b"\xff", b"\xc3", b"\xe2\x80\xa8", b"\f", b"\v", b"\r", b'"', b"\\", b"\n", b"(", b")",
                 b"[", b"]", b"{", b"}", b"-", b"*", b",", b":", b"#", b"\xef\xbb\xbf"]
HOSTILE_TOKENS = [b"9" * 5000, b"1e999", b"-" * 600, b"not " * 2000, b"[" * 400, b"(" * 400, b"range(1000000000)",
                  b"range(1, 9, 0)", b"__class__", b"self", b"super", b"fc_bns", b"task_embedding_t",
                  b'include "/dev/zero"\n', b'include "../specs/mlp.cl"\n', b'include "lib/../lib/resnet_blocks.cl"\n',
                  b"for i in range(100000) { for j in range(100000) { flatten } }\n", b"groups=0", b"stride=0",
                  b"x" * 100_000, b" + 1" * 700, "\u2028".encode("utf-8")]


@st.composite
def mutated(draw):
    target = draw(st.sampled_from(ALL_SPECS))
    data = bytearray((SPECS / target).read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "token", "delete", "duplicate", "splice"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from(HOSTILE_BYTES))
        elif kind == "token":
            data[at:at] = draw(st.sampled_from(HOSTILE_TOKENS))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 40))]
        elif kind == "duplicate":
            chunk = data[at:at + draw(st.integers(1, 200))]
            data[at:at] = chunk * draw(st.integers(1, 3))
        else:
            other = (SPECS / draw(st.sampled_from(ALL_SPECS))).read_bytes()
            start = draw(st.integers(0, len(other)))
            data[at:at] = other[start:start + draw(st.integers(1, 300))]
    return target, bytes(data)


@settings(max_examples=examples(80), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(m=mutated(), compile_too=st.integers(0, 3))
def test_mutated_specs_end_well(m, compile_too):
    target, data = m
    note(f"{target}: {data[:3000]!r}")
    with spec_folder() as folder:
        path = folder / "specs" / target
        path.write_bytes(data)
        # A library file is checked through a spec that includes it.
        top = path if target not in LIB_USERS else folder / "specs" / random.Random(len(data)).choice(LIB_USERS[target])
        check_invariants(folder, top, compile_too == 0)
