"""Shared set-up of the compiler's test suite.

Puts the repository root (for `generated.<stem>`) and tests/ (for `reference.plain`) on sys.path,
and offers small helpers used by several test files."""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
SPECS = REPO / "specs"
GENERATED = REPO / "generated"

for p in (str(REPO), str(TESTS)):
    if p not in sys.path:
        sys.path.insert(0, p)


def top_level_specs() -> list[Path]:
    """Every spec in specs/ (not specs/lib/), sorted."""
    return sorted(SPECS.glob("*.cl"))


def pytest_configure(config):
    # The suite's tensors are tiny; one intra-op thread avoids spin-waiting when the 2 cores of
    # the test machine are shared, and keeps timings stable.
    import torch

    torch.set_num_threads(1)
