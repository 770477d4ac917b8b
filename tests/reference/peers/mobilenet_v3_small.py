"""MobileNetV3-Small in torchvision's layout, in plain PyTorch, with the last linear optional.

Source of the facts: pytorch/vision, ``torchvision/models/mobilenetv3.py`` (``mobilenet_v3_small``,
``_mobilenet_v3_conf``, ``MobileNetV3``, ``InvertedResidual``, ``InvertedResidualConfig``) and
``torchvision/ops/misc.py`` (``Conv2dNormActivation``, ``SqueezeExcitation``); ``_make_divisible``
from ``torchvision/models/_utils.py``. Written from those facts, not copied (torchvision does not
import here).

* ``Conv2dNormActivation(in, out, k, stride, groups, norm_layer, activation_layer)``: an nn.Sequential
  of Conv2d(in, out, k, stride, padding (k - 1) // 2, groups, bias=False) (``0``), the norm (``1``)
  and, unless the activation is None, the activation with inplace=True (``2``).
* norm_layer = BatchNorm2d(eps=0.001, momentum=0.01).
* ``SqueezeExcitation(input_channels, squeeze_channels, activation=ReLU, scale_activation)``:
  registers avgpool (AdaptiveAvgPool2d(1)), fc1 (1x1 conv with bias), fc2 (1x1 conv with bias),
  activation, scale_activation; forward ``scale_activation(fc2(activation(fc1(avgpool(x))))) * x``.
  MobileNetV3 passes scale_activation=Hardsigmoid and squeeze = _make_divisible(expanded // 4, 8).
* ``InvertedResidual``: ``block`` = nn.Sequential of [expand 1x1 (when expanded != input)], depthwise
  k x k (stride, groups = expanded), [SE], project 1x1 (no activation); activation Hardswish for "HS"
  rows, ReLU for "RE"; ``result += input`` when stride == 1 and input == out.
* ``MobileNetV3``: ``features`` = nn.Sequential(stem Conv2dNormActivation(3, 16, 3, stride 2,
  Hardswish), the 11 blocks, Conv2dNormActivation(96, 576, 1, Hardswish)); ``avgpool``
  AdaptiveAvgPool2d(1); flatten; ``classifier`` = Sequential(Linear(576, 1024), Hardswish(inplace),
  Dropout(0.2, inplace), Linear(1024, num_classes)).
* The small table (input, kernel, expanded, out, use_se, activation, stride):
  (16,3,16,16,SE,RE,2) (16,3,72,24,-,RE,2) (24,3,88,24,-,RE,1) (24,5,96,40,SE,HS,2)
  (40,5,240,40,SE,HS,1) x2 (40,5,120,48,SE,HS,1) (48,5,144,48,SE,HS,1) (48,5,288,96,SE,HS,2)
  (96,5,576,96,SE,HS,1) x2; last_channel 1024.
* init: conv kaiming_normal_(fan_out), conv bias 0; batch norm weight 1, bias 0; linear N(0, 0.01), bias 0.

``forward_features`` is the backbone's output: the dropout's output, what the last linear
``classifier.3`` reads (``num_classes=None`` leaves that linear out). ``make()`` is a small network
(``TINY``: every block shape, stem 8, last_channel 32) for fast tests; the public sizes are
``MobileNetV3Small(setting=SMALL)``.

Spec notes:

* torchvision's table is a list of tuples with a str per row: six int lists in the spec;
* Conv2dNormActivation's children are numbered (0 conv, 1 norm, 2 activation): a spec block names
  them (conv, bn, act), a rename of two key segments;
* optional expansion and squeeze-excitation shift the indices of ``block``: computed module-list
  indices;
* the squeeze-excitation multiplies the stream by a gate of 1x1 convs (mul with a gate branch);
* ``_make_divisible`` is an expression; the residual add is guarded by stride and width.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

SOURCE = {
    "repo": "pytorch/vision",
    "path": "torchvision/models/mobilenetv3.py (mobilenet_v3_small), torchvision/ops/misc.py",
    "commit": "07a929e8b851242b1c75c9016ee06a8e502961d8",
}
SPEC_NOTES = (
    "a table of tuples as parallel int lists",
    "numeric children of Conv2dNormActivation renamed conv/bn",
    "computed module-list indices for optional layers",
    "squeeze-excitation gate of 1x1 convs joined by mul",
    "guarded residual add",
)

# (input, kernel, expanded, out, use_se, use_hs, stride): torchvision's small table, width_mult 1.0
SMALL = [
    (16, 3, 16, 16, True, False, 2),
    (16, 3, 72, 24, False, False, 2),
    (24, 3, 88, 24, False, False, 1),
    (24, 5, 96, 40, True, True, 2),
    (40, 5, 240, 40, True, True, 1),
    (40, 5, 240, 40, True, True, 1),
    (40, 5, 120, 48, True, True, 1),
    (48, 5, 144, 48, True, True, 1),
    (48, 5, 288, 96, True, True, 2),
    (96, 5, 576, 96, True, True, 1),
    (96, 5, 576, 96, True, True, 1),
]
# a small table reaching every block shape (no expansion, no SE, ReLU/Hardswish, residual or not)
TINY = [
    (8, 3, 8, 8, False, False, 1),
    (8, 3, 12, 8, True, False, 1),
    (8, 5, 44, 16, True, True, 2),
    (16, 3, 40, 16, True, True, 1),
    (16, 3, 16, 24, True, True, 2),
    (24, 5, 24, 24, False, True, 1),
]


def make_divisible(v: float, divisor: int = 8) -> int:
    """The nearest multiple of `divisor` (at least `divisor`), raised by one step when rounding
    down lost more than 10%."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def init_weights(model: nn.Module, linear_init) -> None:
    """torchvision's init of its mobile nets: conv kaiming_normal_(fan_out), conv bias 0; batch norm
    1, 0; linear weight by `linear_init`, bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            linear_init(m.weight)
            nn.init.zeros_(m.bias)


def _norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=0.001, momentum=0.01)


def conv_norm_act(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                  activation: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2, groups=groups, bias=False),
              _norm(cout)]
    if activation is not None:
        layers.append(activation(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, kernel: int, expanded: int, out: int, use_se: bool, use_hs: bool, stride: int):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == out
        act = nn.Hardswish if use_hs else nn.ReLU
        layers: list[nn.Module] = []
        if expanded != cin:
            layers.append(conv_norm_act(cin, expanded, 1, activation=act))
        layers.append(conv_norm_act(expanded, expanded, kernel, stride=stride, groups=expanded, activation=act))
        if use_se:
            layers.append(SqueezeExcitation(expanded, make_divisible(expanded // 4, 8)))
        layers.append(conv_norm_act(expanded, out, 1, activation=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        result = self.block(x)
        if self.use_res_connect:
            result += x
        return result


class MobileNetV3Small(nn.Module):
    def __init__(self, num_classes: int | None = 1000, in_channels: int = 3, setting=SMALL,
                 last_channel: int = 1024, dropout: float = 0.2):
        super().__init__()
        layers: list[nn.Module] = [conv_norm_act(in_channels, setting[0][0], 3, stride=2, activation=nn.Hardswish)]
        layers += [InvertedResidual(*row) for row in setting]
        last_in = setting[-1][3]
        layers.append(conv_norm_act(last_in, 6 * last_in, 1, activation=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        head: list[nn.Module] = [nn.Linear(6 * last_in, last_channel), nn.Hardswish(inplace=True),
                                 nn.Dropout(p=dropout, inplace=True)]
        if num_classes is not None:
            head.append(nn.Linear(last_channel, num_classes))
        self.classifier = nn.Sequential(*head)
        init_weights(self, lambda w: nn.init.normal_(w, 0, 0.01))

    def forward_features(self, x: Tensor) -> Tensor:
        return self.classifier[:3](torch.flatten(self.avgpool(self.features(x)), 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def make(num_classes: int | None = None, setting=TINY, last_channel: int = 32, dropout: float = 0.2,
         in_channels: int = 3) -> MobileNetV3Small:
    """A small network (TINY, last_channel 32) without its last linear, unless num_classes is given;
    torchvision's mobilenet_v3_small is ``make(num_classes=1000, setting=SMALL, last_channel=1024)``."""
    return MobileNetV3Small(num_classes=num_classes, in_channels=in_channels, setting=setting,
                            last_channel=last_channel, dropout=dropout)


__all__ = ["MobileNetV3Small", "InvertedResidual", "SqueezeExcitation", "conv_norm_act", "make_divisible", "init_weights",
           "make", "SMALL", "TINY", "SOURCE", "SPEC_NOTES"]
