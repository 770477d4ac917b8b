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


def test_the_runtimes_are_read_again_only_after_an_import(monkeypatch):
    """HAT's default flushing sets the mode four times a train step: /proc/self/maps (about a
    millisecond a read) is read on the first, and again only once a Python module was imported;
    every broadcast still reaches the runtimes read."""
    import types

    from generated.mlp_hat import HATMaskMLP
    from specc.runtime import denormals

    reads = []
    real = denormals._loaded_openmp_runtimes
    monkeypatch.setattr(denormals, "_loaded_openmp_runtimes", lambda: reads.append(1) or real())
    monkeypatch.setattr(denormals, "_runtimes_seen", (-1, []))
    net = HATMaskMLP(input_dim=6, hidden_dims=[5], output_dim=4, gate="sigmoid")
    net.setup_task_id(1)
    x = torch.randn(3, 6)
    reached = []
    broadcast = denormals._Broadcast()
    monkeypatch.setattr(denormals, "_broadcast", lambda threads: reached.append(broadcast(threads)))
    for b in range(1, 4):
        net(x, "train", s_max=400.0, batch_idx=b, num_batches=3)[0].sum().backward()
    assert len(reached) == 12 and len(reads) == 1
    if real():  # a Linux with an OpenMP runtime loaded: each broadcast reached it
        assert all(r >= 1 for r in reached)
    monkeypatch.setitem(sys.modules, "specc_test_new_module", types.ModuleType("specc_test_new_module"))
    net(x, "train", s_max=400.0, batch_idx=1, num_batches=3)
    assert len(reads) == 2
