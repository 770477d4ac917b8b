"""Fixtures of the CLArena client tests (a pytest plugin of tests/conftest.py: any test asks for them by name).

- `clarena` (session): CLArena imported as a library under the scoped torchvision stub; the test is
  skipped, with the reason, when that is impossible.
- `specc` (session): a `SpeccCompiler` writing into a session temp folder, which is on sys.path
  while the session lasts (so `_target_: specc_<stem>.<Class>` resolves for Hydra).
- `wsn_backward_restored`: CLArena's WSN straight-through gate
  (`clarena.backbones.base.PercentileLayerParameterMaskingByScore.backward`) has no body in this
  version, so it returns None and CLArena's own WSN crashes at backward. For the test's duration it is
  monkeypatched to the straight-through estimator the docstring describes, `return grad_output, None`.
  (If a later CLArena restores the body, nothing is patched.)
- `no_stub_left_behind`: after each test, no torchvision stub module is left in sys.modules.
"""
from __future__ import annotations

import sys

import pytest
import torch

from .loader import ClarenaUnavailable, SpeccCompiler, import_clarena, stub_installed


@pytest.fixture(scope="session")
def clarena():
    try:
        return import_clarena()
    except ClarenaUnavailable as e:
        pytest.skip(f"CLArena is not importable here: {e}")


@pytest.fixture(scope="session")
def specc(clarena, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("specc_clarena")
    sys.path.insert(0, str(outdir))
    compiler = SpeccCompiler(outdir)
    try:
        yield compiler
    finally:
        if str(outdir) in sys.path:
            sys.path.remove(str(outdir))
        for name in [n for n in sys.modules if n.startswith("specc_")]:
            if str(outdir) in str(getattr(sys.modules[name], "__file__", "")):
                del sys.modules[name]


def _straight_through_backward(ctx, grad_output):
    """WSN's straight-through estimator: the gradient passes to the scores unchanged."""
    return grad_output, None


@pytest.fixture
def wsn_backward_restored(clarena, monkeypatch):
    gate = clarena.base.PercentileLayerParameterMaskingByScore
    if gate.backward(None, torch.ones(1)) is None:  # the body is missing in this CLArena version
        monkeypatch.setattr(gate, "backward", staticmethod(_straight_through_backward))
    return gate


@pytest.fixture
def no_stub_left_behind():
    yield
    assert not stub_installed(), "the torchvision stub was left in sys.modules"
