"""The WSN paper's AlexNet (``SubnetAlexNet_norm``), PLAIN counterpart, in plain PyTorch.

Source of the facts: ihaeyong/WSN (the WSN authors' repository), ``networks/alexnet.py`` class
``SubnetAlexNet_norm`` (read at commit f066982e6c4f89a765f2d54ef41536978a2fff0b, 2024-01-17), the
AlexNet that ``main_wsn_cifar100_100.py`` and ``main_wsn_five_dataset_resnet18.py`` import as
``AlexNet``; ``networks/subnet.py`` for ``SubnetConv2d`` / ``SubnetLinear``. The plain counterpart
replaces every SubnetConv2d / SubnetLinear by nn.Conv2d / nn.Linear of the same shape (no bias), so
it lacks their score parameters ``w_m`` (and their masked forward). The file's other AlexNets
(``SubnetAlexNet`` without batch norm, ``STLAlexNet_norm`` / ``GPMAlexNet_norm`` whose batch norms
are affine) are not this one.

Structure, 3x32x32 input in the public code (channels and size are parameters here), widths
64, 128, 256 and hidden width 2048 in the paper:

* ``conv1`` Conv2d(3, 64, 4), ``conv2`` Conv2d(64, 128, 3), ``conv3`` Conv2d(128, 256, 2): stride 1,
  NO padding, NO bias.
* each conv: conv -> ``bnK`` -> ``relu`` -> dropout -> ``maxpool`` (MaxPool2d(2)); ``drop1``
  (p=0.2) after conv1 and conv2, ``drop2`` (p=0.5) after conv3. Dropout BEFORE the pooling.
* ``bn1``, ``bn2``, ``bn3``: BatchNorm2d(C, track_running_stats=False, affine=False); ``bn4``,
  ``bn5``: BatchNorm1d(2048, track_running_stats=False, affine=False). These have NO parameters and
  NO buffers (no state_dict keys at all) and normalise with the CURRENT batch's statistics in
  train AND eval mode.
* flatten (256 * smid * smid, smid = 2 for 32x32: 32 -> 29 -> 14 -> 12 -> 6 -> 5 -> 2),
  ``fc1`` Linear(1024, 2048, no bias) -> ``bn4`` -> ``relu`` -> ``drop2``, ``fc2`` Linear(2048, 2048,
  no bias) -> ``bn5`` -> ``relu`` -> ``drop2``.
* heads: ``last`` nn.ModuleList of Linear(2048, n, bias=False) per (t, n) in ``taskcla``; the public
  forward(x, task_id, mask, mode) returns ``last[task_id](features)`` only.

Registration order: conv1, bn1, conv2, bn2, conv3, bn3, maxpool, relu, drop1, drop2, fc1, bn4, fc2,
bn5, last. state_dict keys (plain): conv1.weight, conv2.weight, conv3.weight, fc1.weight, fc2.weight,
last.{t}.weight.

Spec notes:

* ``batchnorm2d(affine=false, track_running_stats=false)`` and the batchnorm1d equivalent: modules
  without state, batch statistics in eval mode too.
* Bias-free convolutions and linears throughout, paddings 0.
* Shared relu / maxpool / dropout modules called at several points; dropout before max pooling.
* Flattened width computed from the input size; module names conv1..conv3, bn1..bn5, fc1, fc2.
* A task-indexed head: ModuleList ``last`` with ``forward(x, task_id)`` selecting one head.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

SOURCE = {
    "repo": "ihaeyong/WSN",
    "path": "networks/alexnet.py (SubnetAlexNet_norm; plain counterpart), networks/subnet.py",
    "commit": "f066982e6c4f89a765f2d54ef41536978a2fff0b",
}
SPEC_NOTES = (
    "batchnorm(affine=false, track_running_stats=false): stateless, batch statistics in eval",
    "bias-free conv / linear layers",
    "shared relu / maxpool / dropout modules; dropout before max pooling",
    "flattened width computed from the input size",
    "task-indexed head ModuleList (forward(x, task_id))",
)


def _out(length: int, k: int) -> int:
    return length - k + 1


def _bn2d(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, track_running_stats=False, affine=False)


def _bn1d(c: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(c, track_running_stats=False, affine=False)


class WSNAlexNet(nn.Module):
    def __init__(self, taskcla=((0, 10),), in_channels: int = 3, input_size: int = 32,
                 channels=(64, 128, 256), hidden: int = 2048) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.conv1 = nn.Conv2d(in_channels, c1, 4, bias=False)
        self.bn1 = _bn2d(c1)
        s = _out(input_size, 4) // 2
        self.conv2 = nn.Conv2d(c1, c2, 3, bias=False)
        self.bn2 = _bn2d(c2)
        s = _out(s, 3) // 2
        self.conv3 = nn.Conv2d(c2, c3, 2, bias=False)
        self.bn3 = _bn2d(c3)
        s = _out(s, 2) // 2
        self.smid = s
        self.maxpool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()
        self.drop1 = nn.Dropout(0.2)
        self.drop2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(c3 * s * s, hidden, bias=False)
        self.bn4 = _bn1d(hidden)
        self.fc2 = nn.Linear(hidden, hidden, bias=False)
        self.bn5 = _bn1d(hidden)
        self.taskcla = [tuple(tc) for tc in taskcla]
        self.last = nn.ModuleList(nn.Linear(hidden, n, bias=False) for _, n in self.taskcla)

    def forward_features(self, x: Tensor) -> Tensor:
        bsz = x.size(0)
        x = self.maxpool(self.drop1(self.relu(self.bn1(self.conv1(x)))))
        x = self.maxpool(self.drop1(self.relu(self.bn2(self.conv2(x)))))
        x = self.maxpool(self.drop2(self.relu(self.bn3(self.conv3(x)))))
        x = x.view(bsz, -1)
        x = self.drop2(self.relu(self.bn4(self.fc1(x))))
        return self.drop2(self.relu(self.bn5(self.fc2(x))))

    def forward(self, x: Tensor, task_id: int = 0) -> Tensor:
        return self.last[task_id](self.forward_features(x))


def make(taskcla=((0, 5), (1, 5)), in_channels: int = 3, input_size: int = 32, channels=(16, 32, 64),
         hidden: int = 64) -> WSNAlexNet:
    """Small default widths; ``WSNAlexNet(taskcla)`` has the paper's widths."""
    return WSNAlexNet(taskcla, in_channels, input_size, channels, hidden)


# ---------------------------------------------------------------------------------------------
# Masked variants: WSN (the paper's SubnetConv2d / SubnetLinear multiply each weight by its
# 0/1 mask) and HAT (the HAT scheme applied to this network; no public counterpart)
# ---------------------------------------------------------------------------------------------


def hat_layers(model: WSNAlexNet) -> dict[str, nn.Module]:
    """The weighted layers, data-flow order (the WSN paper's Subnet layers, heads excluded)."""
    return {"conv1": model.conv1, "conv2": model.conv2, "conv3": model.conv3, "fc1": model.fc1, "fc2": model.fc2}


wsn_layers = hat_layers


def _forward(model: WSNAlexNet, x: Tensor, weight, unit) -> tuple[Tensor, dict[str, Tensor]]:
    """The features with the weight of layer `name` replaced by ``weight(name, layer)`` and ``unit(h,
    name)`` applied after each batch norm (before the ReLU); activations after each ReLU."""
    acts: dict[str, Tensor] = {}

    def conv(h, name, bn, drop):
        layer = getattr(model, name)
        h = F.conv2d(h, weight(name, layer), None, layer.stride, layer.padding, layer.dilation, layer.groups)
        acts[name] = model.relu(unit(bn(h), name))
        return model.maxpool(drop(acts[name]))

    def linear(h, name, bn):
        layer = getattr(model, name)
        acts[name] = model.relu(unit(bn(F.linear(h, weight(name, layer))), name))
        return model.drop2(acts[name])

    bsz = x.size(0)
    h = conv(x, "conv1", model.bn1, model.drop1)
    h = conv(h, "conv2", model.bn2, model.drop1)
    h = conv(h, "conv3", model.bn3, model.drop2)
    h = h.view(bsz, -1)
    h = linear(h, "fc1", model.bn4)
    return linear(h, "fc2", model.bn5), acts


def wsn_forward_features(model: WSNAlexNet, x: Tensor, weight_mask: dict[str, Tensor]) -> tuple[Tensor, dict]:
    """WSN: every weight multiplied by its 0/1 mask (any shape with the weight's number of entries,
    row-major), no biases; returns the features and the activations after each ReLU."""
    return _forward(model, x, lambda n, layer: layer.weight * weight_mask[n].reshape(layer.weight.shape),
                    lambda h, n: h)


def hat_forward_features(model: WSNAlexNet, x: Tensor, mask: dict[str, Tensor]) -> tuple[Tensor, dict]:
    """HAT: each layer's unit mask after its (stateless) batch norm, before the ReLU."""
    return _forward(model, x, lambda n, layer: layer.weight,
                    lambda h, n: h * mask[n].view(1, -1, *([1] * (h.dim() - 2))))


__all__ = ["WSNAlexNet", "make", "hat_layers", "wsn_layers", "hat_forward_features", "wsn_forward_features",
           "SOURCE", "SPEC_NOTES"]
