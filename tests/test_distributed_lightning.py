"""examples/lightning_ddp_hat.py (issue 15): a 2-task HAT loop with specc's backbone under
Lightning's Trainer(strategy="ddp", accelerator="cpu", devices=2) gives the parameters of one
process on the concatenated batches (<= 1e-6). Runs the example as a user would, twice."""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "lightning_ddp_hat.py"


def _run(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(EXAMPLE), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_lightning_ddp_equals_one_process(tmp_path):
    if importlib.util.find_spec("lightning") is None:
        pytest.skip("lightning is not installed")
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
    except OSError as e:
        pytest.skip(f"no sockets on 127.0.0.1 here: {e}")
    ddp = _run(["--devices", "2", "--out", "ddp.pt"], tmp_path, 240)
    assert ddp.returncode == 0, ddp.stderr[-4000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in ddp.stderr + ddp.stdout  # really 2 processes
    single = _run(["--devices", "1", "--out", "single.pt"], tmp_path, 120)
    assert single.returncode == 0, single.stderr[-4000:]
    spec = importlib.util.spec_from_file_location("lightning_ddp_hat", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)  # its imports of lightning and specc are inside its functions
    assert example.compare(str(tmp_path / "ddp.pt"), str(tmp_path / "single.pt")) <= 1e-6
