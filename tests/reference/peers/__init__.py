"""Independent plain-PyTorch references of backbones from widely used continual-learning code bases.

Each module re-implements one public backbone from facts only (layer shapes, module attribute names
and their registration order, strides, paddings, where batch norm / activations / pooling /
dropout sit). No public code is copied; nothing here imports ``specc``. Every module offers:

* the model class(es), whose constructor defaults are the public sizes;
* ``make(**overrides)``: the same model with small sizes for fast CPU tests;
* ``forward_features(x)`` on the model: the backbone output before any classification head
  (not ``features``, which is a public module name in some of these networks);
* ``SOURCE``: where the facts come from (repository, path, commit read);
* ``SPEC_NOTES``: short tags of the language features a spec needs to reproduce the model
  exactly (the module docstring's "Spec notes" paragraph explains each).

They are the ground truth for parity tests of specs written for these backbones
(same ``state_dict`` keys in the same order, same outputs for the same weights).
"""

from __future__ import annotations

import importlib

MODULES = (
    "mammoth_resnet18",
    "pycil_resnet32",
    "mammoth_resnet32",
    "avalanche_slim_resnet18",
    "avalanche_simple_cnn",
    "torchvision_resnet18",
    "hat_mlp",
    "hat_alexnet",
    "wsn_alexnet",
    "wsn_resnet18",
    "densenet_bc",
    "inception_net",
    "mobilenet_v1",
    "se_resnet18",
    "mobilenet_v3_small",
    "efficientnet_b0",
)


def load(name: str):
    """Import ``reference.peers.<name>`` (relative to this package)."""
    if name not in MODULES:
        raise KeyError(f"unknown peer reference {name!r}; known: {', '.join(MODULES)}")
    return importlib.import_module(f"{__name__}.{name}")


def all_modules():
    """Every peer reference module, in ``MODULES`` order."""
    return [load(name) for name in MODULES]
