"""Every command of docs/tutorial.md, run as written, in a scratch copy of the repository."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial.md"
BLOCK = re.compile(r"```(\w+)([^\n]*)\n(.*?)```", re.S)


def _blocks():
    return [(kind, info.strip(), body) for kind, info, body in BLOCK.findall(TUTORIAL.read_text())]


def test_tutorial_has_files_and_commands():
    kinds = [k for k, _, _ in _blocks()]
    assert kinds.count("spec") == 3 and kinds.count("sh") == 3


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    work = tmp_path_factory.mktemp("tutorial")
    shutil.copytree(ROOT / "specs", work / "specs")
    (work / "generated").mkdir()
    return work


def test_tutorial_commands_run(scratch):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           # the scratch folder (its generated modules), then the specc under test
           "PYTHONPATH": os.pathsep.join([str(scratch), str(ROOT)])}
    outputs = []
    for kind, info, body in _blocks():
        if kind == "spec":
            target = scratch / info.split("file=", 1)[1]
            target.write_text(body)
            continue
        for line in body.strip().splitlines():
            argv = shlex.split(line)
            if argv[0] == "python":
                argv[0] = sys.executable
            done = subprocess.run(argv, cwd=scratch, env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
            outputs.append((line, done.stdout))
    text = "\n".join(out for _, out in outputs)
    # What the tutorial says the commands show.
    assert "VGGSmall, 5 weighted layers" in text
    for name in ("conv/0", "conv/1", "conv/2", "fc1", "fc2"):
        assert name in text
    assert "(2, 256) ['conv/0', 'conv/1', 'conv/2', 'fc1', 'fc2']" in text
    assert "mask of conv/2 (each unit x16, through flatten)" in text
    assert (scratch / "generated" / "vgg_small_hat.py").exists()
    assert (scratch / "generated" / "vgg_small_wsn.py").exists()


def test_tutorial_error_example_is_positioned(scratch):
    done = subprocess.run([str(Path(sys.executable).parent / "specc"), "check", "specs/vgg_small.cl",
                           "-D", "widths=[32, 64, 128, 256, 512, 1024]"], cwd=scratch,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert re.search(r"specs/vgg_small\.cl:\d+:\d+: error: maxpool2d leaves no spatial extent", done.stderr), done.stderr
