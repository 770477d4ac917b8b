"""Hostile inputs (issue 13): every item of the issue has a test named for it. Whatever a spec,
its file name, the command line or the environment says, `specc` ends with exit status 0, 1 (a
positioned spec error, or an output that cannot be written) or 2 (a usage error), without a
traceback, in bounded time and memory, and leaves no file behind on failure.

In-process (`specc.cli.main`) where possible; subprocesses where the test needs signals, closed
or re-encoded standard streams, or a clean interpreter."""
from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, SPECS, unnamed_files

from specc.cli import main
from specc.core.limits import (
    BLOCK_DEPTH,
    FILES,
    INCLUDE_DEPTH,
    LIMITS,
    LIST_LENGTH,
    MODULES,
    NESTING,
    NODES,
    SPEC_BYTES,
    STEPS,
    TOKENS,
)
from specc.frontend.errors import SpecError, UsageError
from specc.frontend.ir import ModuleDecl

SPECC = [sys.executable, "-m", "specc.cli"]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def net(body: str, params: str = "n: int = 4", inp: str = "features(4)") -> str:
    return f"network A({params}) {{\n    input {inp}\n{body}\n}}\n"


def image_net(body: str) -> str:
    return net(body, inp="image(4, 8, 8)")


def write(folder: Path, name: str, text: str | bytes) -> Path:
    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def cli(args, capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def sub(args, timeout=120, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("env", ENV)
    return subprocess.run(SPECC + [str(a) for a in args], capture_output=True, timeout=timeout, **kw)


def assert_positioned(err: str, path, line: int | None = None, needle: str | None = None) -> tuple[int, int]:
    """`err` is one positioned spec error about `path` (and mentions `needle`), without a traceback."""
    assert "Traceback" not in err, err
    first = err.splitlines()[0]
    m = re.match(rf"{re.escape(str(path))}:(\d+):(\d+): error: ", first)
    assert m, err
    if line is not None:
        assert int(m.group(1)) == line, err
    if needle is not None:
        assert needle in err.replace(str(path), ""), err  # in what is said, not in the file's name
    return int(m.group(1)), int(m.group(2))


def check_error(tmp_path, capsys, text, needle, line=None, name="t.cl") -> str:
    p = write(tmp_path, name, text)
    rc, _, err = cli(["check", p], capsys)
    assert rc == 1, err
    assert_positioned(err, p, line, needle)
    return err


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---------------------------------------------------------------------------------------------
# Crashes -> positioned errors or usage errors
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("body,needle", [
    ("    c: conv2d(4, kernel=3, groups=0)", "groups > 0"),
    ("    c: conv2d(4, kernel=3, stride=0)", "stride > 0"),
    ("    c: conv2d(4, kernel=0)", "kernel"),
    ("    c: maxpool2d(0)", "kernel and stride > 0"),
    ("    c: maxpool2d(2, stride=0)", "kernel and stride > 0"),
    ("    c: avgpool2d(0)", "kernel and stride > 0"),
    ("    c: adaptive_avgpool2d(0)", "size > 0"),
])
def test_groups_stride_kernel_zero_are_positioned_errors(tmp_path, capsys, body, needle):
    check_error(tmp_path, capsys, image_net(body), needle, line=3)


def test_range_with_step_zero(tmp_path, capsys):
    check_error(tmp_path, capsys, net("    for i in range(1, 9, 0) { x[i]: linear(4) }"), "step must not be zero", 3)


def test_int_literal_past_the_4300_digit_limit(tmp_path, capsys):
    err = check_error(tmp_path, capsys, net("    x: linear(" + "9" * 5000 + ")"), "integer too large", 3)
    assert len(err) < 2000


@pytest.mark.parametrize("expr", ["*".join(["1000000000"] * 90), "9223372036854775807 + 1", "0 - 9223372036854775807 - 2"])
def test_int_results_past_the_limit_while_formatting_messages(tmp_path, capsys, expr):
    # 10**810 would not even print (Python refuses str() of more than 4300 digits).
    check_error(tmp_path, capsys, net(f"    x: linear({expr})"), "integer too large", 3)


@pytest.mark.parametrize("expr", [
    "-" * 500 + "4",                        # 500 nested negations
    " + ".join(["1"] * 700),                # a 700-term sum
    "len(" + "[" * 3000 + "]" * 3000 + ")",  # nested lists
])
def test_deep_expressions_are_positioned_errors(tmp_path, capsys, expr):
    check_error(tmp_path, capsys, net(f"    x: linear({expr})"), "nested too deeply", 3)


def test_ten_thousand_nots(tmp_path, capsys):
    check_error(tmp_path, capsys, net("    x: linear(4) if " + "not " * 10000 + "true"), "nested too deeply", 3)


def test_expressions_within_the_nesting_limit_still_work(tmp_path, capsys):
    depth = NESTING - 2
    p = write(tmp_path, "t.cl", net("    x: linear(" + "-" * (depth - 1) + "-4 + 8) -> record"))
    rc, out, err = cli(["check", p], capsys)
    assert rc == 0, err


def test_recursive_block(tmp_path, capsys):
    text = "block b(d: int) {\n    x: linear(4) -> (y: b(d - 1) if d > 0)\n}\n" + net("    z: b(200)")
    err = check_error(tmp_path, capsys, text, "recursive block: b -> b", 2)
    assert "Traceback" not in err


def test_mutually_recursive_blocks(tmp_path, capsys):
    text = ("block a(d: int) {\n    y: c(d - 1) if d > 0\n}\nblock c(d: int) {\n    y: a(d) -> w: linear(3)\n}\n"
            + net("    z: a(2)"))
    check_error(tmp_path, capsys, text, "recursive block: a -> c -> a", 5)


def test_unused_recursive_block_in_a_library_is_reported_too(tmp_path, capsys):
    text = "block loop(d: int) {\n    y: loop(d)\n}\n" + net("    x: linear(4) -> record")
    check_error(tmp_path, capsys, text, "recursive block", 2)


def test_blocks_nested_past_the_depth_limit(tmp_path, capsys):
    n = BLOCK_DEPTH + 1
    blocks = [f"block b{i}(w: int) {{ y: b{i + 1}(w) }}" for i in range(n)] + [f"block b{n}(w: int) {{ y: linear(w) }}"]
    check_error(tmp_path, capsys, "\n".join(blocks) + "\n" + net("    z: b0(4)"), "nested too deeply", None)


def test_nul_byte_in_a_spec(tmp_path, capsys):
    check_error(tmp_path, capsys, net("    x: linear(4)\x00 -> record"), "NUL byte", 3)


def test_nul_byte_in_an_include_name(tmp_path, capsys):
    # The name is refused (no "embedded null byte" from the file system), at the include.
    p = write(tmp_path, "t.cl", 'include "lib\x00.cl"\n' + net("    x: linear(4)"))
    rc, _, err = cli(["check", p], capsys)
    assert rc == 1
    assert_positioned(err, p, 1, "NUL byte")
    assert "embedded null" not in err


def test_range_of_a_billion_does_not_take_the_memory(tmp_path, capsys):
    t = time.monotonic()
    check_error(tmp_path, capsys, net("    for i in range(1000000000) { x[i]: linear(4) }"), "range() too long", 3)
    assert time.monotonic() - t < 5


@pytest.mark.parametrize("how", ["spec", "include"])
def test_dev_zero_as_a_spec_or_an_include(tmp_path, capsys, how):
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    os.symlink("/dev/zero", tmp_path / "zero.cl")
    if how == "spec":
        rc, _, err = cli(["check", tmp_path / "zero.cl"], capsys)
        assert rc == 1 and "not a regular file" in err and "Traceback" not in err
    else:
        p = write(tmp_path, "t.cl", 'include "zero.cl"\n' + net("    x: linear(4)"))
        rc, _, err = cli(["check", p], capsys)
        assert rc == 1
        assert_positioned(err, p, 1, "not a regular file")


@pytest.mark.parametrize("name", ['tri"""ple.cl', "new\nline.cl", b"b\xffad.cl"])
def test_spec_names_with_triple_quotes_newline_or_byte_ff(tmp_path, name):
    raw = os.fsencode(name) if isinstance(name, str) else name
    spec = os.path.join(os.fsencode(tmp_path), raw)
    with open(spec, "wb") as f:
        f.write((SPECS / "mlp.cl").read_bytes())
    out = tmp_path / "out"
    done = subprocess.run([*[os.fsencode(a) for a in SPECC], b"compile", spec, b"-o", os.fsencode(out) + b"/"],
                          capture_output=True, env=ENV, timeout=120)
    assert done.returncode == 0, done.stderr
    stem = raw[:-3]
    assert (os.fsencode(out) + b"/" + stem + b".py") in [os.path.join(os.fsencode(out), f) for f in os.listdir(os.fsencode(out))]
    assert b"\n" not in done.stdout.strip()  # the name is printed on one line, escaped
    for command in (b"check", b"show"):
        done = subprocess.run([*[os.fsencode(a) for a in SPECC], command, spec], capture_output=True, env=ENV,
                              timeout=120)
        assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr
    # An error in such a file names it escaped, on one line.
    with open(spec, "wb") as f:
        f.write(b"network A(n: int = 4) {\n input features(4)\n x: linaer(3)\n}\n")
    done = subprocess.run([*[os.fsencode(a) for a in SPECC], b"check", spec], capture_output=True, env=ENV, timeout=120)
    assert done.returncode == 1 and b"Traceback" not in done.stderr
    assert re.match(rb"[^\n]*:3:5: error: unknown layer", done.stderr), done.stderr


@pytest.mark.parametrize("command", ["graph", "show"])
def test_graph_with_stdout_closed(command):
    done = subprocess.run(SPECC + [command, str(SPECS / "mlp.cl")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          env=ENV, text=True, timeout=120, pass_fds=(), close_fds=True,
                          preexec_fn=lambda: os.close(1))
    assert done.returncode == 1, done.stderr
    assert "standard output is closed" in done.stderr and "Traceback" not in done.stderr


def test_output_to_a_full_disk_is_an_error_not_a_traceback():
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    with open("/dev/full", "w") as full:
        done = subprocess.run(SPECC + ["show", str(SPECS / "mlp.cl")], stdout=full, stderr=subprocess.PIPE,
                              env=ENV, text=True, timeout=120)
    assert done.returncode == 1 and "No space left" in done.stderr and "Traceback" not in done.stderr


def test_non_utf8_stdout(tmp_path):
    spec = write(tmp_path, "caf\u00e9.cl", (SPECS / "mlp.cl").read_text())
    env = {**ENV, "PYTHONIOENCODING": "ascii"}
    for args in (["check", spec], ["compile", spec, "-o", f"{tmp_path / 'out'}/"]):
        done = subprocess.run(SPECC + [str(a) for a in args], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        assert "caf\\xe9" in done.stdout
    bad = write(tmp_path, "\u00e9t\u00e9.cl", net("    fc: linear(4) -> a: GELU(approximate=\"\u00e9\")"))
    done = subprocess.run(SPECC + ["check", str(bad)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr


def test_ctrl_c_prints_one_line_exits_130_and_leaves_no_file(tmp_path):
    out = tmp_path / "out"
    env = {**ENV, "SPECC_TEST_PAUSE": "write"}
    proc = subprocess.Popen(SPECC + ["compile", str(SPECS / "mlp.cl"), str(SPECS / "cl_mlp.cl"), "-o", f"{out}/"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # The hook says when every output is written (to unnamed files where the system has them, else
        # to two temporary files) and the naming is next.
        assert proc.stderr.readline() == "specc: test pause at write\n"
        assert len(list(out.iterdir())) == (0 if unnamed_files(out) else 2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert stderr == "specc: interrupted\n"
    assert stdout == ""
    assert not out.exists()  # the temporary files and the folder made for them are gone


def test_ctrl_c_during_the_renames_is_held_back_and_every_file_is_written(tmp_path):
    out = tmp_path / "out"
    env = {**ENV, "SPECC_TEST_PAUSE": "rename"}
    proc = subprocess.Popen(SPECC + ["compile", str(SPECS / "mlp.cl"), str(SPECS / "cl_mlp.cl"), "-o", f"{out}/"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr.readline() == "specc: test pause at rename\n"
        proc.send_signal(signal.SIGINT)  # held back until the renames are done, then dropped
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert (proc.returncode, stderr) == (0, "")
    assert sorted(os.listdir(out)) == ["cl_mlp.py", "mlp.py"]


@pytest.mark.parametrize("where", ["_network", "_check_targets", "_make_parents", "_give_name"])
def test_ctrl_c_anywhere_in_process(tmp_path, capsys, monkeypatch, where):
    import specc.cli as cli_module
    import specc.output as output_module

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module if hasattr(cli_module, where) else output_module, where, interrupted)
    command = "check" if where == "_network" else "compile"
    rc, out, err = cli([command, SPECS / "mlp.cl", "-o", tmp_path / "out" / "x.py"][:2 if command == "check" else 5],
                       capsys)
    assert (rc, out, err) == (130, "", "specc: interrupted\n")
    assert list(tmp_path.iterdir()) == []


def test_a_bug_is_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    import specc.cli as cli_module

    def bug(*a, **k):
        raise TypeError("cannot unpack non-iterable NoneType object")

    monkeypatch.setattr(cli_module, "_check_targets", bug)
    monkeypatch.delenv("SPECC_TRACEBACK", raising=False)
    rc, out, err = cli(["compile", SPECS / "mlp.cl", "-o", tmp_path / "x.py"], capsys)
    assert rc == 1 and "Traceback" not in err and len(err.splitlines()) == 1
    assert err.startswith("specc: internal error: TypeError: cannot unpack")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("SPECC_TRACEBACK", "1")
    with pytest.raises(TypeError):
        main(["compile", str(SPECS / "mlp.cl"), "-o", str(tmp_path / "x.py")])


def test_compile_checks_the_spec_before_emitting_it(tmp_path, capsys):
    # The emitter is only given what elaborates (a missing module name, an unknown name, an unused
    # branch are check errors, positioned, also from compile).
    for body in ("    linear(4)", "    x: linear(m)", "    branch sc = p: linear(4)\n    x: linear(4)"):
        p = write(tmp_path, "t.cl", net(body, params=""))
        rc, _, err = cli(["compile", p, "-o", tmp_path / "x.py"], capsys)
        assert rc == 1
        assert_positioned(err, p)
        assert not (tmp_path / "x.py").exists()
    # What holds whatever the arguments is checked even when a parameter has no default.
    p = write(tmp_path, "t.cl", "block b(d: int) {\n    y: b(d - 1) if d > 0\n}\n" + net("    z: b(n)", params="n: int"))
    rc, _, err = cli(["compile", p, "-o", tmp_path / "x.py"], capsys)
    assert rc == 1
    assert_positioned(err, p, 2, "recursive block")
    assert not (tmp_path / "x.py").exists()


# ---------------------------------------------------------------------------------------------
# Exit 0 with broken output
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999"])
def test_D_dropout_inf_or_nan(tmp_path, capsys, value):
    rc, _, err = cli(["compile", SPECS / "mlp.cl", "-D", f"dropout={value}", "-o", tmp_path / "x.py"], capsys)
    assert rc == 2 and "not a finite" in err, err
    assert list(tmp_path.iterdir()) == []


def test_1e999_default(tmp_path, capsys):
    p = write(tmp_path, "t.cl", net("    x: linear(4) -> d: dropout(p) -> record".replace(" -> record", ""),
                                    params="p: float = 1e999"))
    rc, _, err = cli(["compile", p, "-o", tmp_path / "x.py"], capsys)
    assert rc == 1
    assert_positioned(err, p, 1, "not a finite float")
    assert not (tmp_path / "x.py").exists()


def build_args_error(path, **args) -> SpecError:
    """The error a class built with `args` gets (its constructor elaborates them first)."""
    from specc.frontend.elaborate import elaborate
    from specc.frontend.load import load_program

    with pytest.raises(SpecError) as info:
        elaborate(load_program(path), args)
    return info.value


def test_non_finite_float_arguments_are_refused_at_build():
    for value in (float("nan"), float("inf")):
        err = build_args_error(SPECS / "mlp.cl", input_dim=4, hidden_dims=[3], output_dim=2, dropout=value)
        assert "finite" in err.message and err.pos.line == 9


@pytest.mark.parametrize("name", ["__class__", "__dict__", "__init__", "__call__", "__getattr__",
                                  "__annotations__", "__module__", "__x"])
def test_dunder_module_names(tmp_path, capsys, name):
    check_error(tmp_path, capsys, net(f"    {name}: linear(4) -> record"), f"'{name}' cannot be a module name", 3)


@pytest.mark.parametrize("name", ["__class__", "__dict__"])
def test_dunder_parameter_names(tmp_path, capsys, name):
    check_error(tmp_path, capsys, net("    x: linear(4) -> record", params=f"{name}: int = 4"),
                f"'{name}' cannot be a parameter name", 1)


HAT_BN = """network A(n: int = 4, batch_normalization: bool = true) {{
    input features(4)
    for i in range(2) {{
        fc[i]: linear(4) -> fc_bn[i]: batchnorm1d() if batch_normalization -> record
    }}
{extra}
}}
backbone H = A
mask {mask}
"""


@pytest.mark.parametrize("extra,mask,needle,line", [
    ("    fc_bns: linear(3)", 'hat(gate="sigmoid", batch_normalization="independent")', "'fc_bns'", 6),
    ("    original_fc_bn_state_dict: linear(3)", 'hat(gate="sigmoid")', "'original_fc_bn_state_dict'", 6),
    ("    task_embedding_t: linear(3)", 'hat(gate="sigmoid")', "HAT keeps its own attribute", 6),
    ("    backup_backbones: linear(3)", 'amnesiac_hat(gate="sigmoid")', "AmnesiacHAT keeps", 6),
    ("    _specc_backup_ids: linear(3)", 'amnesiac_hat(gate="sigmoid")', "AmnesiacHAT keeps", 6),
    ("    weight_score_t: linear(3)", 'wsn(batch_normalization="independent")', "WSN keeps", 6),
])
def test_names_a_masking_scheme_creates_itself(tmp_path, capsys, extra, mask, needle, line):
    err = check_error(tmp_path, capsys, HAT_BN.format(extra=extra, mask=mask), needle, line)
    assert "cannot be a" in err


def test_scheme_names_are_checked_whatever_the_arguments(tmp_path, capsys):
    # With batch_normalization off the batch norms are absent, but a class built with
    # "independent" would still clash: the check reads the spec, not one elaboration.
    text = HAT_BN.format(extra="    fc_bns: linear(3)", mask='hat(gate="sigmoid")')
    check_error(tmp_path, capsys, text, "'fc_bns'", 6)


@pytest.mark.parametrize("body,needle", [
    ("    c: conv2d(4, kernel=3, groups=-1)", "groups > 0"),
    ("    c: conv2d(4, kernel=3, dilation=0)", "dilation > 0"),
    ("    c: conv2d(4, kernel=3, dilation=-2)", "dilation > 0"),
    ("    c: maxpool2d(2, padding=2)", "at most half the kernel"),
    ("    c: avgpool2d(3, padding=2)", "at most half the kernel"),
    ("    c: conv2d(4, kernel=1) -> a: GELU(approximate=\"bogus\")", "approximate must be one of"),
    ("    c: conv2d(4, kernel=1) -> a: Hardtanh(min_val=1.0, max_val=0.0)", "min_val < max_val"),
    ("    c: conv2d(4, kernel=1) -> a: CELU(alpha=0.0)", "alpha != 0"),
    ("    c: conv2d(4, kernel=1) -> b: batchnorm2d(momentum=2.0)", "momentum must be in [0, 1]"),
    ("    c: conv2d(4, kernel=1) -> b: batchnorm2d(eps=0.0)", "eps > 0"),
])
def test_arguments_torch_would_reject_are_refused_at_check_time(tmp_path, capsys, body, needle):
    check_error(tmp_path, capsys, image_net(body), needle, 3)


def test_batch_norm_momentum_nan(tmp_path):
    p = write(tmp_path, "t.cl", net("    x: linear(4) -> b: batchnorm1d(momentum=m) -> record", params="m: float = 0.1"))
    err = build_args_error(p, m=float("nan"))
    assert "finite" in err.message and err.pos is not None and err.pos.line == 1


def test_unknown_gate_is_refused(tmp_path, capsys):
    p = write(tmp_path, "t.cl", net("    x: linear(4) -> record", params="n: int = 4") + 'backbone H = A\nmask hat(gate="bogus")\n')
    rc, _, err = cli(["compile", p, "-o", tmp_path / "x.py"], capsys)
    assert rc == 1
    assert_positioned(err, p, 6, "gate must be 'sigmoid'")
    rc, _, err = cli(["compile", SPECS / "mlp_hat.cl", "-D", "gate=tanh", "-o", tmp_path / "y.py"], capsys)
    assert rc == 1 and "gate must be 'sigmoid'" in err
    assert sorted(os.listdir(tmp_path)) == ["t.cl"]


# ---------------------------------------------------------------------------------------------
# Hangs and scale
# ---------------------------------------------------------------------------------------------

def _elaboration_seconds(n: int, tmp_path: Path) -> float:
    from specc.frontend.elaborate import elaborate
    from specc.frontend.load import load_program

    p = write(tmp_path, f"mlp{n}.cl", net(f"    for i in range({n}) {{ x[i]: linear(4) -> a[i]: ReLU() -> record }}"))
    program = load_program(p)
    t = time.perf_counter()
    network = elaborate(program, {})
    seconds = time.perf_counter() - t
    assert len(network.modules) == 2 * n + 2
    return seconds


def test_30000_layer_mlp_elaborates_in_linear_time(tmp_path):
    small = min(_elaboration_seconds(3000, tmp_path) for _ in range(2))
    large = _elaboration_seconds(30000, tmp_path)
    # Linear: 10x the layers take about 10x the time (quadratic would be 100x).
    assert large < 30 * small + 0.5, (small, large)
    assert large < 10


def test_30000_layer_loop_checks_quickly(tmp_path):
    # The issue's 90-byte spec: `for i in range(30000) { x[i]: linear(4) }`.
    p = write(tmp_path, "t.cl", "network A() { input features(4) for i in range(30000) { x[i]: linear(4) } }\n")
    done = sub(["check", p], timeout=60)
    assert done.returncode == 0, done.stderr
    assert b"30000 weighted layers" in done.stdout


def test_module_lookup_by_path_is_indexed(tmp_path):
    from specc.frontend.elaborate import elaborate
    from specc.frontend.load import load_program

    block = "block blk(w: int) {\n    c: conv2d(w, kernel=3, padding=1) -> b: batchnorm2d() -> record\n}\n"
    p = write(tmp_path, "t.cl", block + net("    for i in range(3) { s{i}: blk(4), blk(4) * 2 }", inp="image(3, 8, 8)"))
    network = elaborate(load_program(p), {})
    for decl in network.modules:
        assert network.module(decl.path) is decl
    with pytest.raises(KeyError):
        network.module(("no", "such"))
    last = network.modules[-1].path
    network.modules = network.modules[:3]  # a new list: the index follows it
    with pytest.raises(KeyError):
        network.module(last)
    # One lookup per layer of a 30,000-layer network: indexed, not a scan of every module.
    network.modules = [ModuleDecl(("fc", str(i)), "Linear", {}, decl.pos, (i,)) for i in range(30000)]
    t = time.perf_counter()
    for decl in network.modules:
        assert network.module(decl.path) is decl
    assert time.perf_counter() - t < 2


def test_nested_range_loops_end_quickly(tmp_path, capsys):
    t = time.monotonic()
    check_error(tmp_path, capsys, net("    for i in range(100000) { for j in range(100000) { } }"), "too many steps", 3)
    check_error(tmp_path, capsys, net("    for i in range(100000) { for j in range(100000) { flatten } }"),
                "too many layers", 3)
    assert time.monotonic() - t < 30


def test_ten_megabyte_spec(tmp_path, capsys):
    p = write(tmp_path, "big.cl", net("    x: linear(4)\n" + "# padding\n" * (1 << 20)))
    assert p.stat().st_size > 10 * (1 << 20)
    rc, _, err = cli(["check", p], capsys)
    assert rc == 1
    assert_positioned(err, p, 1, "larger than the limit")
    assert len(err) < 500


def test_many_tokens_are_refused_before_parsing(tmp_path, capsys):
    # The parser takes tens of microseconds a token: a spec of hundreds of thousands of them is
    # refused from a count made at C speed, in the first second.
    t = time.monotonic()
    check_error(tmp_path, capsys, net("    x: linear(4) -> " + "flatten -> " * (TOKENS // 2) + "record"),
                "more than the limit", 1)
    lib = write(tmp_path, "lib.cl", "block q(w: int) { fc: linear(w) }\n" + "# comment\n" * (TOKENS - 100))
    p = write(tmp_path, "t.cl", 'include "lib.cl"\n' + net("    x: " + "flatten -> " * 60 + "q(4)"))
    rc, _, err = cli(["check", p], capsys)
    assert rc == 1
    assert_positioned(err, lib, 1, "this spec and the files read before it have")
    assert time.monotonic() - t < 5


def test_D_hidden_dims_of_20000(tmp_path):
    dims = "[" + ",".join(["8"] * 20000) + "]"
    t = time.monotonic()
    done = sub(["check", SPECS / "mlp.cl", "-D", f"hidden_dims={dims}"], timeout=60)
    assert done.returncode == 0, done.stderr
    assert b"20001 weighted layers" in done.stdout
    assert time.monotonic() - t < 30


def test_D_list_longer_than_the_limit(capsys):
    dims = "[" + ",".join(["8"] * (LIST_LENGTH + 1)) + "]"
    rc, _, err = cli(["check", SPECS / "mlp.cl", "-D", f"hidden_dims={dims}"], capsys)
    assert rc == 1 and "too long" in err


@pytest.mark.parametrize("text,needle", [
    (net("    for i in range(2) { x[i]: linear(4) }".replace("range(2)", f"range({LIST_LENGTH + 1})")), "range() too long"),
    (net(f"    x: linear(len(range({LIST_LENGTH}) + [1]))"), "list too long"),
    (net(f"    x: linear(4), ReLU * {LIST_LENGTH + 1}"), "more than the limit"),
    (net(f"    for i in range({LIST_LENGTH}) {{ x[i]: linear(4) -> y[i]: ReLU() }}"), "too many modules"),
    (net(f"    for i in range({LIST_LENGTH}) {{ {' -> '.join(['flatten'] * 8)} }}"), "too many layers"),
])
def test_limits_give_positioned_errors(tmp_path, capsys, text, needle):
    check_error(tmp_path, capsys, text, needle)


def test_include_depth_and_file_count_limits(tmp_path, capsys):
    for i in range(INCLUDE_DEPTH + 1):
        write(tmp_path, f"c{i}.cl", f'include "c{i + 1}.cl"\n')
    write(tmp_path, f"c{INCLUDE_DEPTH + 1}.cl", "block q(w: int) { fc: linear(w) }\n")
    rc, _, err = cli(["check", tmp_path / "c0.cl"], capsys)
    assert rc == 1 and "includes nested too deeply" in err and err.startswith(str(tmp_path))
    wide = "".join(f'include "w{i}.cl"\n' for i in range(FILES)) + net("    x: linear(4)")
    for i in range(FILES):
        write(tmp_path, f"w{i}.cl", "")
    p = write(tmp_path, "wide.cl", wide)
    rc, _, err = cli(["check", p], capsys)
    assert rc == 1
    assert_positioned(err, p, FILES, "too many spec files")


WORST_CASES = {
    "nested loops": net("    for i in range(100000) { for j in range(100000) { identity } }"),
    "a billion": net("    for i in range(1000000000) { x[i]: linear(4) }"),
    "long lists": net("    x: linear(len(" + " + ".join(["range(100000)"] * 60) + "))"),
    "wide lists": net("    x: linear(len([" + ", ".join(["range(99999)"] * 60) + "]))"),
    "many modules": net("    for i in range(100000) { x[i]: linear(4) -> y[i]: ReLU() }"),
    "many calls": net("    for i in range(100000) { " + " -> ".join(["flatten"] * 8) + " }"),
    "deep": net("    x: linear(" + "[" * 40000 + "]" * 40000 + ")"),
    "many tokens": net("    x: linear(4)\n" + "    y: linear(4)\n" * 200000),
}


@pytest.mark.parametrize("name", sorted(WORST_CASES))
def test_worst_cases_run_within_a_memory_limit(tmp_path, name):
    import resource

    def limit():  # 1 GiB of address space: `check` (no torch) fits with room to spare
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    p = write(tmp_path, "t.cl", WORST_CASES[name])
    t = time.monotonic()
    done = sub(["check", p], timeout=60, preexec_fn=limit)
    assert done.returncode == 1, done.stderr
    assert b"Traceback" not in done.stderr and b"MemoryError" not in done.stderr
    assert re.match(rb".*t\.cl:\d+:\d+: error: ", done.stderr), done.stderr
    assert time.monotonic() - t < 45


@pytest.mark.parametrize("body, needle, col, inp", [
    ("    c: linear(10000000000)", "too many parameters: more than 4,294,967,296", 8, "features(4)"),
    # each layer below the limit, the network above it: the layer that crosses it is named
    ("    a: linear(40000000) -> b: linear(120)", "too many parameters", 31, "features(4)"),
    # 40,000,004 channels of 8 x 8: 2,560,000,256 numbers a sample
    ("    c: conv2d(4, kernel=1) -> pad_channels(0, 40000000)", "numbers a sample, more than 2,147,483,648", 31,
     "image(4, 8, 8)"),
])
def test_sizes_that_would_exhaust_memory_when_built_are_positioned_errors(tmp_path, capsys, body, needle, col, inp):
    """`specc check` refuses them before anything is built (specc.build, export and the generated
    constructor would allocate the parameters; a forward the values)."""
    err = check_error(tmp_path, capsys, net(body, inp=inp), needle, 3)
    assert f"t.cl:3:{col}: error: " in err, err


def test_an_input_too_large_for_one_sample_is_refused(tmp_path, capsys):
    check_error(tmp_path, capsys, net("    f: flatten", inp="image(3, 100000, 100000)"), "more than 2,147,483,648", 2)


def test_limits_are_documented_in_one_place_and_in_the_readme():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Limits", 1)[1].split("\n## ", 1)[0]
    for limit in LIMITS.values():
        assert limit.reason and limit.value > 0
        assert f"| `{limit.name}` | {limit.value:,} |" in section, limit.name
    assert (SPEC_BYTES, NESTING, BLOCK_DEPTH, MODULES, NODES, STEPS) == (1 << 20, 100, 64, 100_000, 200_000, 2_000_000)


def test_worst_case_within_the_limits_fits_the_stack_of_a_deep_caller(tmp_path, capsys):
    # BLOCK_DEPTH nested blocks, the innermost evaluating an expression NESTING deep, called from
    # 200 frames down: either it elaborates, or it is a positioned error; never a RecursionError.
    n = BLOCK_DEPTH
    blocks = [f"block b{i}(w: int) {{ y: b{i + 1}(w) }}" for i in range(n - 1)]
    blocks.append(f"block b{n - 1}(w: int) {{ y: linear(" + "-" * (NESTING - 1) + "-4) -> record }")
    p = write(tmp_path, "t.cl", "\n".join(blocks) + "\n" + net("    z: b0(4)"))

    def at(depth):
        return at(depth - 1) if depth else cli(["check", p], capsys)

    rc, out, err = at(200)
    assert rc == 0, err


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------

def test_compile_several_specs_writes_all_or_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mlp.py").mkdir()  # the second target cannot be written
    rc, _, err = cli(["compile", SPECS / "cl_mlp.cl", SPECS / "mlp.cl", "-o", f"{out}/"], capsys)
    assert rc == 2 and "mlp.py" in err
    assert files_under(out) == ["mlp.py"]


@pytest.mark.parametrize("unnamed", [True, False], ids=["unnamed", "named"])
def test_compile_failure_while_writing_leaves_nothing(tmp_path, capsys, monkeypatch, unnamed):
    import specc.output as output_module

    if unnamed and not unnamed_files(tmp_path):
        pytest.skip("no unnamed files (O_TMPFILE) here")
    out = tmp_path / "out"
    where = "anonymous_file" if unnamed else "_named_temp"
    real = getattr(output_module, where)
    made = []

    def make(folder_or_target):  # the second file cannot be made: a full disk
        if made:
            raise OSError(28, "No space left on device", str(out / ".mlp.py.abcd.tmp"))
        made.append(real(folder_or_target))
        return made[-1]

    if not unnamed:
        monkeypatch.setattr(output_module, "anonymous_file", lambda folder: None)
    monkeypatch.setattr(output_module, where, make)
    rc, _, err = cli(["compile", SPECS / "cl_mlp.cl", SPECS / "mlp.cl", "-o", f"{out}/"], capsys)
    assert rc == 1 and "No space left on device" in err
    assert str(out / "mlp.py") in err and ".tmp" not in err  # the user's path, not the temporary file
    assert len(made) == 1
    fd = made[0] if unnamed else made[0][0]
    with pytest.raises(OSError):
        os.fstat(fd)  # closed
    assert not out.exists()  # the temporary file and the folder made for the outputs are gone


@pytest.mark.parametrize("which", ["spec", "include"])
def test_output_onto_an_input_is_refused(tmp_path, capsys, which):
    lib = write(tmp_path, "lib.cl", "block blk(w: int) { fc: linear(w) -> record }\n")
    spec = write(tmp_path, "t.cl", 'include "lib.cl"\n' + net("    x: blk(3)"))
    before = (spec.read_bytes(), lib.read_bytes())
    target = spec if which == "spec" else lib
    rc, _, err = cli(["compile", spec, "-o", target], capsys)
    assert rc == 2 and "refusing to overwrite" in err
    assert (spec.read_bytes(), lib.read_bytes()) == before
    # Also under another spelling of the same file.
    rc, _, err = cli(["compile", spec, "-o", tmp_path / "." / ".." / tmp_path.name / target.name], capsys)
    assert rc == 2 and (spec.read_bytes(), lib.read_bytes()) == before


def test_two_specs_with_the_same_stem_into_one_folder(tmp_path, capsys):
    other = write(tmp_path, "sub/mlp.cl", (SPECS / "mlp.cl").read_text())
    rc, _, err = cli(["compile", SPECS / "mlp.cl", other, "-o", f"{tmp_path / 'out'}/"], capsys)
    assert rc == 2 and "would both be written" in err
    assert not (tmp_path / "out").exists()


def test_output_onto_a_character_device_is_refused(tmp_path, capsys):
    # Never `-o /dev/null` itself here: were the check to regress, a test run as root would replace
    # the machine's /dev/null. The check is asked directly, and the command line goes through a
    # symbolic link (replacing a link would not touch the device) and a pipe.
    import specc.cli as cli_module

    if not Path("/dev/null").exists():
        pytest.skip("no /dev/null")
    with pytest.raises(UsageError, match="not a regular file"):
        cli_module._check_targets([(str(SPECS / "mlp.cl"), Path("/dev/null"))], {})
    link = tmp_path / "x.py"
    link.symlink_to("/dev/null")
    rc, _, err = cli(["compile", SPECS / "mlp.cl", "-o", link], capsys)
    assert rc == 2 and "not a regular file" in err and link.is_symlink()
    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)
    rc, _, err = cli(["compile", SPECS / "mlp.cl", "-o", fifo], capsys)
    assert rc == 2 and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    rc, _, err = cli(["graph", SPECS / "mlp.cl", "-o", link.with_suffix(".dot")], capsys)  # a new file: fine
    assert rc == 0
    (tmp_path / "d.dot").mkdir()
    rc, _, err = cli(["graph", SPECS / "mlp.cl", "-o", tmp_path / "d.dot"], capsys)
    assert rc == 2 and "a folder" in err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_generated_files_keep_the_targets_mode_else_0666_minus_umask(tmp_path, capsys):
    old = os.umask(0o027)
    try:
        target = tmp_path / "x.py"
        assert cli(["compile", SPECS / "mlp.cl", "-o", target], capsys)[0] == 0
        assert stat.S_IMODE(target.stat().st_mode) == 0o640
        target.chmod(0o604)
        assert cli(["compile", SPECS / "mlp.cl", "-o", target], capsys)[0] == 0
        assert stat.S_IMODE(target.stat().st_mode) == 0o604
        dot = tmp_path / "g.dot"
        assert cli(["graph", SPECS / "mlp.cl", "-o", dot], capsys)[0] == 0
        assert stat.S_IMODE(dot.stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_errors_name_the_users_path_never_the_temporary_file(tmp_path, capsys):
    blocker = write(tmp_path, "file", "not a folder")
    rc, _, err = cli(["compile", SPECS / "mlp.cl", "-o", blocker / "sub" / "x.py"], capsys)
    assert rc == 1 and str(blocker / "sub" / "x.py") in err and ".tmp" not in err


def test_include_of_one_file_under_two_spellings_is_one_include(tmp_path, capsys):
    write(tmp_path, "lib/b.cl", "block blk(w: int) { fc: linear(w) -> record }\n")
    p = write(tmp_path, "t.cl", 'include "lib/b.cl"\ninclude "lib/../lib/b.cl"\ninclude "./lib/b.cl"\n' + net("    x: blk(3)"))
    rc, out, err = cli(["check", p], capsys)
    assert rc == 0, err
    os.symlink(tmp_path / "lib", tmp_path / "alias")
    p = write(tmp_path, "u.cl", 'include "lib/b.cl"\ninclude "alias/b.cl"\n' + net("    x: blk(3)"))
    rc, out, err = cli(["check", p], capsys)
    assert rc == 0, err


def test_include_cycle_through_dotdot(tmp_path, capsys):
    p = write(tmp_path, "d/c.cl", 'include "../d/c.cl"\n' + net("    x: linear(4)"))
    rc, _, err = cli(["check", p], capsys)
    assert rc == 1
    assert_positioned(err, p, 1, "include cycle")
    assert len(err) < 1000 and "too long" not in err
    write(tmp_path, "e/a.cl", 'include "../f/b.cl"\n')
    write(tmp_path, "f/b.cl", 'include "../e/a.cl"\n')
    rc, _, err = cli(["check", tmp_path / "e/a.cl"], capsys)
    assert rc == 1 and "include cycle" in err and len(err) < 1000


def test_absolute_include_does_not_embed_the_build_machines_path(tmp_path, capsys):
    lib = write(tmp_path, "lib/blocks.cl", "block blk(w: int) {\n    fc: linear(w) -> record\n}\n")
    p = write(tmp_path, "spec/t.cl", f'include "{lib}"\n' + net("    x: blk(3)"))
    rc, _, err = cli(["compile", p, "-o", tmp_path / "x.py"], capsys)
    assert rc == 0, err
    generated = (tmp_path / "x.py").read_bytes()
    assert str(tmp_path).encode() not in generated and b"/lib/blocks.cl" not in generated


@pytest.mark.parametrize("target", ["/etc/passwd", "/proc/self/environ", "../../../../../../../etc/passwd"])
def test_include_of_a_file_that_is_not_a_spec_does_not_print_it(tmp_path, capsys, target):
    p = write(tmp_path, "t.cl", f'include "{target}"\n' + net("    x: linear(4)"))
    rc, _, err = cli(["check", p], capsys)
    assert rc == 1
    assert_positioned(err, p, 1)
    assert "root:" not in err and "PATH=" not in err and "HOME=" not in err


@pytest.mark.parametrize("target", ["/etc/passwd", "/proc/self/environ"])
def test_a_file_that_is_not_a_spec_named_on_the_command_line_is_not_printed(capsys, target):
    if not Path(target).exists():
        pytest.skip(f"no {target}")
    rc, _, err = cli(["check", target], capsys)
    assert rc == 1
    assert_positioned(err, target)
    assert "root:" not in err and "PATH=" not in err and "HOME=" not in err


def test_include_symlinked_to_a_non_spec_file_is_not_printed(tmp_path, capsys):
    os.symlink("/proc/self/environ", tmp_path / "env.cl")
    p = write(tmp_path, "t.cl", 'include "env.cl"\n' + net("    x: linear(4)"))
    rc, _, err = cli(["check", p], capsys)
    assert rc == 1 and "NUL byte" in err and "PATH=" not in err and "HOME=" not in err


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------

def test_unterminated_string(tmp_path, capsys):
    err = check_error(tmp_path, capsys, net('    x: linear(4, bias="abc) -> record'), "unterminated string", 3)
    assert "unexpected character" not in err


def test_backslash_in_a_string(tmp_path, capsys):
    check_error(tmp_path, capsys, net('    x: linear(4) -> a: GELU(approximate="a\\b")'), "backslash", 3)


@pytest.mark.parametrize("params,body,needle", [
    ("n: int = 4", "    self: linear(4)", "the generated constructor calls the instance `self`"),
    ("self: int = 4", "    x: linear(4)", "the generated constructor calls the instance `self`"),
    ("super: int = 4", "    x: linear(4)", "the generated module uses the name 'super'"),
    ("kwargs: int = 4", "    x: linear(4)", "keyword arguments as `kwargs`"),
])
def test_self_and_super_as_names_give_the_real_reason(tmp_path, capsys, params, body, needle):
    err = check_error(tmp_path, capsys, net(body, params=params), needle)
    assert "keyword" not in err.split("\n")[0] or "kwargs" in needle


@pytest.mark.parametrize("value", ["0", "-3", "x", "9" * 5000])
def test_image_size_zero_is_a_usage_error(capsys, value):
    with pytest.raises(SystemExit) as info:
        main(["show", str(SPECS / "alexnet.cl"), "--image-size", value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--image-size" in err and "positive integer" in err and len(err) < 1000


def test_5000_digit_D_int_is_too_large(capsys):
    rc, _, err = cli(["check", SPECS / "mlp.cl", "-D", "input_dim=" + "9" * 5000], capsys)
    assert rc == 2 and "too large" in err and "inf" not in err and len(err) < 500


@pytest.mark.parametrize("text,needle,bad", [
    (net("    x: linear(4) -> record") + 'backbone H = A\nmask hat(gate=1)\n', "must be a string or none", "str?"),
    (image_net("    p: maxpool2d(2, stride=\"x\")"), "must be an int or none", "int?"),
])
def test_messages_say_types_in_words(tmp_path, capsys, text, needle, bad):
    err = check_error(tmp_path, capsys, text, needle)
    assert bad not in err


def test_declared_types_are_shown_with_their_notation(tmp_path, capsys):
    rc, _, err = cli(["check", SPECS / "mlp.cl", "-D", "hidden_dims=abc"], capsys)
    assert rc == 1 and "a list of ints (list[int])" in err


@pytest.mark.parametrize("sep", ["\f", "\v", "\u2028", "\u0085", "\x1c"])
def test_caret_under_the_right_line_with_form_feed_vertical_tab_or_line_separator(tmp_path, capsys, sep):
    text = f"network A(n: int = 4) {{\n    input features(4) {sep}# x\n    y: linaer(3)\n}}\n"
    p = write(tmp_path, "t.cl", text)
    rc, _, err = cli(["check", p], capsys)
    assert rc == 1
    lines = err.splitlines()
    line, col = assert_positioned(err, p)
    source_line = text.split("\n")[line - 1]
    assert len(lines[1]) - 4 == len(source_line)  # the line shown is the line the position names
    assert lines[2] == " " * (4 + col - 1) + "^"
    if line == 3:
        assert lines[1] == "        y: linaer(3)"
    assert all(c.isprintable() for c in "".join(lines))


def test_error_on_a_one_megabyte_line_prints_a_bounded_excerpt(tmp_path, capsys):
    text = "network A(n: int = 4) {\n input features(4) " + "x" * 900_000 + ": linaer(3)\n}\n"
    p = write(tmp_path, "t.cl", text)
    rc, _, err = cli(["check", p], capsys)
    assert rc == 1
    line, col = assert_positioned(err, p, 2, "unknown layer")
    lines = err.splitlines()
    assert len(err) < 1000
    assert lines[1].endswith(": linaer(3)") and lines[1].startswith("    ...")
    assert lines[1][len(lines[2]) - 1:].startswith("linaer")  # the caret is under the name


def test_error_on_a_huge_name_prints_a_bounded_message(tmp_path, capsys):
    name = "n" * 500_000
    err = check_error(tmp_path, capsys, net(f"    x: {name}(3)"), "unknown layer", 3)
    assert len(err) < 2000
