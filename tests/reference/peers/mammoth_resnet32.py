"""Mammoth's ResNet-32 (iCaRL's CIFAR network): option-A shortcuts and batch norm AFTER the ReLU.

Source of the facts: aimagelab/mammoth, ``backbone/ResNet32.py`` (read at commit
e75a491c69fd729edeb01431afb753d9157d9a81, 2026-05-20): ``IdentityShortcut``, ``BasicBlock``,
``ResNet32`` and ``resnet32(num_classes, depth=32)``. This is the "BN after the activation" variant
of the CIFAR ResNet (compare ``pycil_resnet32``, which is conv -> BN -> ReLU).

Structure, depth = 6n + 2, widths 16 / 32 / 64, every batch norm with eps = 1e-4:

* stem: ``conv1`` 3x3 conv (3 -> 16, padding 1, no bias) -> ReLU (the model's ``relu`` module)
  -> ``bn_initial``.  Note the order: ReLU BEFORE batch norm.
* ``layer1`` (stride 1), ``layer2`` (stride 2), ``layer3`` (stride 2, built with last=True).
* ``BasicBlock(inplanes, planes, stride, downsample, last)``: ``conv1`` 3x3 (stride s, padding 1,
  no bias) -> ``relu`` -> ``bn1``; ``conv2`` 3x3 (stride 1, padding 1, no bias) -> ``bn2`` (no
  ReLU between them); add the residual (``downsample(x)`` when the block has one, else x); then
  ``relu`` unless the block is the stage's LAST block of ``layer3`` (``last=True``), which ends
  without an activation. ``relu`` is ONE nn.ReLU(inplace=True) module per block, called at two
  points (after conv1 and after the add).
* ``downsample`` = ``IdentityShortcut(planes)`` only where the stride is not 1 (the first blocks of
  layer2 and layer3): x[:, :, ::2, ::2], then zero-pad the CHANNEL dimension by planes // 4 on
  BOTH sides (planes // 4 zero channels first, the kept channels, planes // 4 zero channels last).
  No parameters; it holds no child modules.
* ``layer3`` construction: its blocks are [first block (stride 2, downsample)] + (n - 2) plain
  blocks + [a last=True block], i.e. n blocks for n >= 2; for n = 1 (depth 8) the public code
  still appends the last block, giving TWO blocks in layer3 (reproduced here).
* head: ``avgpool`` AvgPool2d(8), flatten -> 64 features, ``classifier`` Linear(64, num_classes).
  ``bn_final`` BatchNorm2d(64) is registered (keys in the state_dict) but never used by forward.
  The model-level ``relu`` (nn.ReLU(inplace=True)) is used only in the stem.

Initialisation (reproduced; parity tests copy weights anyway): convs normal(0, sqrt(2 / fan_in))
with fan_in = k*k*in_channels, BN weight 1 / bias 0, classifier weight normal(0, sqrt(1/64)), bias 0.

Registration order: conv1, bn_initial, layer1, layer2, layer3, bn_final, relu, avgpool, classifier;
in a block: conv1, bn1, relu, conv2, bn2, downsample.

Spec notes:

* Batch norm AFTER the activation (conv -> relu -> bn) in the stem and in every block's first conv.
* One activation module per block (``relu``) called at two points; a model-level ``relu`` module.
* Option-A shortcut with SYMMETRIC zero padding of channels (planes//4 each side) after a strided
  slice x[:, :, ::2, ::2]; a parameter-free module without children named ``downsample``.
* The last block of the network omits its final activation (a per-block flag).
* Batch-norm eps option (1e-4).
* A registered but unused module (``bn_final``) whose keys stay in the state_dict.
* Fixed-kernel AvgPool2d(8) head pooling; classifier head in the backbone; returnt selection.
* Stage construction with an irregular block list (first / middle / last blocks differ).
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

EPS_BATCH_NORM = 1e-4

SOURCE = {
    "repo": "aimagelab/mammoth",
    "path": "backbone/ResNet32.py (IdentityShortcut, BasicBlock, ResNet32, resnet32)",
    "commit": "e75a491c69fd729edeb01431afb753d9157d9a81",
}
SPEC_NOTES = (
    "batch norm after the activation (conv -> relu -> bn)",
    "one activation module called at two points",
    "option-A shortcut: strided slice + symmetric zero channel padding (pad op)",
    "last block without final activation",
    "batchnorm eps option",
    "registered but unused module (bn_final) kept in the state_dict",
    "fixed-kernel avgpool2d(8) head",
)


class IdentityShortcut(nn.Module):
    """Option A of mammoth: keep every other pixel, zero-pad planes // 4 channels on each side."""

    def __init__(self, planes: int) -> None:
        super().__init__()
        self.planes = planes
        self.pad_dimension = planes // 4

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, ::2, ::2]
        p = self.pad_dimension
        return F.pad(x, (0, 0, 0, 0, p, p))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 last: bool = False) -> None:
        super().__init__()
        self.last = last
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, eps=EPS_BATCH_NORM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=EPS_BATCH_NORM)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn1(self.relu(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        residual = x if self.downsample is None else self.downsample(x)
        y = y + residual
        if not self.last:
            y = self.relu(y)
        return y


class ResNet32(nn.Module):
    def __init__(self, depth: int = 32, num_classes: int = 1000) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError("depth must be 6n + 2")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn_initial = nn.BatchNorm2d(16, eps=EPS_BATCH_NORM)
        inplanes = 16
        for i, (planes, stride, last) in enumerate([(16, 1, False), (32, 2, False), (64, 2, True)]):
            ds = IdentityShortcut(planes) if stride != 1 else None
            blocks = [BasicBlock(inplanes, planes, stride, ds)]
            inplanes = planes
            middle = (n - 1) if not last else (n - 2)
            for _ in range(max(middle, 0)):
                blocks.append(BasicBlock(inplanes, planes))
            if last:
                blocks.append(BasicBlock(inplanes, planes, last=True))
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.bn_final = nn.BatchNorm2d(64, eps=EPS_BATCH_NORM)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(8)
        self.classifier = nn.Linear(64, num_classes)
        self._init_like_public()

    def _init_like_public(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.kernel_size[0] * m.kernel_size[1] * m.in_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0) * math.sqrt(1.0 / fan_in))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.classifier.weight, 0.0, math.sqrt(1.0 / 64))
        nn.init.zeros_(self.classifier.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        y = self.bn_initial(self.relu(self.conv1(x)))
        y = self.layer3(self.layer2(self.layer1(y)))
        y = self.avgpool(y)
        return y.view(y.size(0), -1)

    def forward(self, x: Tensor, returnt: str = "out"):
        feats = self.forward_features(x)
        if returnt == "features":
            return feats
        out = self.classifier(feats)
        if returnt == "both":
            return out, feats
        return out


def resnet32(num_classes: int, depth: int = 32) -> ResNet32:
    return ResNet32(depth=depth, num_classes=num_classes)


def make(depth: int = 14, num_classes: int = 10) -> ResNet32:
    """Small default (depth 14: two blocks per stage); ``make(depth=32)`` is the public network."""
    return ResNet32(depth=depth, num_classes=num_classes)


# ---------------------------------------------------------------------------------------------
# HAT variant (no public counterpart: the HAT scheme applied to this network)
# ---------------------------------------------------------------------------------------------


def hat_layers(model: ResNet32) -> dict[str, nn.Conv2d]:
    """HAT-masked layers ('/' module paths, data-flow order): the stem conv1, then each block's
    conv1 and conv2 (the option-A shortcut has no layer)."""
    out = {"conv1": model.conv1}
    for i in range(1, 4):
        for j, block in enumerate(getattr(model, f"layer{i}")):
            out[f"layer{i}/{j}/conv1"] = block.conv1
            out[f"layer{i}/{j}/conv2"] = block.conv2
    return out


def hat_forward_features(model: ResNet32, x: Tensor, mask: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """The pooled features with HAT unit masks on each unit's OUTPUT: for conv -> ReLU -> batch
    norm (the stem, every block's conv1) after the batch norm; for conv2 after bn2 and the residual
    add, before the block's final ReLU (none in the last block). Activations: those outputs, after
    the final ReLU where there is one."""
    acts: dict[str, Tensor] = {}

    def unit(h: Tensor, name: str) -> Tensor:
        return h * mask[name].view(1, -1, 1, 1)

    y = unit(model.bn_initial(F.relu(model.conv1(x))), "conv1")
    acts["conv1"] = y
    for i in range(1, 4):
        for j, block in enumerate(getattr(model, f"layer{i}")):
            name = f"layer{i}/{j}"
            h = unit(block.bn1(F.relu(block.conv1(y))), f"{name}/conv1")
            acts[f"{name}/conv1"] = h
            residual = y if block.downsample is None else block.downsample(y)
            y = unit(block.bn2(block.conv2(h)) + residual, f"{name}/conv2")
            if not block.last:
                y = F.relu(y)
            acts[f"{name}/conv2"] = y
    y = model.avgpool(y)
    return y.view(y.size(0), -1), acts


__all__ = ["IdentityShortcut", "BasicBlock", "ResNet32", "resnet32", "make", "hat_layers", "hat_forward_features",
           "SOURCE", "SPEC_NOTES"]
