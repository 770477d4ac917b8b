"""A small DenseNet-BC following torchvision's DenseNet, in plain PyTorch.

Source of the facts: pytorch/vision, ``torchvision/models/densenet.py`` (read at commit
01db3ba5cd088d1809b3a4821dc924594a275286; later releases turn ``_DenseBlock`` into an nn.ModuleDict
and ``_DenseLayer`` into an nn.Module taking the list of previous features, which gives the same
module names, the same state_dict keys and the same values): ``_DenseLayer``, ``_DenseBlock``,
``_Transition``, ``DenseNet``. Defaults here are tiny (growth 4, two blocks of 2 layers); torchvision's
densenet121 is growth 32, blocks (6, 12, 24, 16), 64 initial features, bn_size 4.

Structure:

* ``features`` nn.Sequential with named children:
  ``conv0`` 7x7 conv (in_channels -> num_init_features, stride 2, padding 3, no bias), ``norm0``
  BatchNorm2d, ``relu0`` ReLU(inplace=True), ``pool0`` MaxPool2d(3, stride 2, padding 1); then
  ``denseblock1``, ``transition1``, ``denseblock2``, ... (no transition after the last block), then
  ``norm5`` BatchNorm2d (the name is ``norm5`` whatever the number of blocks).
* ``denseblock{i}`` holds ``denselayer{j}`` (1-based). Layer j of a block with c0 input channels sees
  c0 + (j-1)*growth channels: the CONCATENATION (on channels) of the block input and every earlier
  layer's output, in order. The block's output is the concatenation of its input and all its layers'
  outputs: c0 + L*growth channels.
* ``_DenseLayer`` (pre-activation bottleneck): ``norm1`` BatchNorm2d -> ``relu1`` -> ``conv1`` 1x1
  (-> bn_size*growth, no bias) -> ``norm2`` -> ``relu2`` -> ``conv2`` 3x3 (-> growth, padding 1, no
  bias); then functional dropout (``F.dropout(p=drop_rate, training=self.training)``) only if
  drop_rate > 0 — a functional op, no module.
* ``transition{i}`` (nn.Sequential): ``norm`` BatchNorm2d -> ``relu`` -> ``conv`` 1x1 (c -> c // 2, no
  bias) -> ``pool`` AvgPool2d(kernel 2, stride 2).
* after ``features``: functional ReLU, ``adaptive_avg_pool2d((1, 1))``, flatten, then ``classifier``
  Linear(c, num_classes) — optional here (``num_classes=None``: no classifier, forward returns the
  pooled features; torchvision always has one).

Initialisation as torchvision: convs kaiming_normal_, BN weight 1 / bias 0, Linear bias 0.

Spec notes:

* Channel CONCATENATION of a growing list of feature maps (dense connectivity): every layer reads the
  concat of the block input and all earlier outputs; the block outputs the full concat. For HAT-style
  analysis the units of the concat are owned by several layers (a unit map per concat slice).
* Pre-activation ordering (bn -> relu -> conv), so a conv's output is not followed by its own BN.
* Computed module names ``denseblock{i+1}``, ``denselayer{j+1}``, ``transition{i+1}``, a fixed
  ``norm5``; modules added by name into one Sequential ``features`` (keys
  ``features.denseblock1.denselayer1.conv1.weight``).
* Transition: 1x1 conv halving channels (floor) + AvgPool2d(2, 2).
* Functional dropout inside a layer (no module), functional relu + adaptive_avg_pool2d after
  ``features``; optional classifier.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SOURCE = {
    "repo": "pytorch/vision",
    "path": "torchvision/models/densenet.py (_DenseLayer, _DenseBlock, _Transition, DenseNet)",
    "commit": "01db3ba5cd088d1809b3a4821dc924594a275286",
}
SPEC_NOTES = (
    "channel concatenation of a growing feature list (dense connectivity) with unit maps",
    "pre-activation ordering bn -> relu -> conv",
    "computed module names denseblock{i+1} / denselayer{j+1} / transition{i+1}",
    "avgpool2d(2, 2) transition",
    "functional dropout (no module), functional relu + adaptive_avg_pool2d",
    "optional head",
)


class _DenseLayer(nn.Module):
    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int, drop_rate: float) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1, stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)
        self.drop_rate = float(drop_rate)

    def forward(self, previous: list[Tensor]) -> Tensor:
        h = self.conv1(self.relu1(self.norm1(torch.cat(previous, 1))))
        h = self.conv2(self.relu2(self.norm2(h)))
        if self.drop_rate > 0:
            h = F.dropout(h, p=self.drop_rate, training=self.training)
        return h


class _DenseBlock(nn.ModuleDict):
    def __init__(self, num_layers: int, num_input_features: int, bn_size: int, growth_rate: int,
                 drop_rate: float) -> None:
        super().__init__()
        for j in range(num_layers):
            self.add_module(
                f"denselayer{j + 1}",
                _DenseLayer(num_input_features + j * growth_rate, growth_rate, bn_size, drop_rate),
            )

    def forward(self, x: Tensor) -> Tensor:
        collected = [x]
        for layer in self.values():
            collected.append(layer(collected))
        return torch.cat(collected, 1)


class _Transition(nn.Sequential):
    def __init__(self, num_input_features: int, num_output_features: int) -> None:
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(num_input_features))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module("conv", nn.Conv2d(num_input_features, num_output_features, kernel_size=1, stride=1,
                                          bias=False))
        self.add_module("pool", nn.AvgPool2d(kernel_size=2, stride=2))


class DenseNet(nn.Module):
    def __init__(self, growth_rate: int = 32, block_config=(6, 12, 24, 16), num_init_features: int = 64,
                 bn_size: int = 4, drop_rate: float = 0.0, num_classes: int | None = None,
                 in_channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv0", nn.Conv2d(in_channels, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)),
            ("norm0", nn.BatchNorm2d(num_init_features)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        ]))
        c = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}",
                                     _DenseBlock(num_layers, c, bn_size, growth_rate, drop_rate))
            c = c + num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", _Transition(c, c // 2))
                c = c // 2
        self.features.add_module("norm5", nn.BatchNorm2d(c))
        self.num_features = c
        if num_classes is not None:
            self.classifier = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        out = F.relu(self.features(x), inplace=True)
        out = F.adaptive_avg_pool2d(out, (1, 1))
        return torch.flatten(out, 1)

    def forward(self, x: Tensor) -> Tensor:
        f = self.forward_features(x)
        return self.classifier(f) if hasattr(self, "classifier") else f


def make(growth_rate: int = 4, block_config=(2, 2), num_init_features: int = 8, bn_size: int = 2,
         drop_rate: float = 0.0, num_classes: int | None = None, in_channels: int = 3) -> DenseNet:
    """Tiny default: two dense blocks of two layers, growth 4, bottleneck width 8."""
    return DenseNet(growth_rate, tuple(block_config), num_init_features, bn_size, drop_rate, num_classes,
                    in_channels)


# ---------------------------------------------------------------------------------------------
# weighted layers and their activations (for parity tests of specs of this network)
# ---------------------------------------------------------------------------------------------


def hat_layers(model: DenseNet) -> dict[str, nn.Conv2d]:
    """Every conv ('/' module paths), in data-flow order: conv0, then per dense block each layer's
    conv1 and conv2, then the transition's conv."""
    out = {"features/conv0": model.features.conv0}
    for name, child in model.features.named_children():
        if name.startswith("denseblock"):
            for lname, layer in child.items():
                out[f"features/{name}/{lname}/conv1"] = layer.conv1
                out[f"features/{name}/{lname}/conv2"] = layer.conv2
        elif name.startswith("transition"):
            out[f"features/{name}/conv"] = child.conv
    return out


def plain_forward_with_activations(model: DenseNet, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """The features and each conv's activation: conv0 after relu0; a dense layer's conv1 after
    norm2 and relu2, its conv2 as it leaves the conv (before the dropout); a transition's conv
    before the pooling."""
    acts: dict[str, Tensor] = {}
    f = model.features
    h = F.relu(f.norm0(f.conv0(x)))
    acts["features/conv0"] = h
    h = f.pool0(h)
    for name, child in f.named_children():
        if name.startswith("denseblock"):
            for lname, layer in child.items():
                a = F.relu(layer.norm2(layer.conv1(F.relu(layer.norm1(h)))))
                acts[f"features/{name}/{lname}/conv1"] = a
                new = layer.conv2(a)
                acts[f"features/{name}/{lname}/conv2"] = new
                if layer.drop_rate > 0:
                    new = F.dropout(new, p=layer.drop_rate, training=layer.training)
                h = torch.cat([h, new], 1)
        elif name.startswith("transition"):
            c = child.conv(F.relu(child.norm(h)))
            acts[f"features/{name}/conv"] = c
            h = child.pool(c)
    h = F.relu(f.norm5(h))
    return torch.flatten(F.adaptive_avg_pool2d(h, (1, 1)), 1), acts


__all__ = ["DenseNet", "make", "hat_layers", "plain_forward_with_activations", "SOURCE", "SPEC_NOTES"]
