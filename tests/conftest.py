"""Shared set-up of the compiler's test suite.

Puts the repository root (for `generated.<stem>`) and tests/ (for `reference.plain`) on sys.path,
and offers small helpers used by several test files."""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
SPECS = REPO / "specs"
GENERATED = REPO / "generated"

for p in (str(REPO), str(TESTS)):
    if p not in sys.path:
        sys.path.insert(0, p)

# The CLArena client fixtures (`clarena`, `specc`, `wsn_backward_restored`, `no_stub_left_behind`),
# for every test file that asks for them by name (none is autouse).
pytest_plugins = ["clarena_client.fixtures"]

# Property and fuzz tests draw the same examples on every run by default, so that the suite CI runs
# is the suite that passed here; HYPOTHESIS_PROFILE=explore draws new ones (for hunting bugs).
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("repeatable", derandomize=True)
_hypothesis_settings.register_profile("explore", derandomize=False)
_hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


def constructor_parameters(cls) -> list[tuple[str, object]]:
    """(name, default) of a class's positional-or-keyword constructor parameters; its keyword-only
    ones must be exactly `disable_unlearning=False`, which CLArena's pipelines pass to every backbone
    they build (CLArena's classes take it through **kwargs)."""
    import inspect

    params = [p for p in inspect.signature(cls).parameters.values() if p.name != "self"]
    keyword_only = [(p.name, p.default) for p in params if p.kind == p.KEYWORD_ONLY]
    assert keyword_only == [("disable_unlearning", False)], keyword_only
    assert not any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in params), "an open signature swallows typos"
    return [(p.name, p.default) for p in params if p.kind == p.POSITIONAL_OR_KEYWORD]


# CLArena's ResNet-18 classes (ResNet18, CLResNet18, HATMaskResNet18, AmnesiacHATResNet18) also take
# `pretrained_weights` after `bias` (torchvision's resnet18 weights; the contract's list omits it).
PRETRAINED = [("pretrained_weights", None)]


def unnamed_files(folder: Path) -> bool:
    """Whether this system makes unnamed (O_TMPFILE) files in `folder`, asked without specc's writer."""
    try:
        os.close(os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o600))
        return True
    except (AttributeError, OSError):
        return False


def top_level_specs() -> list[Path]:
    """Every spec in specs/ (not specs/lib/), sorted."""
    return sorted(SPECS.glob("*.cl"))


def pytest_configure(config):
    # The suite's tensors are tiny; one intra-op thread avoids spin-waiting when the 2 cores of
    # the test machine are shared, and keeps timings stable.
    import torch

    torch.set_num_threads(1)
