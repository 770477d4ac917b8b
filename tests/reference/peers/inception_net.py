"""A small Inception (GoogLeNet-style) network following torchvision's GoogLeNet, in plain PyTorch.

Source of the facts: pytorch/vision, ``torchvision/models/googlenet.py`` (read at commit
0413037ab4328016a046123834001341eb3cb715): ``BasicConv2d``, ``Inception`` and the first stages of
``GoogLeNet`` (conv1 .. inception4a) with ``aux_logits=False`` (no ``aux1`` / ``aux2`` modules).
The channel configuration of each Inception block is torchvision's divided by ``width_div``
(1 reproduces torchvision's widths; the default of ``make`` is 8). The network stops after
``inception4a`` (torchvision continues with 4b..4e, maxpool4, 5a, 5b), then pools and classifies.

Structure:

* ``BasicConv2d(cin, cout, **conv_kwargs)``: ``conv`` Conv2d(bias=False) -> ``bn`` BatchNorm2d(cout,
  eps=0.001) -> functional ReLU (no module).
* stem: ``conv1`` BasicConv2d(in, 64/d, kernel 7, stride 2, padding 3) -> ``maxpool1``
  MaxPool2d(3, stride 2, ceil_mode=True) -> ``conv2`` BasicConv2d(1x1) -> ``conv3`` BasicConv2d(3x3,
  padding 1, -> 192/d) -> ``maxpool2`` MaxPool2d(3, stride 2, ceil_mode=True).
* ``Inception(in, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)``, four parallel branches on the
  SAME input, concatenated on channels in the order branch1, branch2, branch3, branch4:
  ``branch1`` = BasicConv2d 1x1 -> ch1x1; ``branch2`` = nn.Sequential(BasicConv2d 1x1 -> ch3x3red,
  BasicConv2d 3x3 padding 1 -> ch3x3); ``branch3`` = nn.Sequential(BasicConv2d 1x1 -> ch5x5red,
  BasicConv2d k x k padding k//2 -> ch5x5) where torchvision uses k = 3 (a documented deviation from
  the paper's 5x5, kept for its pretrained weights; ``branch3_kernel=5`` gives the paper's block);
  ``branch4`` = nn.Sequential(MaxPool2d(3, stride 1, padding 1, ceil_mode=True), BasicConv2d 1x1 ->
  pool_proj). Output channels: ch1x1 + ch3x3 + ch5x5 + pool_proj.
* ``inception3a`` (192, 64, 96, 128, 16, 32, 32)/d, ``inception3b`` (256, 128, 128, 192, 32, 96, 64)/d,
  ``maxpool3`` MaxPool2d(3, stride 2, ceil_mode=True), ``inception4a`` (480, 192, 96, 208, 16, 48, 64)/d.
* head: ``avgpool`` AdaptiveAvgPool2d((1, 1)), flatten, ``dropout`` Dropout(0.2), ``fc``
  Linear(512/d, num_classes) — optional here (``num_classes=None``: no fc; forward returns the
  flattened pooled features before the dropout).

With a 32x32 input the maps are 16 (conv1), 8 (maxpool1, ceil), 4 (maxpool2, ceil), 2 (maxpool3,
ceil); floor mode would give 7, 3, 1.

Registration order: conv1, maxpool1, conv2, conv3, maxpool2, inception3a, inception3b, maxpool3,
inception4a, avgpool, dropout, fc; Inception: branch1..branch4; BasicConv2d: conv, bn.

Spec notes:

* Parallel branches from one input concatenated on channels (a 4-way concat with unit maps; each
  slice's units owned by the last conv of its branch).
* ``maxpool2d(..., ceil_mode=true)`` (stride-2 pools) and a stride-1 padded max pool as the first
  element of a branch Sequential (``branch4.0``; its conv is ``branch4.1``).
* Batch-norm eps option (0.001); functional ReLU inside a conv-bn unit (``BasicConv2d``), i.e. a
  reusable block with named children ``conv`` / ``bn``.
* Branch Sequentials with positional keys (``branch2.0.conv.weight``, ``branch2.1.bn.bias``).
* 5x5 (or 3x3) convs with padding k//2; dropout before an optional fc head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SOURCE = {
    "repo": "pytorch/vision",
    "path": "torchvision/models/googlenet.py (BasicConv2d, Inception, GoogLeNet up to inception4a)",
    "commit": "0413037ab4328016a046123834001341eb3cb715",
}
SPEC_NOTES = (
    "parallel branches concatenated on channels (4-way concat, unit maps)",
    "maxpool2d ceil_mode=true; padded stride-1 max pool inside a branch",
    "batchnorm eps option (0.001)",
    "reusable conv-bn-relu unit with named children conv / bn and functional relu",
    "branch Sequentials with positional keys",
    "dropout before an optional head",
)

# torchvision's Inception configurations (in, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)
_CONFIG_3A = (192, 64, 96, 128, 16, 32, 32)
_CONFIG_3B = (256, 128, 128, 192, 32, 96, 64)
_CONFIG_4A = (480, 192, 96, 208, 16, 48, 64)


class BasicConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int, branch3_kernel: int = 3) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=branch3_kernel, padding=branch3_kernel // 2),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionNet(nn.Module):
    def __init__(self, num_classes: int | None = None, in_channels: int = 3, width_div: int = 1,
                 branch3_kernel: int = 3) -> None:
        super().__init__()
        d = width_div

        def scaled(cfg):
            if any(c % d for c in cfg):
                raise ValueError(f"width_div {d} does not divide {cfg}")
            return tuple(c // d for c in cfg)

        self.conv1 = BasicConv2d(in_channels, 64 // d, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64 // d, 64 // d, kernel_size=1)
        self.conv3 = BasicConv2d(64 // d, 192 // d, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(*scaled(_CONFIG_3A), branch3_kernel=branch3_kernel)
        self.inception3b = Inception(*scaled(_CONFIG_3B), branch3_kernel=branch3_kernel)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(*scaled(_CONFIG_4A), branch3_kernel=branch3_kernel)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.2)
        self.feature_dim = self.inception4a.out_channels
        if num_classes is not None:
            self.fc = nn.Linear(self.feature_dim, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: Tensor) -> Tensor:
        f = self.forward_features(x)
        if not hasattr(self, "fc"):
            return f
        return self.fc(self.dropout(f))


def make(num_classes: int | None = None, in_channels: int = 3, width_div: int = 8,
         branch3_kernel: int = 5) -> InceptionNet:
    """Small default: torchvision's widths / 8 and the paper's 5x5 third branch."""
    return InceptionNet(num_classes, in_channels, width_div, branch3_kernel)


# ---------------------------------------------------------------------------------------------
# HAT variant (no public counterpart: the HAT scheme applied to this network)
# ---------------------------------------------------------------------------------------------

_BLOCKS = ("inception3a", "inception3b", "inception4a")


def _branch_convs(block: Inception) -> list[tuple[str, BasicConv2d]]:
    """(path inside the block, unit) of every BasicConv2d of an Inception block, branch by branch."""
    return [("branch1", block.branch1), ("branch2/0", block.branch2[0]), ("branch2/1", block.branch2[1]),
            ("branch3/0", block.branch3[0]), ("branch3/1", block.branch3[1]), ("branch4/1", block.branch4[1])]


def hat_layers(model: InceptionNet) -> dict[str, nn.Conv2d]:
    """HAT-masked layers ('/' module paths of the convs): the stem's conv1, conv2, conv3, then per
    Inception block its branches in concatenation order, each branch's convs in order."""
    out = {f"{n}/conv": getattr(model, n).conv for n in ("conv1", "conv2", "conv3")}
    for b in _BLOCKS:
        for path, unit in _branch_convs(getattr(model, b)):
            out[f"{b}/{path}/conv"] = unit.conv
    return out


def hat_sources(model: InceptionNet) -> dict[str, list[str] | None]:
    """For each masked layer, the layers whose units its inputs carry, in input-channel order (None:
    the network input). A branch's first conv (and branch4's conv, after its max pool) reads the
    block input: the stem's conv3, or the previous block's concatenation (the last conv of each of
    its branches, in order)."""
    out: dict[str, list[str] | None] = {"conv1/conv": None, "conv2/conv": ["conv1/conv"], "conv3/conv": ["conv2/conv"]}
    block_input = ["conv3/conv"]
    for b in _BLOCKS:
        for first in ("branch1", "branch2/0", "branch3/0", "branch4/1"):
            out[f"{b}/{first}/conv"] = block_input
        out[f"{b}/branch2/1/conv"] = [f"{b}/branch2/0/conv"]
        out[f"{b}/branch3/1/conv"] = [f"{b}/branch3/0/conv"]
        block_input = [f"{b}/{last}/conv" for last in ("branch1", "branch2/1", "branch3/1", "branch4/1")]
    return out


def hat_forward_features(model: InceptionNet, x: Tensor, mask: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """The pooled features with each BasicConv2d's unit mask after its batch norm, before its ReLU;
    and the activations after each masked ReLU, keyed by the conv's path."""
    acts: dict[str, Tensor] = {}

    def unit(u: BasicConv2d, h: Tensor, name: str) -> Tensor:
        acts[name] = F.relu(u.bn(u.conv(h)) * mask[name].view(1, -1, 1, 1))
        return acts[name]

    def inception(b: str, h: Tensor) -> Tensor:
        block = getattr(model, b)
        y1 = unit(block.branch1, h, f"{b}/branch1/conv")
        y2 = unit(block.branch2[1], unit(block.branch2[0], h, f"{b}/branch2/0/conv"), f"{b}/branch2/1/conv")
        y3 = unit(block.branch3[1], unit(block.branch3[0], h, f"{b}/branch3/0/conv"), f"{b}/branch3/1/conv")
        y4 = unit(block.branch4[1], block.branch4[0](h), f"{b}/branch4/1/conv")
        return torch.cat([y1, y2, y3, y4], 1)

    h = model.maxpool1(unit(model.conv1, x, "conv1/conv"))
    h = model.maxpool2(unit(model.conv3, unit(model.conv2, h, "conv2/conv"), "conv3/conv"))
    h = model.maxpool3(inception("inception3b", inception("inception3a", h)))
    h = inception("inception4a", h)
    return torch.flatten(model.avgpool(h), 1), acts


__all__ = ["BasicConv2d", "Inception", "InceptionNet", "make", "hat_layers", "hat_sources", "hat_forward_features",
           "SOURCE", "SPEC_NOTES"]
