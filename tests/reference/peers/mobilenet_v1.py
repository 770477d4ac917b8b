"""MobileNet-v1 for CIFAR (depthwise-separable blocks), following kuangliu/pytorch-cifar, in plain PyTorch.

Source of the facts: kuangliu/pytorch-cifar, ``models/mobilenet.py`` (read at commit
818df5102cc146e336ffae5bdff68a794d9caea2): ``Block`` and ``MobileNet(num_classes=10)`` with
``cfg = [64, (128, 2), 128, (256, 2), 256, (512, 2), 512, 512, 512, 512, 512, (1024, 2), 1024]``
(an int is a width with stride 1, a pair is (width, stride)). Here the stem width and ``cfg`` are
parameters (the defaults of the class are the public ones; ``make`` uses a short, narrow cfg).

Structure:

* stem: ``conv1`` 3x3 conv (3 -> 32, stride 1, padding 1, no bias) -> ``bn1`` -> ReLU (functional).
* ``layers``: nn.Sequential of ``Block(in_planes, out_planes, stride)``, one per cfg entry, indexed
  0, 1, ...
* ``Block``: ``conv1`` DEPTHWISE 3x3 conv (in -> in, stride s, padding 1, groups = in, no bias; weight
  shape (in, 1, 3, 3)) -> ``bn1`` -> ReLU; ``conv2`` POINTWISE 1x1 conv (in -> out, stride 1, padding 0,
  no bias) -> ``bn2`` -> ReLU. ReLUs are functional. No residual connection.
* head: ``avg_pool2d(out, 2)`` (fixed kernel 2: the 2x2 map left by four stride-2 blocks on a 32x32
  input becomes 1x1), flatten, ``linear`` Linear(last width, num_classes) with bias (the public code
  hard-codes 1024 in_features, valid only for a 1x1 map; here in_features = last width, so keep the
  map 2x2 before pooling, i.e. as many stride-2 entries as the public cfg for 32x32 inputs).

Registration order: conv1, bn1, layers, linear; in a block: conv1, bn1, conv2, bn2.

Spec notes:

* Grouped convolution with groups = in_channels (depthwise), i.e. ``groups`` computed from the
  input's channel count; per-channel units (a depthwise conv's output unit c depends only on input
  channel c).
* A stage list driven by a heterogeneous config (ints and (width, stride) pairs) -> a Sequential of
  blocks indexed 0..n-1.
* Functional ReLU after each BN; functional ``avg_pool2d`` with a fixed kernel 2.
* Head named ``linear`` (optional here: ``num_classes=None`` leaves it out).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

SOURCE = {
    "repo": "kuangliu/pytorch-cifar",
    "path": "models/mobilenet.py (Block, MobileNet)",
    "commit": "818df5102cc146e336ffae5bdff68a794d9caea2",
}
SPEC_NOTES = (
    "depthwise conv: groups = in_channels (grouped conv, per-channel units)",
    "config-driven Sequential of blocks (ints and (width, stride) pairs)",
    "functional relu; avg_pool2d with a fixed kernel 2",
    "optional head",
)

PUBLIC_CFG = (64, (128, 2), 128, (256, 2), 256, (512, 2), 512, 512, 512, 512, 512, (1024, 2), 1024)


class Block(nn.Module):
    """Depthwise 3x3 + pointwise 1x1, each followed by BN and ReLU."""

    def __init__(self, in_planes: int, out_planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, in_planes, kernel_size=3, stride=stride, padding=1, groups=in_planes,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv2 = nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=1, padding=0, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class MobileNet(nn.Module):
    def __init__(self, num_classes: int | None = 10, cfg=PUBLIC_CFG, stem_width: int = 32,
                 in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, stem_width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        blocks = []
        cin = stem_width
        for entry in cfg:
            out, stride = (entry, 1) if isinstance(entry, int) else (entry[0], entry[1])
            blocks.append(Block(cin, out, stride))
            cin = out
        self.layers = nn.Sequential(*blocks)
        self.feature_dim = cin
        if num_classes is not None:
            self.linear = nn.Linear(cin, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        out = F.avg_pool2d(out, 2)
        return out.view(out.size(0), -1)

    def forward(self, x: Tensor) -> Tensor:
        f = self.forward_features(x)
        return self.linear(f) if hasattr(self, "linear") else f


def make(num_classes: int | None = 10, cfg=(16, (32, 2), 32, (64, 2), (64, 2), (128, 2)),
         stem_width: int = 8, in_channels: int = 3) -> MobileNet:
    """Small default: 6 blocks, four of stride 2 (a 32x32 input ends 2x2 -> pooled to 1x1)."""
    return MobileNet(num_classes, cfg, stem_width, in_channels)


# ---------------------------------------------------------------------------------------------
# HAT variant (no public counterpart: the HAT scheme applied to this network)
# ---------------------------------------------------------------------------------------------


def hat_layers(model: MobileNet) -> dict[str, nn.Conv2d]:
    """HAT-masked layers ('/' module paths, data-flow order): the stem conv, then each block's
    depthwise conv1 and pointwise conv2."""
    out = {"conv1": model.conv1}
    for i, block in enumerate(model.layers):
        out[f"layers/{i}/conv1"] = block.conv1
        out[f"layers/{i}/conv2"] = block.conv2
    return out


def hat_forward_features(model: MobileNet, x: Tensor, mask: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """Features with a HAT unit mask after every batch norm (before its ReLU), and the activations
    after each masked ReLU."""
    acts: dict[str, Tensor] = {}

    def gated(h: Tensor, name: str) -> Tensor:
        acts[name] = F.relu(h * mask[name].view(1, -1, 1, 1))
        return acts[name]

    out = gated(model.bn1(model.conv1(x)), "conv1")
    for i, block in enumerate(model.layers):
        out = gated(block.bn1(block.conv1(out)), f"layers/{i}/conv1")
        out = gated(block.bn2(block.conv2(out)), f"layers/{i}/conv2")
    out = F.avg_pool2d(out, 2)
    return out.view(out.size(0), -1), acts


def wsn_layers(model: MobileNet) -> dict[str, nn.Conv2d]:
    """WSN-scored layers: the same convolutions (no shortcut projections in MobileNet)."""
    return hat_layers(model)


def wsn_forward_features(model: MobileNet, x: Tensor, weight_mask: dict[str, Tensor]) -> tuple[Tensor, dict]:
    """WSN: every conv weight multiplied by its 0/1 mask (any shape with the weight's number of
    entries, row-major; a depthwise conv's weight is (channels, 1, 3, 3)); no biases. Returns the
    features and the activations after each ReLU."""
    acts: dict[str, Tensor] = {}

    def conv(layer: nn.Conv2d, h: Tensor, name: str) -> Tensor:
        w = layer.weight * weight_mask[name].reshape(layer.weight.shape)
        return F.conv2d(h, w, None, layer.stride, layer.padding, layer.dilation, layer.groups)

    def act(h: Tensor, name: str) -> Tensor:
        acts[name] = F.relu(h)
        return acts[name]

    out = act(model.bn1(conv(model.conv1, x, "conv1")), "conv1")
    for i, block in enumerate(model.layers):
        out = act(block.bn1(conv(block.conv1, out, f"layers/{i}/conv1")), f"layers/{i}/conv1")
        out = act(block.bn2(conv(block.conv2, out, f"layers/{i}/conv2")), f"layers/{i}/conv2")
    out = F.avg_pool2d(out, 2)
    return out.view(out.size(0), -1), acts


__all__ = ["Block", "MobileNet", "PUBLIC_CFG", "make", "hat_layers", "hat_forward_features", "wsn_layers",
           "wsn_forward_features", "SOURCE", "SPEC_NOTES"]
