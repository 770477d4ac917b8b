"""The WSN paper's reduced ResNet-18 (``SubnetResNet18``), PLAIN counterpart, in plain PyTorch.

Source of the facts: ihaeyong/WSN (the WSN authors' repository), ``networks/resnet18.py``:
``SubnetBasicBlock``, ``SubnetResNet``, ``SubnetResNet18(taskcla, nf=32, sparsity=0.5)`` (read at
commit f066982e6c4f89a765f2d54ef41536978a2fff0b, 2024-01-17); the training scripts build it with
nf=20. The plain counterpart replaces SubnetConv2d by nn.Conv2d of the same shape (no bias), i.e.
without the score parameters ``w_m`` and the masked forward.

Structure (3x32x32 input, hard-coded by a reshape):

* forward first reshapes the input to (batch, 3, 32, 32).
* stem: ``conv1`` 3x3 conv (3 -> nf, stride 1, padding 1, no bias) -> ``bn1`` -> ReLU (functional).
* ``layer1`` .. ``layer4``: Sequentials of 2 ``SubnetBasicBlock`` each, widths nf, 2nf, 4nf, 8nf,
  first-block strides 1, 2, 2, 2. (The public Sequential subclass only threads the mask arguments
  through; as a plain network it is an ordinary nn.Sequential with children 0 and 1.)
* block: ``conv1`` 3x3 (stride s, padding 1, no bias) -> ``bn1`` -> ReLU; ``conv2`` 3x3 (stride 1,
  padding 1, no bias) -> ``bn2``; add the shortcut; ReLU. The stride sits on conv1.
* shortcut: when the stride is not 1 or the channels change, the block has ``conv3`` 1x1 conv (stride
  s, no bias) and ``bn3`` as ATTRIBUTES OF THE BLOCK (siblings of conv1/conv2, not a Sequential),
  and adds ``bn3(conv3(x))``; otherwise it adds x.
* every batch norm (``bn1`` of the stem, ``bn1``/``bn2``/``bn3`` of the blocks) is
  BatchNorm2d(C, track_running_stats=False, affine=False): no parameters, no buffers, batch
  statistics in train AND eval mode.
* head: ``avg_pool2d(out, 2)`` (fixed kernel 2: the 4x4 map of layer4 becomes 2x2), flatten to
  8nf * 4 features; ``last`` nn.ModuleList of Linear(8nf*4, n, bias=False) per (t, n) in
  ``taskcla``; forward(x, task_id) returns ``last[task_id](features)``.

Registration order: conv1, bn1, layer1, layer2, layer3, layer4, last; in a block: conv1, bn1, conv2,
bn2, conv3, bn3. state_dict (plain): only conv weights and head weights.

Spec notes:

* ``batchnorm2d(affine=false, track_running_stats=false)`` everywhere (stateless BN).
* Shortcut projection conv + BN named ``conv3`` / ``bn3`` as siblings of the main-path layers in the
  block (no ``shortcut`` / ``downsample`` container), present only for stride != 1 or a channel change.
* Functional ReLU; functional ``avg_pool2d`` with a fixed kernel 2 (leaves a 2x2 map), flatten of
  C*2*2 features.
* Input reshape to (3, 32, 32) at the start of forward.
* Task-indexed head ModuleList ``last``, bias-free.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

SOURCE = {
    "repo": "ihaeyong/WSN",
    "path": "networks/resnet18.py (SubnetBasicBlock, SubnetResNet, SubnetResNet18; plain counterpart)",
    "commit": "f066982e6c4f89a765f2d54ef41536978a2fff0b",
}
SPEC_NOTES = (
    "batchnorm(affine=false, track_running_stats=false) everywhere",
    "shortcut conv3 / bn3 as siblings of the main-path layers (no container)",
    "avg_pool2d with fixed kernel 2 leaving a 2x2 map; flatten C*4",
    "input reshape to a fixed (3, 32, 32)",
    "task-indexed head ModuleList, bias-free",
    "functional relu",
)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, track_running_stats=False, affine=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = _bn(planes)
        self.has_shortcut = stride != 1 or in_planes != planes
        if self.has_shortcut:
            self.conv3 = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)
            self.bn3 = _bn(planes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + (self.bn3(self.conv3(x)) if self.has_shortcut else x)
        return F.relu(out)


class WSNResNet18(nn.Module):
    def __init__(self, taskcla=((0, 10),), nf: int = 32, num_blocks=(2, 2, 2, 2)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, nf, 3, stride=1, padding=1, bias=False)
        self.bn1 = _bn(nf)
        in_planes = nf
        for i, (mult, stride) in enumerate([(1, 1), (2, 2), (4, 2), (8, 2)]):
            blocks = []
            for j in range(num_blocks[i]):
                blocks.append(BasicBlock(in_planes, nf * mult, stride if j == 0 else 1))
                in_planes = nf * mult
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.taskcla = [tuple(tc) for tc in taskcla]
        self.last = nn.ModuleList(nn.Linear(nf * 8 * 4, n, bias=False) for _, n in self.taskcla)

    def forward_features(self, x: Tensor) -> Tensor:
        bsz = x.size(0)
        out = F.relu(self.bn1(self.conv1(x.reshape(bsz, 3, 32, 32))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 2)
        return out.view(out.size(0), -1)

    def forward(self, x: Tensor, task_id: int = 0) -> Tensor:
        return self.last[task_id](self.forward_features(x))


def SubnetResNet18(taskcla, nf: int = 32) -> WSNResNet18:  # noqa: N802 - public name
    return WSNResNet18(taskcla, nf)


def make(taskcla=((0, 5), (1, 5)), nf: int = 8) -> WSNResNet18:
    """Small default (nf=8); the WSN scripts use nf=20. Input must be 3x32x32."""
    return WSNResNet18(taskcla, nf)


# ---------------------------------------------------------------------------------------------
# Masked variants: WSN (the paper's SubnetConv2d multiplies each weight by its 0/1 mask; the
# shortcut conv3 is a SubnetConv2d too) and HAT (the HAT scheme applied to this network; no
# public counterpart; the shortcut is not masked)
# ---------------------------------------------------------------------------------------------


def hat_layers(model: WSNResNet18) -> dict[str, nn.Conv2d]:
    """HAT-masked layers ('/' module paths, data-flow order): conv1, then each block's conv1, conv2."""
    out = {"conv1": model.conv1}
    for i in range(1, 5):
        for j, block in enumerate(getattr(model, f"layer{i}")):
            out[f"layer{i}/{j}/conv1"] = block.conv1
            out[f"layer{i}/{j}/conv2"] = block.conv2
    return out


def wsn_layers(model: WSNResNet18) -> dict[str, nn.Conv2d]:
    """WSN-masked layers: every conv, in data-flow order; in a block conv1, conv2, then the shortcut
    conv3 (it reads the block input, like conv1, and is declared after conv2)."""
    out = {"conv1": model.conv1}
    for i in range(1, 5):
        for j, block in enumerate(getattr(model, f"layer{i}")):
            out[f"layer{i}/{j}/conv1"] = block.conv1
            out[f"layer{i}/{j}/conv2"] = block.conv2
            if block.has_shortcut:
                out[f"layer{i}/{j}/conv3"] = block.conv3
    return out


def _forward(model: WSNResNet18, x: Tensor, conv, unit) -> tuple[Tensor, dict[str, Tensor]]:
    acts: dict[str, Tensor] = {}

    def relu(h, name):
        acts[name] = F.relu(unit(h, name))
        return acts[name]

    out = relu(model.bn1(conv("conv1", model.conv1, x.reshape(x.size(0), 3, 32, 32))), "conv1")
    for i in range(1, 5):
        for j, block in enumerate(getattr(model, f"layer{i}")):
            p = f"layer{i}/{j}"
            h = relu(block.bn1(conv(f"{p}/conv1", block.conv1, out)), f"{p}/conv1")
            h = block.bn2(conv(f"{p}/conv2", block.conv2, h))
            h = h + (block.bn3(conv(f"{p}/conv3", block.conv3, out)) if block.has_shortcut else out)
            out = relu(h, f"{p}/conv2")
    out = F.avg_pool2d(out, 2)
    return out.view(out.size(0), -1), acts


def wsn_forward_features(model: WSNResNet18, x: Tensor, weight_mask: dict[str, Tensor]) -> tuple[Tensor, dict]:
    """WSN: every conv's weight (shortcuts included) times its 0/1 mask (reshaped row-major to the
    weight's shape); activations after each block ReLU, keyed by the main-path conv."""
    def conv(name, layer, h):
        w = layer.weight * weight_mask[name].reshape(layer.weight.shape)
        return F.conv2d(h, w, None, layer.stride, layer.padding, layer.dilation, layer.groups)

    return _forward(model, x, conv, lambda h, n: h)


def hat_forward_features(model: WSNResNet18, x: Tensor, mask: dict[str, Tensor]) -> tuple[Tensor, dict]:
    """HAT: unit masks after each batch norm (a block's conv2: after the residual add), before the
    ReLU; activations after each ReLU."""
    return _forward(model, x, lambda name, layer, h: layer(h), lambda h, n: h * mask[n].view(1, -1, 1, 1))


__all__ = ["BasicBlock", "WSNResNet18", "SubnetResNet18", "make", "hat_layers", "wsn_layers",
           "hat_forward_features", "wsn_forward_features", "SOURCE", "SPEC_NOTES"]
