"""timm's vision transformer modules as the independent reference for specc's token modules.

timm imports torchvision at module level, and torchvision does not import against the CPU torch used
here (it is not installed). As CLArena's client tests do, timm is imported under the torchvision stub
of tests/clarena_client/stub.py (reused, not copied), put into sys.modules for the import only and
removed afterwards; this adds the few extra names timm's imports reach (torchvision.ops.misc,
torchvision.transforms.functional, torchvision.datasets' classes), each a placeholder that raises on use.
None of timm's vision transformer code calls torchvision. Returns None when timm is not installed
(it is in pyproject's `test` extra).
"""
from __future__ import annotations

import sys

from clarena_client.stub import _module, _placeholder, build_torchvision_stub

_DATASETS = ("CIFAR100", "CIFAR10", "MNIST", "KMNIST", "FashionMNIST", "ImageFolder")


def _stub() -> dict:
    stub = build_torchvision_stub()
    ops, misc = _module("torchvision.ops", True), _module("torchvision.ops.misc", False)
    misc.FrozenBatchNorm2d = _placeholder("torchvision.ops.misc.FrozenBatchNorm2d")
    ops.misc = misc
    functional = _module("torchvision.transforms.functional", False)
    stub["torchvision"].ops = ops
    stub["torchvision.transforms"].functional = functional
    for name in _DATASETS:
        setattr(stub["torchvision.datasets"], name, _placeholder(f"torchvision.datasets.{name}"))
    stub.update({"torchvision.ops": ops, "torchvision.ops.misc": misc,
                 "torchvision.transforms.functional": functional})
    return stub


def vision_transformer():
    """timm.models.vision_transformer, or None when timm is not installed."""
    if "timm.models.vision_transformer" in sys.modules:
        return sys.modules["timm.models.vision_transformer"]
    if sys.modules.get("torchvision") is not None:
        import timm.models.vision_transformer as vt  # a real torchvision: no stub
        return vt
    stub = _stub()
    sys.modules.update(stub)
    try:
        import timm.models.vision_transformer as vt
    except ModuleNotFoundError as e:
        if e.name == "timm":
            return None
        raise
    finally:
        for name in stub:
            sys.modules.pop(name, None)
    return vt
