"""specc.flush_denormals (issue 14): subnormal floats flushed to zero on the calling thread and on
torch's intra-op worker threads, whenever it is called; the previous state returned; a context
manager; off by default. Correctness only (bench/hat_schedule.py measures the speed).

The thread checks run in a fresh interpreter with 2 intra-op threads whose pool is started before
flush_denormals is called: torch.set_flush_denormal alone reaches only the calling thread there,
so half of a parallel op's results stay subnormal."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent

PROBE = textwrap.dedent("""
    import json, sys
    import torch
    import specc
    torch.set_num_threads(2)
    x = torch.full((1 << 22,), 1e-39)          # subnormal float32
    (x * 2).sum()                              # the intra-op pool exists from here on

    def zeros():                               # fraction of a parallel op's results flushed to 0
        return (x * 0.5 == 0).float().mean().item()

    out = {"threads": torch.get_num_threads(), "default": zeros()}
    torch.set_flush_denormal(True)             # the calling thread only
    out["torch_only"] = zeros()
    torch.set_flush_denormal(False)
    prev = specc.flush_denormals()
    out["previous"] = bool(prev)
    out["flushed"] = zeros()
    out["tiny_times_tiny"] = (torch.full((1 << 22,), 1e-20) * 1e-20).abs().max().item()
    with specc.flush_denormals(False) as state:
        out["inside_off"] = zeros()
        out["previous_in_with"] = bool(state)
    out["after_with"] = zeros()
    out["restored"] = (specc.flush_denormals(prev), zeros())[1]
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def probe():
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("OMP_NUM_THREADS", None)
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120,
                       cwd=REPO)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["threads"] == 2
    return out


def test_default_keeps_subnormals(probe):
    assert probe["default"] == 0.0


def test_torch_setting_alone_misses_the_worker_threads(probe):
    """The situation the function exists for (so that the next test can fail)."""
    assert 0.0 < probe["torch_only"] < 1.0


def test_flush_reaches_every_worker_thread(probe):
    assert probe["flushed"] == 1.0
    assert probe["tiny_times_tiny"] == 0.0  # subnormal results flushed too (FTZ), not only inputs


def test_returns_previous_state_and_works_as_a_context_manager(probe):
    assert probe["previous"] is False
    assert probe["inside_off"] == 0.0 and probe["previous_in_with"] is True
    assert probe["after_with"] == 1.0  # back to the state before the `with`
    assert probe["restored"] == 0.0  # flush_denormals(previous) restores the default


def test_in_process_round_trip():
    import specc
    from specc.runtime.denormals import denormals_flushed

    assert not denormals_flushed()
    with specc.flush_denormals():
        assert denormals_flushed()
        assert (torch.tensor([1e-30]) * 1e-10).item() == 0.0
    assert not denormals_flushed()
    assert (torch.tensor([1e-30]) * 1e-10).item() != 0.0


def test_import_specc_stays_free_of_torch():
    code = "import sys, specc; specc.flush_denormals; assert 'torch' not in sys.modules, 'torch imported'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
