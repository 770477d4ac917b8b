"""Avalanche's SlimResNet18 (the GEM paper's reduced ResNet-18), in plain PyTorch, 32x32 RGB input.

Source of the facts: ContinualAI/avalanche, ``avalanche/models/slim_resnet18.py`` (read at commit
eb075be393e1f458b2c352514ff6c17b5a2c0f4e, 2025-03-11): ``BasicBlock``, ``ResNet`` and
``SlimResNet18(nclasses, nf=20)`` = ``ResNet(BasicBlock, [2, 2, 2, 2], nclasses, nf)``.

Structure (the same layer stack as mammoth's reduced ResNet-18, see ``mammoth_resnet18``, with two
differences: the head is named ``linear``, and the pooling and input shape are hard-coded):

* forward first reshapes the input with ``x.view(batch, 3, 32, 32)``: the network only accepts
  3x32x32 images (or anything with 3072 values per sample, e.g. flattened images).
* stem: ``conv1`` 3x3 conv (3 -> nf, stride 1, padding 1, no bias) -> ``bn1`` -> ReLU (functional).
* ``layer1`` .. ``layer4``: nn.Sequential of 2 ``BasicBlock``; widths nf, 2nf, 4nf, 8nf; strides
  1, 2, 2, 2 on the first block of each stage.
* ``BasicBlock``: ``conv1`` 3x3 (stride s) -> ``bn1`` -> ReLU; ``conv2`` 3x3 -> ``bn2``; + ``shortcut(x)``;
  ReLU. ``shortcut`` = empty nn.Sequential (identity) or nn.Sequential(1x1 conv stride s no bias,
  BatchNorm2d) when the stride is not 1 or the channels change.
* head: ``avg_pool2d(out, 4)`` (fixed kernel 4: the 4x4 map of a 32x32 input becomes 1x1), flatten,
  ``linear`` Linear(8nf, nclasses) with bias.

Registration order: conv1, bn1, layer1, layer2, layer3, layer4, linear; in a block: conv1, bn1, conv2,
bn2, shortcut.

Spec notes:

* Input reshape to a fixed shape (``view(batch, 3, 32, 32)``) at the start of forward.
* Functional ``avg_pool2d`` with a FIXED kernel 4 (not global, not adaptive).
* BasicBlock with stride on conv1, ``shortcut`` Sequential(conv1x1, batchnorm2d) or an empty
  Sequential (named module, no keys).
* Functional ReLUs; head named ``linear``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

SOURCE = {
    "repo": "ContinualAI/avalanche",
    "path": "avalanche/models/slim_resnet18.py (BasicBlock, ResNet, SlimResNet18)",
    "commit": "eb075be393e1f458b2c352514ff6c17b5a2c0f4e",
}
SPEC_NOTES = (
    "input reshape to a fixed (3, 32, 32)",
    "avg_pool2d with a fixed kernel 4",
    "stride on the first conv of a basic block",
    "projection shortcut = Sequential(conv1x1, batchnorm2d); identity = empty Sequential",
    "functional relu",
)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h)) + self.shortcut(x)
        return F.relu(h)


class ResNet(nn.Module):
    def __init__(self, num_blocks=(2, 2, 2, 2), nclasses: int = 10, nf: int = 20) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, nf, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(nf)
        in_planes = nf
        for i, (mult, stride) in enumerate([(1, 1), (2, 2), (4, 2), (8, 2)]):
            layer = []
            for j in range(num_blocks[i]):
                layer.append(BasicBlock(in_planes, nf * mult, stride if j == 0 else 1))
                in_planes = nf * mult
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.linear = nn.Linear(nf * 8, nclasses)

    def forward_features(self, x: Tensor) -> Tensor:
        bsz = x.size(0)
        h = F.relu(self.bn1(self.conv1(x.view(bsz, 3, 32, 32))))
        h = self.layer4(self.layer3(self.layer2(self.layer1(h))))
        h = F.avg_pool2d(h, 4)
        return h.view(h.size(0), -1)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.forward_features(x))


def SlimResNet18(nclasses: int, nf: int = 20) -> ResNet:  # noqa: N802 - public name
    return ResNet((2, 2, 2, 2), nclasses, nf)


def make(nclasses: int = 10, nf: int = 8) -> ResNet:
    """Small default (nf=8); ``make(nf=20)`` is the public SlimResNet18. Input must be 3x32x32."""
    return ResNet((2, 2, 2, 2), nclasses, nf)


# ---------------------------------------------------------------------------------------------
# HAT variant (no public counterpart: the HAT scheme applied to this network)
# ---------------------------------------------------------------------------------------------


def hat_layers(model: ResNet) -> dict[str, nn.Conv2d]:
    """HAT-masked layers ('/' paths, data-flow order): stem conv1, then each block's conv1, conv2."""
    out = {"conv1": model.conv1}
    for i in range(1, 5):
        for j, block in enumerate(getattr(model, f"layer{i}")):
            out[f"layer{i}/{j}/conv1"] = block.conv1
            out[f"layer{i}/{j}/conv2"] = block.conv2
    return out


def hat_forward_features(model: ResNet, x: Tensor, mask: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """Features with HAT unit masks, each after its layer's batch norm (and, for a block's conv2,
    after the residual add), before the ReLU; plus the activations after each ReLU."""
    acts: dict[str, Tensor] = {}

    def masked_relu(h: Tensor, name: str) -> Tensor:
        acts[name] = F.relu(h * mask[name].view(1, -1, 1, 1))
        return acts[name]

    h = masked_relu(model.bn1(model.conv1(x.view(x.size(0), 3, 32, 32))), "conv1")
    for i in range(1, 5):
        for j, block in enumerate(getattr(model, f"layer{i}")):
            a = masked_relu(block.bn1(block.conv1(h)), f"layer{i}/{j}/conv1")
            h = masked_relu(block.bn2(block.conv2(a)) + block.shortcut(h), f"layer{i}/{j}/conv2")
    h = F.avg_pool2d(h, 4)
    return h.view(h.size(0), -1), acts


__all__ = ["BasicBlock", "ResNet", "SlimResNet18", "make", "hat_layers", "hat_forward_features", "SOURCE",
           "SPEC_NOTES"]
