"""The `specc` command line: compile / check / show, exit codes (0 ok, 1 spec error, 2 usage
error), output paths, atomic all-or-nothing writes, and `check` staying torch-free and fast."""
from __future__ import annotations

import importlib.util
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GENERATED, REPO, SPECS

import specc
from specc.cli import main
from specc.frontend.elaborate import elaborate
from specc.frontend.facts import analyse
from specc.frontend.load import load_program

PYTHON = sys.executable
SPECC = str(Path(sys.executable).with_name("specc"))

BAD_SPEC = """\
# a spec with an unknown layer on line 4
network Bad(n: int = 4) {
    input features(n)
    fc: linaer(3) -> record
}
"""


def run_cli(args, cwd=None, timeout=60):
    """The installed console script, in a subprocess."""
    return subprocess.run([SPECC, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A copy of specs/ (with lib/) in an empty folder, made the working directory."""
    shutil.copytree(SPECS, tmp_path / "specs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def import_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------------------------------------
# --version, --help
# ---------------------------------------------------------------------------------------------

def test_version_subprocess():
    r = run_cli(["--version"])
    assert r.returncode == 0
    assert r.stdout.strip() == f"specc {specc.__version__}"


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("compile", "check", "show"):
        assert cmd in out


@pytest.mark.parametrize("cmd", ["compile", "check", "show"])
def test_subcommand_help(cmd, capsys):
    with pytest.raises(SystemExit) as info:
        main([cmd, "--help"])
    assert info.value.code == 0
    assert "-D" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# compile: output paths
# ---------------------------------------------------------------------------------------------

def test_compile_default_output_path(workdir, capsys):
    assert main(["compile", "specs/mlp.cl"]) == 0
    out = workdir / "generated" / "mlp.py"
    assert out.read_bytes() == (GENERATED / "mlp.py").read_bytes()
    assert capsys.readouterr().out.strip() == str(Path("generated") / "mlp.py")


def test_compile_default_output_path_subprocess(workdir):
    r = run_cli(["compile", "specs/cl_resnet18.cl"], cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert (workdir / "generated" / "cl_resnet18.py").read_bytes() == (GENERATED / "cl_resnet18.py").read_bytes()


def test_compile_to_output_file(workdir):
    assert main(["compile", "specs/resnet18.cl", "-o", "out/any_name.py"]) == 0
    assert (workdir / "out" / "any_name.py").read_bytes() == (GENERATED / "resnet18.py").read_bytes()
    assert listing(workdir / "out").keys() == {"any_name.py"}  # no temporary files left behind


@pytest.mark.parametrize("trailing_sep", [True, False])
def test_compile_to_output_folder(workdir, trailing_sep):
    folder = workdir / "outdir"
    if not trailing_sep:
        folder.mkdir()  # an existing folder, named without a trailing separator
    target = str(folder) + ("/" if trailing_sep else "")
    assert main(["compile", "specs/mlp.cl", "specs/cl_mlp.cl", "-o", target]) == 0
    assert listing(folder) == {"mlp.py": (GENERATED / "mlp.py").read_bytes(),
                               "cl_mlp.py": (GENERATED / "cl_mlp.py").read_bytes()}


def test_compile_several_specs_in_one_process(workdir, capsys):
    stems = ["mlp", "cl_mlp", "resnet18", "cl_resnet50", "resnet101"]
    assert main(["compile", *[f"specs/{s}.cl" for s in stems]]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(Path("generated") / f"{s}.py") for s in stems]
    for s in stems:
        assert (workdir / "generated" / f"{s}.py").read_bytes() == (GENERATED / f"{s}.py").read_bytes()


def test_compile_D_overrides_a_default(workdir):
    assert main(["compile", "specs/mlp.cl", "-o", "bn.py", "-D", "batch_normalization=true",
                 "-D", "dropout=0.25", "-D", "activation_layer=Tanh"]) == 0
    mod = import_file(workdir / "bn.py", "_specc_test_bn")
    sig = inspect.signature(mod.MLP)
    import torch.nn as nn

    assert sig.parameters["batch_normalization"].default is True
    assert sig.parameters["dropout"].default == 0.25
    assert sig.parameters["activation_layer"].default is nn.Tanh
    assert sig.parameters["input_dim"].default is inspect.Parameter.empty
    m = mod.MLP(input_dim=6, hidden_dims=[4], output_dim=2)
    assert [n for n, _ in m.named_children()] == ["fc", "fc_bn", "fc_activation", "fc_dropout"]
    # the checked-in module is unchanged by a -D compile elsewhere
    assert "batch_normalization: bool = False" in (GENERATED / "mlp.py").read_text()


def test_compile_D_for_every_parameter_of_a_spec(workdir):
    assert main(["compile", "specs/resnet18.cl", "-o", "r.py", "-D", "input_channels=1", "-D", "output_dim=5"]) == 0
    mod = import_file(workdir / "r.py", "_specc_test_r18")
    sig = inspect.signature(mod.ResNet18)
    assert sig.parameters["input_channels"].default == 1
    assert sig.parameters["output_dim"].default == 5
    m = mod.ResNet18()
    assert m.conv1.in_channels == 1 and m.output_dim == 5
    # the docstring lists the layers for the defaults now that every parameter has one
    assert "conv5x/1/conv2" in mod.__doc__


def test_compile_D_default_before_required_parameter_is_not_a_traceback(workdir, capsys):
    rc = main(["compile", "specs/mlp.cl", "-o", "x.py", "-D", "hidden_dims=[8,4]"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.match(r"specs/mlp\.cl:\d+:\d+: error: ", err)
    assert not (workdir / "x.py").exists()


# ---------------------------------------------------------------------------------------------
# compile: spec errors write nothing
# ---------------------------------------------------------------------------------------------

def assert_spec_error_output(err: str, file: str, line: int, col: int) -> None:
    assert "Traceback" not in err
    lines = err.splitlines()
    first = next(i for i, line in enumerate(lines) if re.match(r"^\S+:\d+:\d+: error: ", line))
    assert lines[first].startswith(f"{file}:{line}:{col}: error: ")
    assert lines[first + 2].strip() == "^"
    assert len(lines[first + 2]) - 4 == col


def test_bad_spec_exit_1_positioned_message_nothing_written(workdir, capsys):
    (workdir / "bad.cl").write_text(BAD_SPEC)
    rc = main(["compile", "bad.cl"])
    assert rc == 1
    cap = capsys.readouterr()
    assert cap.out == ""
    assert_spec_error_output(cap.err, "bad.cl", 4, 9)
    assert "did you mean 'linear'?" in cap.err
    assert not (workdir / "generated").exists()


def test_bad_spec_subprocess_no_traceback(workdir):
    (workdir / "bad.cl").write_text(BAD_SPEC)
    r = run_cli(["compile", "bad.cl", "-o", "out.py"], cwd=workdir)
    assert r.returncode == 1
    assert r.stdout == ""
    assert_spec_error_output(r.stderr, "bad.cl", 4, 9)
    assert not (workdir / "out.py").exists()


def test_one_bad_spec_among_several_writes_nothing(workdir, capsys):
    (workdir / "bad.cl").write_text(BAD_SPEC)
    out = workdir / "out"
    out.mkdir()
    before = listing(workdir)
    rc = main(["compile", "specs/mlp.cl", "specs/resnet18.cl", "bad.cl", "specs/cl_mlp.cl", "-o", "out/"])
    assert rc == 1
    assert_spec_error_output(capsys.readouterr().err, "bad.cl", 4, 9)
    assert listing(workdir) == before
    assert list(out.iterdir()) == []


def test_bad_spec_leaves_existing_output_unchanged(workdir, capsys):
    (workdir / "bad.cl").write_text(BAD_SPEC)
    target = workdir / "existing.py"
    target.write_text("# precious\n")
    assert main(["compile", "bad.cl", "-o", "existing.py"]) == 1
    assert target.read_text() == "# precious\n"
    assert sorted(p.name for p in workdir.iterdir()) == ["bad.cl", "existing.py", "specs"]
    # with the default path too
    (workdir / "generated").mkdir()
    (workdir / "generated" / "bad.py").write_text("# old\n")
    assert main(["compile", "bad.cl"]) == 1
    assert (workdir / "generated" / "bad.py").read_text() == "# old\n"
    assert listing(workdir / "generated") == {"bad.py": b"# old\n"}


def test_bad_D_value_is_a_spec_error(workdir, capsys):
    assert main(["compile", "specs/mlp.cl", "-o", "x.py", "-D", "bias=maybe"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "bias" in err
    assert re.search(r"specs/mlp\.cl:\d+:\d+: error: ", err)
    assert not (workdir / "x.py").exists()


def test_unknown_D_parameter_is_a_spec_error(workdir, capsys):
    assert main(["check", "specs/mlp.cl", "-D", "hiden_dims=[3]"]) == 1
    err = capsys.readouterr().err
    assert "did you mean 'hidden_dims'?" in err
    assert re.match(r"specs/mlp\.cl:\d+:\d+: error: ", err)


def test_missing_spec_file_is_exit_1(workdir, capsys):
    assert main(["check", "nope.cl"]) == 1
    err = capsys.readouterr().err
    assert "nope.cl" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# usage errors: exit 2
# ---------------------------------------------------------------------------------------------

def test_unknown_subcommand_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["frobnicate", "specs/mlp.cl"])
    assert info.value.code == 2
    assert "frobnicate" in capsys.readouterr().err


def test_no_subcommand_exit_2():
    r = run_cli([])
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("define", ["novalue", "=3", "1x=2", "a b=3"])
def test_D_without_name_equals_value_exit_2(workdir, capsys, define):
    assert main(["check", "specs/mlp.cl", "-D", define]) == 2
    err = capsys.readouterr().err
    assert "NAME=VALUE" in err and "Traceback" not in err


def test_o_file_with_several_specs_exit_2(workdir, capsys):
    assert main(["compile", "specs/mlp.cl", "specs/cl_mlp.cl", "-o", "one.py"]) == 2
    assert "folder" in capsys.readouterr().err
    assert not (workdir / "one.py").exists() and not (workdir / "generated").exists()


def test_usage_error_subprocess_exit_2(workdir):
    r = run_cli(["compile", "specs/mlp.cl", "specs/cl_mlp.cl", "-o", "one.py"], cwd=workdir)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


def test_compile_without_specs_exit_2():
    with pytest.raises(SystemExit) as info:
        main(["compile"])
    assert info.value.code == 2


# ---------------------------------------------------------------------------------------------
# check: no torch, fast
# ---------------------------------------------------------------------------------------------

CHECK_NO_TORCH = """
import sys, time
from specc.cli import main
t = time.perf_counter()
rc = main(["check", *sys.argv[1:]])
elapsed = time.perf_counter() - t
print("RC", rc)
print("TORCH", any(m == "torch" or m.startswith("torch.") for m in sys.modules))
print("ELAPSED", elapsed)
"""


def test_check_never_imports_torch_and_is_fast():
    specs = [str(p) for p in sorted(SPECS.glob("*.cl"))]
    r = subprocess.run([PYTHON, "-c", CHECK_NO_TORCH, *specs], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    out = dict(line.split(" ", 1) for line in r.stdout.splitlines() if line.split(" ", 1)[0] in ("RC", "TORCH", "ELAPSED"))
    assert out["RC"] == "0"
    assert out["TORCH"] == "False", "specc check imported torch"
    # every spec, ResNet-152 included, in well under a second each (generous for a shared machine)
    assert float(out["ELAPSED"]) < 0.25 * len(specs) + 2, out["ELAPSED"]


def test_check_importtime_has_no_torch():
    r = subprocess.run([PYTHON, "-X", "importtime", "-c",
                        "from specc.cli import main; import sys; sys.exit(main(['check', 'specs/resnet50.cl']))"],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0
    imported = [line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")]
    assert imported, "no -X importtime output"
    assert not [m for m in imported if m == "torch" or m.startswith("torch.")]


def test_check_reports_each_spec(capsys):
    rc = main(["check", str(SPECS / "resnet18.cl"), str(SPECS / "cl_mlp.cl")])
    assert rc == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert "ResNet18" in out[0] and "17 weighted layers" in out[0]
    assert "CLMLP" in out[1] and "2 weighted layers" in out[1]


def test_check_bad_spec_among_good_ones_exit_1(tmp_path, capsys):
    (tmp_path / "bad.cl").write_text(BAD_SPEC)
    assert main(["check", str(SPECS / "mlp.cl"), str(tmp_path / "bad.cl")]) == 1
    assert_spec_error_output(capsys.readouterr().err, str(tmp_path / "bad.cl"), 4, 9)


# ---------------------------------------------------------------------------------------------
# show
# ---------------------------------------------------------------------------------------------

def table_rows(out: str) -> list[list[str]]:
    lines = [line for line in out.splitlines() if not line.startswith("# probe values")]
    header = re.split(r"\s{2,}", lines[0].strip())
    assert header[:8] == ["#", "layer", "kind", "input", "output", "params", "preceding", "next"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    rows = []
    for line in lines[2:]:
        if re.match(r"^\s*\d+\s", line):
            rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


@pytest.mark.parametrize("stem,defines", [
    ("resnet18", ["-D", "input_channels=3", "-D", "output_dim=10"]),
    ("resnet50", []),
    ("mlp", ["-D", "hidden_dims=[5,6,7]"]),
    ("cl_resnet34", ["--image-size", "32"]),
])
def test_show_prints_every_weighted_layer_in_order(stem, defines, capsys):
    assert main(["show", str(SPECS / f"{stem}.cl"), *defines]) == 0
    out = capsys.readouterr().out
    rows = table_rows(out)
    from specc.cli import _defines
    from specc.frontend.probe import PROBE_VALUES  # the probe values `show` documents

    d = _defines([v for k, v in zip(defines[0::2], defines[1::2]) if k == "-D"])
    program = load_program(str(SPECS / f"{stem}.cl"))
    probe = {p.name: PROBE_VALUES[p.type.name] for p in program.network.params if p.default is None and p.name not in d}
    net = analyse(elaborate(program, {}, {**probe, **d}))
    names = net.weighted_layer_names
    assert [r[0] for r in rows] == [str(i) for i in range(len(names))]
    assert [r[1] for r in rows] == names
    for r in rows:
        assert r[6] == (net.preceding[r[1]] or "-")
        assert r[7] == (net.next[r[1]] or "-")
        assert r[2] in ("Linear", "Conv2d")
    assert out.rstrip().splitlines()[-1].startswith(f"{net.class_name}: {len(names)} weighted layers")


def test_show_image_size_fills_spatial_sizes(capsys):
    assert main(["show", str(SPECS / "resnet18.cl"), "-D", "input_channels=3", "--image-size", "32"]) == 0
    rows = {r[1]: r for r in table_rows(capsys.readouterr().out)}
    assert rows["conv1"][3] == "(3, 32, 32)" and rows["conv1"][4] == "(64, 16, 16)"
    assert rows["conv2x/0/conv1"][3] == "(64, 8, 8)"
    assert rows["conv5x/1/conv2"][4] == "(512, 1, 1)"


def test_show_subprocess_mlp(workdir):
    r = run_cli(["show", "specs/mlp.cl", "-D", "input_dim=784", "-D", "hidden_dims=[256,100]", "-D", "output_dim=64"],
                cwd=workdir)
    assert r.returncode == 0, r.stderr
    rows = table_rows(r.stdout)
    assert [(r[1], r[3], r[4], r[5], r[6], r[7]) for r in rows] == [
        ("fc/0", "(784)", "(256)", "200,960", "-", "fc/1"),
        ("fc/1", "(256)", "(100)", "25,700", "fc/0", "fc/2"),
        ("fc/2", "(100)", "(64)", "6,464", "fc/1", "-"),
    ]


def test_show_bad_spec_exit_1(tmp_path, capsys):
    (tmp_path / "bad.cl").write_text(BAD_SPEC)
    assert main(["show", str(tmp_path / "bad.cl")]) == 1
    assert_spec_error_output(capsys.readouterr().err, str(tmp_path / "bad.cl"), 4, 9)


def test_compile_error_names_the_spec_path_as_given(tmp_path, monkeypatch, capsys):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.cl").write_text("network A(n: int = 4) {\n    input features(n)\n"
                                           "    fc: linear(0) -> record\n}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["check", "sub/a.cl"]) == 1
    assert capsys.readouterr().err.startswith("sub/a.cl:3:9: error: ")
    assert main(["compile", "sub/a.cl", "-o", "out.py"]) == 1
    assert capsys.readouterr().err.startswith("sub/a.cl:3:9: error: ")


def test_unwritable_output_is_an_error_not_a_traceback(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    rc = main(["compile", str(SPECS / "mlp.cl"), "-o", str(blocker / "mlp.py")])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("specc: error: ") and "Traceback" not in err
    assert blocker.read_text() == "not a folder"
