"""PyCIL's CIFAR ResNet-32 with option-A shortcuts, in plain PyTorch.

Source of the facts: G-U-N/PyCIL, ``convs/cifar_resnet.py`` (read at commit
87cc4110d60765dc3f64af7ef7a693efed8418ff, 2025-03-12): ``DownsampleA``, ``ResNetBasicblock``,
``CifarResNet`` and ``resnet32()`` = ``CifarResNet(ResNetBasicblock, depth=32)`` (the file credits
khurramjaved96/incremental-learning's resnet32). The same network is mammoth's ResNet-32 apart from
the details listed in ``mammoth_resnet32`` (which puts batch norm AFTER the activation).

Structure, depth = 6n + 2 (n = 5 for ResNet-32), base width 16:

* stem: ``conv_1_3x3`` 3x3 conv (channels -> 16, stride 1, padding 1, no bias) -> ``bn_1`` -> ReLU
  (functional).
* ``stage_1``, ``stage_2``, ``stage_3``: nn.Sequential of n ``ResNetBasicblock`` each, widths 16,
  32, 64; the first block of stages 2 and 3 has stride 2.
* ``ResNetBasicblock(inplanes, planes, stride, downsample)``: ``conv_a`` 3x3 (stride s, padding 1,
  no bias) -> ``bn_a`` -> ReLU; ``conv_b`` 3x3 (stride 1, padding 1, no bias) -> ``bn_b``; then
  ReLU(residual + branch), where residual = ``downsample(x)`` if the block has one, else x.
* ``downsample`` (option A, ``DownsampleA``) exists when the stride is not 1 or the channel count
  changes (stride must be 2 and the width doubles): an ``avg`` AvgPool2d(kernel_size=1, stride=2)
  (a strided subsample, x[:, :, ::2, ::2]) followed by channel concatenation with ``x.mul(0)``:
  the original channels first, then as many ZERO channels (zeros made by multiplying by 0, so a
  NaN/inf input would propagate, unlike a constant pad). No parameters.
* head: ``avgpool`` AvgPool2d(8) (a global average for 32x32 inputs, whose last stage is 8x8),
  flatten -> features of size 64. ``fc`` Linear(64, 10) is registered (its keys are in the
  state_dict) but NEVER used by forward, which returns ``{'fmaps': [x1, x2, x3], 'features': f}``.

Initialisation (reproduced; parity tests copy weights anyway): convs normal(0, sqrt(2 / fan_out))
with fan_out = k*k*out_channels, BN weight 1 / bias 0, Linear kaiming_normal_ weight and zero bias.

Registration order: conv_1_3x3, bn_1, stage_1, stage_2, stage_3, avgpool, fc; in a block: conv_a,
bn_a, conv_b, bn_b, downsample (downsample.avg).

Spec notes:

* Option-A shortcut: strided subsample (AvgPool2d kernel 1 stride 2, a parameter-free module named
  ``downsample.avg``) + channel concatenation with a zero tensor of the same shape (``cat(x, x*0)``),
  i.e. zeros appended AFTER the kept channels (contrast mammoth: symmetric zero padding).
* Residual add followed by a functional ReLU; all ReLUs functional.
* A registered but unused module (``fc``) whose keys must still appear in the state_dict.
* Fixed-kernel AvgPool2d(8) module as the head pooling (not adaptive).
* A forward that returns a dict with the per-stage feature maps and the pooled features.
* Module names ``conv_1_3x3``, ``bn_1``, ``stage_{i}``, ``conv_a``/``bn_a``/``conv_b``/``bn_b``.
* Depth as a parameter: n = (depth - 2) // 6 blocks per stage.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SOURCE = {
    "repo": "G-U-N/PyCIL",
    "path": "convs/cifar_resnet.py (DownsampleA, ResNetBasicblock, CifarResNet, resnet32)",
    "commit": "87cc4110d60765dc3f64af7ef7a693efed8418ff",
}
SPEC_NOTES = (
    "option-A shortcut: strided subsample + concat with zero channels (appended)",
    "parameter-free shortcut module with a named child (downsample.avg)",
    "registered but unused module (fc) kept in the state_dict",
    "fixed-kernel avgpool2d(8) head",
    "functional relu",
    "forward returning a dict of feature maps and features",
)


class DownsampleA(nn.Module):
    """Option A: subsample by 2 and double the channels with zeros."""

    def __init__(self, n_in: int, n_out: int, stride: int) -> None:
        super().__init__()
        if stride != 2:
            raise ValueError("DownsampleA needs stride 2")
        self.avg = nn.AvgPool2d(kernel_size=1, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        kept = self.avg(x)
        return torch.cat((kept, kept.mul(0)), dim=1)


class ResNetBasicblock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv_a = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(planes)
        self.conv_b = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn_b = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        branch = F.relu(self.bn_a(self.conv_a(x)))
        branch = self.bn_b(self.conv_b(branch))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(residual + branch)


class CifarResNet(nn.Module):
    def __init__(self, depth: int = 32, channels: int = 3, base_width: int = 16, num_classes: int = 10):
        """``base_width`` generalises PyCIL's fixed 16 (16 gives the public network)."""
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError("depth must be 6n + 2")
        n = (depth - 2) // 6
        self.conv_1_3x3 = nn.Conv2d(channels, base_width, 3, stride=1, padding=1, bias=False)
        self.bn_1 = nn.BatchNorm2d(base_width)
        inplanes = base_width
        for i, (mult, stride) in enumerate([(1, 1), (2, 2), (4, 2)]):
            planes = base_width * mult
            blocks = []
            for j in range(n):
                s = stride if j == 0 else 1
                ds = DownsampleA(inplanes, planes, s) if (s != 1 or inplanes != planes) else None
                blocks.append(ResNetBasicblock(inplanes, planes, s, ds))
                inplanes = planes
            setattr(self, f"stage_{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AvgPool2d(8)
        self.out_dim = 4 * base_width
        self.fc = nn.Linear(4 * base_width, num_classes)
        self._init_like_public()

    def _init_like_public(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def feature_maps(self, x: Tensor) -> list[Tensor]:
        y = F.relu(self.bn_1(self.conv_1_3x3(x)))
        x1 = self.stage_1(y)
        x2 = self.stage_2(x1)
        x3 = self.stage_3(x2)
        return [x1, x2, x3]

    def forward_features(self, x: Tensor) -> Tensor:
        return self.forward(x)["features"]

    def forward(self, x: Tensor) -> dict:
        fmaps = self.feature_maps(x)
        pooled = self.avgpool(fmaps[-1])
        return {"fmaps": fmaps, "features": pooled.view(pooled.size(0), -1)}


def resnet32() -> CifarResNet:
    return CifarResNet(32)


def make(depth: int = 14, channels: int = 3, base_width: int = 16, num_classes: int = 10) -> CifarResNet:
    """Small default (depth 14: two blocks per stage); ``make(depth=32)`` is the public ResNet-32."""
    return CifarResNet(depth, channels, base_width, num_classes)


# ---------------------------------------------------------------------------------------------
# HAT variant (no public counterpart: the HAT scheme applied to this network)
# ---------------------------------------------------------------------------------------------


def hat_layers(model: CifarResNet) -> dict[str, nn.Conv2d]:
    """HAT-masked layers ('/' module paths, data-flow order): the stem conv, then each block's
    conv_a and conv_b. The option-A shortcut has no layer."""
    out = {"conv_1_3x3": model.conv_1_3x3}
    for i in range(1, 4):
        for j, block in enumerate(getattr(model, f"stage_{i}")):
            out[f"stage_{i}/{j}/conv_a"] = block.conv_a
            out[f"stage_{i}/{j}/conv_b"] = block.conv_b
    return out


def hat_forward_features(model: CifarResNet, x: Tensor, mask: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """The pooled features with HAT unit masks (after each batch norm; for conv_b after the
    residual sum), before the ReLU; and the activations after each masked ReLU."""
    acts: dict[str, Tensor] = {}

    def act(h: Tensor, name: str) -> Tensor:
        acts[name] = F.relu(h * mask[name].view(1, -1, 1, 1))
        return acts[name]

    y = act(model.bn_1(model.conv_1_3x3(x)), "conv_1_3x3")
    for i in range(1, 4):
        for j, block in enumerate(getattr(model, f"stage_{i}")):
            name = f"stage_{i}/{j}"
            branch = act(block.bn_a(block.conv_a(y)), f"{name}/conv_a")
            branch = block.bn_b(block.conv_b(branch))
            residual = y if block.downsample is None else block.downsample(y)
            y = act(residual + branch, f"{name}/conv_b")
    pooled = model.avgpool(y)
    return pooled.view(pooled.size(0), -1), acts


__all__ = ["DownsampleA", "ResNetBasicblock", "CifarResNet", "resnet32", "make", "hat_layers", "hat_forward_features",
           "SOURCE", "SPEC_NOTES"]
