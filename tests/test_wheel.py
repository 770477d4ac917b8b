"""The wheel installs and works as a user gets it: built from a clean copy of the tracked files
(not the work tree, whose stray build/ or egg-info could fill gaps), installed into a fresh
`python -m venv` (no system site-packages, no editable install, no PYTHONPATH) with torch==2.13.0
and lark from the registry, and used from a folder outside the checkout through the venv's own
`specc` console script. One venv for the module (building it takes about half a minute)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, SPECS

PIP = ["-m", "pip", "--disable-pip-version-check", "-q"]

# Run by the fresh venv's interpreter in the work folder: where specc came from, which version the
# installed metadata says, and the generated module working against the installed runtime.
PROBE = """
import importlib.metadata, json, sys, sysconfig
import specc
print(json.dumps({"file": specc.__file__, "purelib": sysconfig.get_paths()["purelib"],
                  "version": specc.__version__, "metadata": importlib.metadata.version("specc"),
                  "path": sys.path}))
"""

RUN = """
import sys, torch
sys.path.insert(0, ".")
from mlp_hat import HATMaskMLP
net = HATMaskMLP(input_dim=6, hidden_dims=[5], output_dim=3, gate="sigmoid")
net.setup_task_id(1)
feature, mask, acts = net(torch.randn(2, 6), "train", s_max=400, batch_idx=1, num_batches=3)
print("ok", tuple(feature.shape), sorted(acts))
"""


def _clean_env() -> dict[str, str]:
    """The environment a user's shell would have: no path into the checkout, no venv of ours."""
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV", "PYTHONSAFEPATH"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and not Path(p).resolve().is_relative_to(REPO))
    return env


def _run(cmd: list, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, env=_clean_env(),
                          timeout=timeout)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def _copy_tracked_files(dest: Path) -> None:
    """What a fresh clone holds: the files git tracks, with their contents in the work tree."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.fail("the wheel test builds from `git ls-files`: run it in a git checkout with git installed")
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout
    for name in listed.decode().split("\0"):
        src = REPO / name
        if not name or not os.path.lexists(src):  # deleted in the work tree, not yet committed
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / name, follow_symlinks=False)


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """(the wheel, the venv's bin folder, a work folder outside the checkout); prints what it cost."""
    root = tmp_path_factory.mktemp("wheel")
    assert not root.resolve().is_relative_to(REPO)
    started = time.perf_counter()
    src, dist, env_dir, work = root / "src", root / "dist", root / "venv", root / "work"
    for d in (src, work):
        d.mkdir()
    _copy_tracked_files(src)
    # sys.executable may be a venv's python: `venv` builds from its base interpreter all the same.
    _run([sys.executable, "-m", "venv", env_dir], cwd=root)
    python = env_dir / "bin" / "python"
    # Built by the fresh venv's pip with build isolation: setuptools as pyproject's build-system asks.
    _run([python, *PIP, "wheel", "--no-deps", "-w", dist, src], cwd=work)
    (wheel,) = dist.glob("specc-*.whl")
    built = time.perf_counter()
    _run([python, *PIP, "install", "torch==2.13.0", wheel], cwd=work)
    print(f"\nwheel test venv: clean copy + venv + wheel {built - started:.1f} s, "
          f"install with torch {time.perf_counter() - built:.1f} s")
    yield wheel, env_dir / "bin", work
    shutil.rmtree(env_dir, ignore_errors=True)  # torch's 1 GB, not kept among pytest's last 3 runs


def test_wheel_holds_every_package_and_the_grammar(venv):
    wheel, _, _ = venv
    names = zipfile.ZipFile(wheel).namelist()
    assert "specc/frontend/specc.lark" in names and "specc/frontend/specc.lark.json" in names
    assert not [n for n in names if n.startswith(("tests/", "generated/", "specs/", "bench/", "examples/"))]
    packages = sorted(str(p.parent.relative_to(REPO)) for p in (REPO / "specc").rglob("__init__.py"))
    assert packages and [p for p in packages if f"{p}/__init__.py" not in names] == []


def test_installed_specc_is_the_wheels_with_one_version(venv):
    wheel, bin_dir, work = venv
    info = json.loads(_run([bin_dir / "python", "-c", PROBE], cwd=work).stdout)
    assert Path(info["file"]).resolve().is_relative_to(Path(info["purelib"]).resolve()), info
    assert not [p for p in info["path"] if p and Path(p).resolve().is_relative_to(REPO)], info["path"]
    assert info["metadata"] == info["version"], info
    assert wheel.name.startswith(f"specc-{info['version']}-")
    version = _run([bin_dir / "specc", "--version"], cwd=work).stdout
    assert version.strip() == f"specc {info['version']}"


def test_console_script_compiles_and_the_output_runs(venv):
    _, bin_dir, work = venv
    for name in ("mlp.cl", "mlp_hat.cl"):
        shutil.copy(SPECS / name, work / name)
    _run([bin_dir / "specc", "compile", "mlp_hat.cl", "-o", "mlp_hat.py"], cwd=work)
    assert (work / "mlp_hat.py").is_file()
    run = _run([bin_dir / "python", "-c", RUN], cwd=work)
    assert run.stdout.strip().splitlines()[-1] == "ok (2, 3) ['fc/0', 'fc/1']"


def test_console_script_is_the_entry_point_that_handles_ctrl_c(venv):
    """The installed `specc` goes through specc/__main__.py (its handler says so under the test hook)
    and a Ctrl-C during the imports of a compile that needs torch ends it with one line and 130."""
    _, bin_dir, work = venv
    for name in ("resnet152_hat.cl", "resnet152.cl", "lib/resnet.cl", "lib/resnet_blocks.cl"):
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SPECS / name, work / name)
    proc = subprocess.Popen([str(bin_dir / "specc"), "compile", "resnet152_hat.cl", "-o", "out/"], cwd=work,
                            env={**_clean_env(), "SPECC_TEST_PAUSE": "start"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr.readline() == "specc: test pause at start\n"
        time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    # (torch, when its import got that far, warns first that NumPy is missing: see the README)
    assert (proc.returncode, stdout, stderr.splitlines()[-1:]) == (130, "", ["specc: interrupted"]), stderr
    assert "Traceback" not in stderr
    assert not (work / "out").exists()
