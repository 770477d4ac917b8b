"""EfficientNet-B0 in torchvision's layout, in plain PyTorch, with the last linear optional.

Source of the facts: pytorch/vision, ``torchvision/models/efficientnet.py`` (``efficientnet_b0``,
``_efficientnet_conf``, ``EfficientNet``, ``MBConv``, ``MBConvConfig``), ``torchvision/ops/misc.py``
(``Conv2dNormActivation``, ``SqueezeExcitation``) and ``torchvision/ops/stochastic_depth.py``.
Written from those facts, not copied (torchvision does not import here).

* ``Conv2dNormActivation``: nn.Sequential of Conv2d(padding (k - 1) // 2, bias=False) (``0``),
  BatchNorm2d with torch's defaults for B0 (``1``), and the activation, SiLU(inplace=True) (``2``),
  unless None.
* ``MBConv(cnf, stochastic_depth_prob)``: ``block`` = Sequential of [expand 1x1 to
  expanded = _make_divisible(input * expand_ratio, 8) when that differs from input], depthwise k x k
  (stride, groups = expanded), SqueezeExcitation(expanded, max(1, input // 4), activation SiLU,
  scale Sigmoid), project 1x1 (no activation); ``stochastic_depth`` = StochasticDepth(p, "row");
  forward: block(x), and when stride == 1 and input == out: stochastic_depth(result) + x (in place).
* StochasticDepth(p, "row"), training only and p > 0: multiply each sample by a Bernoulli(1 - p)
  draw divided by 1 - p.
* ``EfficientNet``: features = [stem Conv2dNormActivation(3, 32, 3, stride 2, SiLU)] + one
  nn.Sequential of MBConvs per table row (num_layers blocks; after the first: input = out, stride 1;
  block b of 16 gets p = 0.2 * b / 16) + [Conv2dNormActivation(320, 1280, 1, SiLU)]; avgpool
  AdaptiveAvgPool2d(1); flatten; classifier = Sequential(Dropout(0.2, inplace=True), Linear(1280, n)).
* B0's table (expand_ratio, kernel, stride, input, out, num_layers): (1,3,1,32,16,1) (6,3,2,16,24,2)
  (6,5,2,24,40,2) (6,3,2,40,80,3) (6,5,1,80,112,3) (6,5,2,112,192,4) (6,3,1,192,320,1).
* init: conv kaiming_normal_(fan_out), bias 0; batch norm 1, 0; linear U(-1/sqrt(out), 1/sqrt(out)), bias 0.

``forward_features`` is the backbone's output: the dropout's output, what ``classifier.1`` reads
(``num_classes=None`` leaves that linear out). ``make()`` is a small network (``TINY``: stem 8, three
stages) for fast tests; the public sizes are ``EfficientNetB0(setting=B0)``.

Spec notes:

* a stage is an nn.Sequential of blocks in the nn.Sequential ``features``: a block ``mb_stage`` with a
  module list ``layers`` in the spec (a key segment more), Conv2dNormActivation's numbered children
  named conv/bn;
* stochastic depth (StochasticDepth before the residual add, in training) has no spec operation;
* the table of tuples is five int lists; squeeze channels max(1, input // 4); _make_divisible as an
  expression; squeeze-excitation joined by mul; guarded residual add.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

SOURCE = {
    "repo": "pytorch/vision",
    "path": "torchvision/models/efficientnet.py (efficientnet_b0), torchvision/ops",
    "commit": "07a929e8b851242b1c75c9016ee06a8e502961d8",
}
SPEC_NOTES = (
    "stages as a block with a module list (a key segment renamed away)",
    "numeric children of Conv2dNormActivation renamed conv/bn",
    "no stochastic depth: train mode equal at stochastic_depth_prob 0",
    "squeeze-excitation gate of 1x1 convs joined by mul",
    "guarded residual add",
)

# (expand_ratio, kernel, stride, input, out, num_layers)
B0 = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
      (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]
# a small table: a stage without expansion and with residuals, an expanding strided stage whose
# second block is residual, one that widens at stride 1
TINY = [(1, 3, 1, 8, 8, 2), (6, 5, 2, 8, 16, 2), (3, 3, 1, 16, 24, 1)]


def make_divisible(v: float, divisor: int = 8) -> int:
    """The nearest multiple of `divisor` (at least `divisor`), one step up when rounding down lost
    more than 10% (torchvision's _make_divisible)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def conv_norm_act(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                  activation: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if activation:
        layers.append(nn.SiLU(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.SiLU(inplace=True)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x))))) * x


class StochasticDepth(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        noise = torch.empty([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        if keep > 0.0:
            noise.div_(keep)
        return x * noise


class MBConv(nn.Module):
    def __init__(self, expand_ratio: int, kernel: int, stride: int, cin: int, out: int, sd_prob: float):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == out
        expanded = make_divisible(cin * expand_ratio, 8)
        layers: list[nn.Module] = []
        if expanded != cin:
            layers.append(conv_norm_act(cin, expanded, 1))
        layers.append(conv_norm_act(expanded, expanded, kernel, stride=stride, groups=expanded))
        layers.append(SqueezeExcitation(expanded, max(1, cin // 4)))
        layers.append(conv_norm_act(expanded, out, 1, activation=False))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(sd_prob)

    def forward(self, x: Tensor) -> Tensor:
        result = self.block(x)
        if self.use_res_connect:
            result = self.stochastic_depth(result)
            result += x
        return result


class EfficientNetB0(nn.Module):
    def __init__(self, num_classes: int | None = 1000, setting=B0, dropout: float = 0.2,
                 stochastic_depth_prob: float = 0.2, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [conv_norm_act(in_channels, setting[0][3], 3, stride=2)]
        total = sum(row[5] for row in setting)
        b = 0
        for ratio, kernel, stride, cin, out, n in setting:
            stage = []
            for j in range(n):
                stage.append(MBConv(ratio, kernel, stride if j == 0 else 1, cin if j == 0 else out, out,
                                    stochastic_depth_prob * float(b) / total))
                b += 1
            layers.append(nn.Sequential(*stage))
        last_in = setting[-1][4]
        layers.append(conv_norm_act(last_in, 4 * last_in, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        head: list[nn.Module] = [nn.Dropout(p=dropout, inplace=True)]
        if num_classes is not None:
            head.append(nn.Linear(4 * last_in, num_classes))
        self.classifier = nn.Sequential(*head)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                r = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -r, r)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.classifier[0](torch.flatten(self.avgpool(self.features(x)), 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def make(num_classes: int | None = None, setting=TINY, dropout: float = 0.2, stochastic_depth_prob: float = 0.2,
         in_channels: int = 3) -> EfficientNetB0:
    """A small network (TINY) without its last linear, unless num_classes is given; torchvision's
    efficientnet_b0 is ``make(num_classes=1000, setting=B0)``."""
    return EfficientNetB0(num_classes=num_classes, setting=setting, dropout=dropout,
                          stochastic_depth_prob=stochastic_depth_prob, in_channels=in_channels)


__all__ = ["EfficientNetB0", "MBConv", "SqueezeExcitation", "StochasticDepth", "conv_norm_act", "make_divisible", "make",
           "B0", "TINY", "SOURCE", "SPEC_NOTES"]
