"""SE-ResNet-18 (moskomule/senet.pytorch), in plain PyTorch, with the classification head optional.

Source of the facts: moskomule/senet.pytorch, ``senet/se_resnet.py`` (``se_resnet18``: torchvision's
``ResNet(SEBasicBlock, [2, 2, 2, 2])``; ``SEBasicBlock``) and ``senet/se_module.py`` (``SELayer``).
Written from those facts, not copied.

* ``SELayer(channel, reduction=16)``: ``avg_pool`` AdaptiveAvgPool2d(1); ``fc`` nn.Sequential of
  Linear(c, c // r, bias=False), ReLU(inplace=True), Linear(c // r, c, bias=False), Sigmoid();
  forward ``x * fc(avg_pool(x).view(b, c)).view(b, c, 1, 1)`` (``expand_as`` in the public code:
  the same broadcast product).
* ``SEBasicBlock(inplanes, planes, stride, downsample, reduction)``: registers conv1 (3x3, stride s,
  no bias), bn1, relu (one ReLU(inplace=True), used twice), conv2 (3x3, no bias), bn2, se, downsample;
  forward conv1 -> bn1 -> relu -> conv2 -> bn2 -> se -> + residual (downsample(x) when present) -> relu.
* The network is torchvision's ResNet skeleton: conv1 7x7/2 (no bias) -> bn1 -> relu -> maxpool
  3/2 pad 1; layer1..layer4 of two blocks (widths w, 2w, 4w, 8w; first-block strides 1, 2, 2, 2);
  downsample = Sequential(1x1 conv stride s no bias, BatchNorm2d) when the stride or width changes;
  avgpool AdaptiveAvgPool2d((1, 1)), flatten, fc.

Widths and the reduction are parameters here for fast tests (the public sizes: width 64, reduction 16).

Spec notes:

* the SE layer's product with the stream: a gate branch joined by mul (it reads the stream at bn2);
* fc is an nn.Sequential with numeric children (se.fc.0, se.fc.2): the module list fc[0] ..
  fc[3] gives the same keys;
* one ReLU module per block used twice; projection shortcut downsample = Sequential(conv1x1, batch norm).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

SOURCE = {
    "repo": "moskomule/senet.pytorch",
    "path": "senet/se_resnet.py (SEBasicBlock, se_resnet18), senet/se_module.py (SELayer)",
    "commit": "8cb2669fec6fa344481726f9199aa611f08c3fbd",
}
SPEC_NOTES = (
    "channel-wise gate (squeeze-excitation): mul with a gate branch read from the stream",
    "numeric child names of an nn.Sequential written as a module list fc[0]..fc[3]",
    "one activation module called at two points (shared relu per block)",
    "projection shortcut = Sequential(conv1x1, batchnorm2d) named downsample",
)


class SELayer(nn.Module):
    def __init__(self, channel: int, reduction: int = 16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(channel, channel // reduction, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(channel // reduction, channel, bias=False), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        scale = self.fc(self.avg_pool(x).view(b, c)).view(b, c, 1, 1)
        return x * scale.expand_as(x)


class SEBasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 reduction: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SELayer(planes, reduction)
        self.downsample = downsample

    def forward_with(self, x: Tensor, acts: dict, prefix: str) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        acts[f"{prefix}/conv1"] = out
        out = self.se(self.bn2(self.conv2(out)))
        out = self.relu(out + residual)
        acts[f"{prefix}/conv2"] = out
        return out

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with(x, {}, "")


class SEResNet18(nn.Module):
    def __init__(self, num_classes: int | None = None, in_channels: int = 3, width: int = 64, reduction: int = 16):
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
                ds = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))
            first = SEBasicBlock(inplanes, planes, stride, ds, reduction)
            inplanes = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(first, SEBasicBlock(planes, planes, reduction=reduction)))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        if num_classes is not None:
            self.fc = nn.Linear(8 * width, num_classes)

    def features_and_activations(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        acts: dict[str, Tensor] = {}
        x = self.relu(self.bn1(self.conv1(x)))
        acts["conv1"] = x
        x = self.maxpool(x)
        for i in range(1, 5):
            for j, block in enumerate(getattr(self, f"layer{i}")):
                x = block.forward_with(x, acts, f"layer{i}/{j}")
        return torch.flatten(self.avgpool(x), 1), acts

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features_and_activations(x)[0]

    def forward(self, x: Tensor) -> Tensor:
        f = self.forward_features(x)
        return self.fc(f) if hasattr(self, "fc") else f


def make(num_classes: int | None = None, in_channels: int = 3, width: int = 8, reduction: int = 4) -> SEResNet18:
    """Small default (width 8, reduction 4: two gate units in layer1); the public sizes are
    ``make(width=64, reduction=16, num_classes=1000)``."""
    return SEResNet18(num_classes=num_classes, in_channels=in_channels, width=width, reduction=reduction)


def hat_layers(model: SEResNet18) -> dict[str, nn.Module]:
    """The weighted layers ('/' paths, in order): conv1; per block conv1, conv2, then the SE layer's
    two linears se/fc/0 and se/fc/2 (their units are the gate's); downsample is not one."""
    out: dict[str, nn.Module] = {"conv1": model.conv1}
    for i in range(1, 5):
        for j, block in enumerate(getattr(model, f"layer{i}")):
            out[f"layer{i}/{j}/conv1"] = block.conv1
            out[f"layer{i}/{j}/conv2"] = block.conv2
            out[f"layer{i}/{j}/se/fc/0"] = block.se.fc[0]
            out[f"layer{i}/{j}/se/fc/2"] = block.se.fc[2]
    return out


def wsn_layers(model: SEResNet18) -> dict[str, nn.Module]:
    """WSN-masked layers: every conv and linear, in order: hat_layers' with each block's downsample
    projection after its SE linears (declared after them, as the public block registers it)."""
    out: dict[str, nn.Module] = {}
    for name, module in hat_layers(model).items():
        out[name] = module
        if name.endswith("/se/fc/2"):
            stage, j = name.split("/")[:2]
            block = getattr(model, stage)[int(j)]
            if block.downsample is not None:
                out[f"{stage}/{j}/downsample/0"] = block.downsample[0]
    return out


def wsn_forward_features(model: SEResNet18, x: Tensor, weight_mask: dict[str, Tensor]):
    """Features and activations with every WSN layer's weight multiplied by its mask (no layer here
    has a bias)."""
    names = {module: name for name, module in model.named_modules()}
    params = dict(model.named_parameters())
    for layer, module in wsn_layers(model).items():
        params[f"{names[module]}.weight"] = module.weight * weight_mask[layer].view_as(module.weight)
    return _masked(model, params, x)


def _masked(model: SEResNet18, params: dict, x: Tensor):
    from torch.func import functional_call

    class _Features(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner.features_and_activations(x)

    wrapped = _Features(model)
    return functional_call(wrapped, {f"inner.{k}": v for k, v in params.items()}, (x,))


def plain_forward_with_activations(model: SEResNet18, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    return model.features_and_activations(x)


__all__ = ["SELayer", "SEBasicBlock", "SEResNet18", "make", "hat_layers", "wsn_layers", "wsn_forward_features",
           "plain_forward_with_activations", "SOURCE", "SPEC_NOTES"]
