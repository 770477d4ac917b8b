"""A non-editable install works from anywhere: the wheel carries the grammar and its parser tables
as package data, `specc compile` runs from it, and a generated module imports against it."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO, SPECS

SCRIPT = """
import sys, torch
import specc
assert specc.__file__.startswith(sys.argv[1]), specc.__file__  # the installed copy, not the repo
from specc.cli import main
assert main(["compile", "mlp_hat.cl", "-o", "mlp_hat.py"]) == 0
sys.path.insert(0, ".")
from mlp_hat import HATMaskMLP
net = HATMaskMLP(input_dim=6, hidden_dims=[5], output_dim=3, gate="sigmoid")
net.setup_task_id(1)
feature, mask, acts = net(torch.randn(2, 6), "train", s_max=400, batch_idx=1, num_batches=3)
print("ok", tuple(feature.shape), sorted(acts))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(REPO)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{done.stdout}\n{done.stderr}")
    (path,) = out.glob("specc-*.whl")
    return path


def test_wheel_holds_the_grammar_and_its_tables(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "specc/frontend/specc.lark" in names and "specc/frontend/specc.lark.json" in names
    assert not [n for n in names if n.startswith(("tests/", "generated/", "specs/"))]


def test_installed_wheel_compiles_and_runs_from_anywhere(wheel, tmp_path):
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           str(wheel)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    work = tmp_path / "work"
    work.mkdir()
    for name in ("mlp.cl", "mlp_hat.cl"):
        (work / name).write_text((SPECS / name).read_text())
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(target)], capture_output=True, text=True, cwd=work,
                         env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip().splitlines()[-1] == "ok (2, 3) ['fc/0', 'fc/1']"
