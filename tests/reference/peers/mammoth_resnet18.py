"""Mammoth's "reduced ResNet-18" (the slim ResNet-18 of the GEM paper), in plain PyTorch.

Source of the facts: aimagelab/mammoth, ``backbone/ResNetBlock.py`` (read at commit
e75a491c69fd729edeb01431afb753d9157d9a81, 2026-05-20): ``BasicBlock``, ``ResNet`` and the
registered builder ``reduced_resnet18(num_classes)``, i.e. ``ResNet(BasicBlock, [2, 2, 2, 2],
num_classes, nf=20)``. Older mammoth (``backbone/ResNet18.py``, e.g. commit 9073cf9, 2022) built the
same network with ``resnet18(nclasses, nf)`` but named the head ``linear`` and also registered the
aliases ``classifier`` (same Linear) and ``_features`` (a Sequential re-registering conv1, bn1,
layer1..layer4), which duplicated state_dict keys; this reference follows the current file, whose
head is ``classifier`` only.

Structure, for ``nf`` filters and an RGB input (the stem's input channels are fixed to 3):

* stem: ``conv1`` 3x3 conv (3 -> nf, stride 1, padding 1, no bias) -> ``bn1`` BatchNorm2d -> ReLU
  (functional, no module); no max pooling.
* ``layer1`` .. ``layer4``: nn.Sequential of 2 ``BasicBlock`` each, widths nf, 2nf, 4nf, 8nf; the
  first block of ``layer2``..``layer4`` has stride 2, every other block stride 1.
* ``BasicBlock(in_planes, planes, stride)``: ``conv1`` 3x3 (in -> planes, stride s, padding 1, no
  bias) -> ``bn1`` -> ReLU; ``conv2`` 3x3 (planes -> planes, stride 1, padding 1, no bias) -> ``bn2``;
  add ``shortcut(x)``; ReLU. The stride sits on the FIRST conv. ``shortcut`` is an EMPTY
  nn.Sequential (the identity, no state_dict keys, but still a named module) unless the stride is
  not 1 or the channel count changes; then nn.Sequential(1x1 conv stride s no bias, BatchNorm2d),
  so its keys are ``shortcut.0.weight`` and ``shortcut.1.*``.
* head: ``avg_pool2d`` with kernel = the feature map's height (global average for square maps),
  flatten, then ``classifier`` Linear(8nf, num_classes) with bias.

Registration order (state_dict order): conv1, bn1, layer1, layer2, layer3, layer4, classifier;
in a block: conv1, bn1, conv2, bn2, shortcut.

Spec notes (what a spec needs to reproduce this exactly):

* BasicBlock with the stride on conv1 (CLArena puts it on conv2) and a projection shortcut that is
  conv1x1 + batchnorm2d inside a Sequential named ``shortcut`` (keys ``shortcut.0`` /
  ``shortcut.1``), present only when stride != 1 or channels change.
* The identity shortcut is an empty nn.Sequential that still appears in ``named_modules``
  (``layer1.0.shortcut``) but owns no state_dict keys.
* Functional ReLUs (no activation modules anywhere), functional average pooling whose kernel is the
  input's spatial size (``avg_pool2d(x, x.shape[2])``; for square inputs equal to a global
  ``adaptive_avgpool2d(1)``).
* Module names ``layer1``..``layer4``, ``bn1``/``bn2`` (not CLArena's ``conv_bn1``), a classifier head
  named ``classifier`` inside the backbone.
* ``forward(x, returnt)`` selects logits / features / both.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

SOURCE = {
    "repo": "aimagelab/mammoth",
    "path": "backbone/ResNetBlock.py (BasicBlock, ResNet, reduced_resnet18)",
    "commit": "e75a491c69fd729edeb01431afb753d9157d9a81",
}
SPEC_NOTES = (
    "stride on the first conv of a basic block",
    "projection shortcut = Sequential(conv1x1, batchnorm2d) named shortcut.0 / shortcut.1",
    "identity shortcut as an empty Sequential (named module, no keys)",
    "functional relu (no activation modules)",
    "avg_pool2d with kernel = input spatial size",
    "classifier head inside the backbone",
)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        else:
            self.shortcut = nn.Sequential()

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        y = y + self.shortcut(x)
        return F.relu(y)


class ResNet(nn.Module):
    """``ResNet(BasicBlock, [2, 2, 2, 2], num_classes, nf)`` of mammoth, 3x3 stem only."""

    def __init__(self, num_blocks=(2, 2, 2, 2), num_classes: int = 10, nf: int = 20) -> None:
        super().__init__()
        self.nf = nf
        self.num_classes = num_classes
        self.conv1 = _conv3x3(3, nf, 1)
        self.bn1 = nn.BatchNorm2d(nf)
        widths = [nf, 2 * nf, 4 * nf, 8 * nf]
        strides = [1, 2, 2, 2]
        cin = nf
        for i, (w, s, n) in enumerate(zip(widths, strides, num_blocks)):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(cin, w, s if j == 0 else 1))
                cin = w
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.feature_dim = 8 * nf
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.layer4(self.layer3(self.layer2(self.layer1(y))))
        y = F.avg_pool2d(y, y.shape[2])
        return y.view(y.size(0), -1)

    def forward(self, x: Tensor, returnt: str = "out"):
        feature = self.forward_features(x)
        if returnt == "features":
            return feature
        out = self.classifier(feature)
        if returnt == "out":
            return out
        if returnt == "both":
            return out, feature
        raise ValueError(f"unknown returnt {returnt!r}")


def reduced_resnet18(num_classes: int) -> ResNet:
    """The public configuration: nf=20."""
    return ResNet((2, 2, 2, 2), num_classes, 20)


def make(num_classes: int = 10, nf: int = 8) -> ResNet:
    """Small default (nf=8); ``make(nf=20)`` is mammoth's reduced ResNet-18."""
    return ResNet((2, 2, 2, 2), num_classes, nf)


# ---------------------------------------------------------------------------------------------
# HAT variant (no public counterpart: the HAT scheme applied to this network)
# ---------------------------------------------------------------------------------------------


def hat_layers(model: ResNet) -> dict[str, nn.Conv2d]:
    """The network's HAT-masked layers, '/'-separated module paths, in data-flow order: the stem conv,
    then conv1, conv2 of every block (the shortcut projection is not masked)."""
    layers = {"conv1": model.conv1}
    for i in range(1, 5):
        for j, block in enumerate(getattr(model, f"layer{i}")):
            layers[f"layer{i}/{j}/conv1"] = block.conv1
            layers[f"layer{i}/{j}/conv2"] = block.conv2
    return layers


def hat_forward_features(model: ResNet, x: Tensor, mask: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """The features with HAT unit masks: each layer's mask multiplies its channels after its batch
    norm (for a block's conv2: after the residual add), before the ReLU. Returns (features,
    activations), activations keyed by layer name (after the ReLU)."""
    acts: dict[str, Tensor] = {}

    def unit(h: Tensor, name: str) -> Tensor:
        h = F.relu(h * mask[name].view(1, -1, 1, 1))
        acts[name] = h
        return h

    y = unit(model.bn1(model.conv1(x)), "conv1")
    for i in range(1, 5):
        for j, block in enumerate(getattr(model, f"layer{i}")):
            h = unit(block.bn1(block.conv1(y)), f"layer{i}/{j}/conv1")
            y = unit(block.bn2(block.conv2(h)) + block.shortcut(y), f"layer{i}/{j}/conv2")
    y = F.avg_pool2d(y, y.shape[2])
    return y.view(y.size(0), -1), acts


__all__ = ["BasicBlock", "ResNet", "reduced_resnet18", "make", "hat_layers", "hat_forward_features", "SOURCE",
           "SPEC_NOTES"]
