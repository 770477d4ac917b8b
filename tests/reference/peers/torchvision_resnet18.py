"""torchvision's ResNet-18, in plain PyTorch, with the classification head optional.

Source of the facts: pytorch/vision, ``torchvision/models/resnet.py`` (read at commit
054e54c573ba46e5b9c63f1eea3ad4d103afbea2; the layer structure, names and order of ``BasicBlock``,
``ResNet._make_layer`` and ``resnet18`` are unchanged in later releases, which only replaced
``x.reshape(x.size(0), -1)`` by ``torch.flatten(x, 1)``, the same values).

Structure, base width w (64 in torchvision; a parameter here for fast tests):

* stem: ``conv1`` 7x7 conv (in_channels -> w, stride 2, padding 3, no bias) -> ``bn1`` -> ``relu``
  (nn.ReLU(inplace=True)) -> ``maxpool`` MaxPool2d(kernel 3, stride 2, padding 1).
* ``layer1`` .. ``layer4``: nn.Sequential of 2 ``BasicBlock``; widths w, 2w, 4w, 8w; stride 1 for
  layer1, 2 for the first block of the others.
* ``BasicBlock(inplanes, planes, stride, downsample)``: ``conv1`` 3x3 (stride s, padding 1, no bias)
  -> ``bn1`` -> ``relu``; ``conv2`` 3x3 (stride 1, padding 1, no bias) -> ``bn2``; add the identity
  (``downsample(x)`` when present, else x); ``relu``. The block owns ONE ``relu`` module
  (nn.ReLU(inplace=True)) used at BOTH points, so ``named_modules`` lists ``layer1.0.relu`` once.
  The stride sits on conv1.
* ``downsample``: absent (None, not a module) unless the stride is not 1 or the channel count
  changes; then nn.Sequential(1x1 conv stride s no bias, BatchNorm2d) -> keys ``downsample.0.weight``,
  ``downsample.1.{weight,bias,running_mean,running_var,num_batches_tracked}``.
* head: ``avgpool`` AdaptiveAvgPool2d((1, 1)), flatten, then ``fc`` Linear(8w, num_classes) — only
  when ``num_classes`` is given here (default: no ``fc``, forward returns the 8w features).

Initialisation as torchvision: convs kaiming_normal_(mode='fan_out', nonlinearity='relu'), BN weight 1,
bias 0 (parity tests copy weights anyway).

Registration order: conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc; in a block: conv1, bn1,
relu, conv2, bn2, downsample.

Spec notes:

* One activation module per block (``relu``) called at two points (after bn1, after the add), and one
  stem ``relu``: a named module used more than once, listed once in named_modules.
* Projection shortcut = Sequential(conv1x1, batchnorm2d) named ``downsample`` (keys
  ``downsample.0`` / ``downsample.1``); identity = no module at all.
* Stride on the first conv of the block; stem 7x7/2 conv + maxpool(3, 2, padding 1).
* ``adaptive_avgpool2d((1, 1))`` module named ``avgpool``; optional ``fc`` head (conditional module).
* ReLU(inplace=True) after a residual add.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

SOURCE = {
    "repo": "pytorch/vision",
    "path": "torchvision/models/resnet.py (BasicBlock, ResNet, resnet18)",
    "commit": "054e54c573ba46e5b9c63f1eea3ad4d103afbea2",
}
SPEC_NOTES = (
    "one activation module called at two points (shared relu per block)",
    "projection shortcut = Sequential(conv1x1, batchnorm2d) named downsample; identity = no module",
    "stride on the first conv of a basic block",
    "maxpool2d(3, 2, padding=1) stem, adaptive_avgpool2d",
    "optional head (conditional module)",
)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + identity
        return self.relu(out)


class ResNet18(nn.Module):
    def __init__(self, num_classes: int | None = None, in_channels: int = 3, width: int = 64,
                 layers=(2, 2, 2, 2)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = width
        for i, (mult, stride) in enumerate([(1, 1), (2, 2), (4, 2), (8, 2)]):
            planes = width * mult
            ds = None
            if stride != 1 or inplanes != planes:
                ds = nn.Sequential(
                    nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes),
                )
            blocks = [BasicBlock(inplanes, planes, stride, ds)]
            inplanes = planes
            blocks += [BasicBlock(inplanes, planes) for _ in range(1, layers[i])]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.feature_dim = 8 * width
        if num_classes is not None:
            self.fc = nn.Linear(8 * width, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: Tensor) -> Tensor:
        f = self.forward_features(x)
        return self.fc(f) if hasattr(self, "fc") else f


def resnet18(num_classes: int | None = None) -> ResNet18:
    """The public sizes (width 64, 3 input channels)."""
    return ResNet18(num_classes=num_classes)


def make(num_classes: int | None = None, in_channels: int = 3, width: int = 16) -> ResNet18:
    """Small default (width 16, no head); ``make(width=64, num_classes=1000)`` is torchvision's."""
    return ResNet18(num_classes=num_classes, in_channels=in_channels, width=width)


# ---------------------------------------------------------------------------------------------
# HAT variant (no public counterpart: the HAT scheme applied to this network)
# ---------------------------------------------------------------------------------------------


def hat_layers(model: ResNet18) -> dict[str, nn.Conv2d]:
    """HAT-masked layers ('/' module paths, data-flow order): conv1, then conv1 and conv2 of each
    block; ``downsample`` (the projection shortcut) is not masked."""
    out = {"conv1": model.conv1}
    for i in range(1, 5):
        for j, block in enumerate(getattr(model, f"layer{i}")):
            out[f"layer{i}/{j}/conv1"] = block.conv1
            out[f"layer{i}/{j}/conv2"] = block.conv2
    return out


def hat_forward_features(model: ResNet18, x: Tensor, mask: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """Features with HAT unit masks (after the batch norm, for a block's conv2 after the residual
    add; before the ReLU), and the activations after each masked ReLU."""
    acts: dict[str, Tensor] = {}

    def masked(h: Tensor, name: str, relu: nn.Module) -> Tensor:
        h = relu(h * mask[name].view(1, -1, 1, 1))
        acts[name] = h
        return h

    x = model.maxpool(masked(model.bn1(model.conv1(x)), "conv1", model.relu))
    for i in range(1, 5):
        for j, block in enumerate(getattr(model, f"layer{i}")):
            identity = x if block.downsample is None else block.downsample(x)
            out = masked(block.bn1(block.conv1(x)), f"layer{i}/{j}/conv1", block.relu)
            x = masked(block.bn2(block.conv2(out)) + identity, f"layer{i}/{j}/conv2", block.relu)
    return torch.flatten(model.avgpool(x), 1), acts


__all__ = ["BasicBlock", "ResNet18", "resnet18", "make", "hat_layers", "hat_forward_features", "SOURCE",
           "SPEC_NOTES"]
