"""Independent plain-PyTorch references of the WSN backbones (WSNMaskMLP, WSNMaskResNet18).

Written from ``/work/shared/CONTRACT.md`` and the seed's ``WSNMaskBackbone``
(``/work/shared/seed/base_readable.txt``); nothing here imports ``specc``. The gate is our own:
``torch.quantile`` (linear interpolation) on the layer's flattened scores, keep ``score >= q``, and a
straight-through backward. ``torch.quantile`` accepts at most 2**24 elements, which covers every
layer of the networks used in the tests.

Module registration order (it decides ``state_dict`` key order) follows CLArena's WSNMaskMLP: the
score dicts ``weight_score_t`` and ``bias_score_t`` first, then the architecture.

* MLP: ``weight_score_t``, ``bias_score_t``, ``fc``, ``fc_activation`` (opt.), ``fc_dropout`` (opt.).
* ResNet18: ``weight_score_t``, ``bias_score_t``, ``conv1``, ``conv_bn1`` (opt.),
  ``conv_activation1`` (opt.), ``maxpool``, ``conv2x`` .. ``conv5x``, ``avepool``, ``conv_bn1s``
  (independent only).
* Small block: ``conv1``, ``conv_bn1``, ``conv_activation1``, ``conv2``, ``conv_bn2``,
  ``conv_activation2``, ``identity_downsample`` (opt.), ``conv_bn1s``, ``conv_bn2s`` (independent only).

Beyond CLArena (as specc's WSN ResNets): every convolution, the shortcut ``identity_downsample``
included, is a weighted layer with scores ``weight_score_t[name] = nn.Embedding(out, in * k * k)``
(the weight flattened per output channel, row-major) and ``bias_score_t[name] =
nn.Embedding(1, out)`` for every layer (also without bias). Weighted layer order inside a block:
``conv1``, ``conv2``, ``identity_downsample``.
"""

from __future__ import annotations

import math
from copy import deepcopy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ReferenceGate",
    "reference_gate",
    "WSNMaskMLP",
    "WSNMaskResNetBlockSmall",
    "WSNMaskResNet18",
]


class ReferenceGate(torch.autograd.Function):
    """1 where the score is >= the (1 - c) quantile of all the layer's scores, else 0; the
    backward passes the incoming gradient to the scores unchanged."""

    @staticmethod
    def forward(ctx, scores: Tensor, c: float) -> Tensor:
        q = torch.quantile(scores.detach().flatten(), 1.0 - c)
        return (scores >= q).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad, None


def reference_gate(scores: Tensor, c: float) -> Tensor:
    return ReferenceGate.apply(scores, c)


class _WSNBase(nn.Module):
    """Scores per weighted layer and the seed's get_mask / initialize_parameter_score."""

    def __init__(self, output_dim: int | None) -> None:
        super().__init__()
        self.output_dim = output_dim
        self.weighted_layer_names: list[str] = []
        self.weight_score_t = nn.ModuleDict()
        self.bias_score_t = nn.ModuleDict()

    def setup_task_id(self, task_id: int) -> None:
        self.task_id = task_id

    def _add_scores(self, name: str, weight: Tensor) -> None:
        out = weight.shape[0]
        self.weighted_layer_names.append(name)
        self.weight_score_t[name] = nn.Embedding(out, weight[0].numel())
        self.bias_score_t[name] = nn.Embedding(1, out)

    def initialize_parameter_score(self, mode: str) -> None:
        for name in self.weighted_layer_names:
            ws, bs = self.weight_score_t[name].weight, self.bias_score_t[name].weight
            if mode == "default":
                nn.init.kaiming_uniform_(ws, a=math.sqrt(5))
                fan_in = ws.shape[1]
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                nn.init.uniform_(bs, -bound, bound)
            elif mode == "N01":
                nn.init.normal_(ws, 0, 1)
                nn.init.normal_(bs, 0, 1)
            elif mode == "U01":
                nn.init.uniform_(ws, 0, 1)
                nn.init.uniform_(bs, 0, 1)

    def get_mask(self, stage: str, mask_percentage: float, test_mask=None):
        if stage in ("train", "validation"):
            wm = {n: reference_gate(self.weight_score_t[n].weight, mask_percentage)
                  for n in self.weighted_layer_names}
            bm = {n: reference_gate(self.bias_score_t[n].weight[0], mask_percentage)
                  for n in self.weighted_layer_names}
            return wm, bm
        if stage == "test":
            return test_mask
        return {}, {}


def _masked(param: Tensor | None, mask: Tensor | None) -> Tensor | None:
    if param is None or mask is None:
        return None
    return param * mask.reshape(param.shape)


class WSNMaskMLP(_WSNBase):
    def __init__(self, input_dim: int, hidden_dims: list[int], output_dim: int,
                 activation_layer: type[nn.Module] | None = nn.ReLU, bias: bool = True,
                 dropout: float | None = None) -> None:
        super().__init__(output_dim)
        dims = [input_dim, *hidden_dims, output_dim]
        n = len(dims) - 1
        self.fc = nn.ModuleList(nn.Linear(dims[i], dims[i + 1], bias=bias) for i in range(n))
        if activation_layer is not None:
            self.fc_activation = nn.ModuleList(activation_layer() for _ in range(n))
        if dropout is not None:
            self.fc_dropout = nn.ModuleList(nn.Dropout(dropout) for _ in range(n))
        self.has_act = activation_layer is not None
        self.has_dropout = dropout is not None
        for i in range(n):
            self._add_scores(f"fc/{i}", self.fc[i].weight)

    def forward(self, input: Tensor, stage: str, mask_percentage: float, test_mask=None,
                test_task_id: int | None = None):
        wm, bm = self.get_mask(stage, mask_percentage, test_mask)
        x = input.view(input.size(0), -1)
        activations = {}
        for i, layer in enumerate(self.fc):
            name = f"fc/{i}"
            x = F.linear(x, _masked(layer.weight, wm[name]), _masked(layer.bias, bm.get(name)))
            if self.has_act:
                x = self.fc_activation[i](x)
            activations[name] = x
            if self.has_dropout:
                x = self.fc_dropout[i](x)
        return x, wm, bm, activations


def _conv(x: Tensor, conv: nn.Conv2d, wm: Tensor, bm: Tensor | None) -> Tensor:
    return F.conv2d(x, _masked(conv.weight, wm), _masked(conv.bias, bm), conv.stride, conv.padding,
                    conv.dilation, conv.groups)


class WSNMaskResNetBlockSmall(nn.Module):
    """Small block: conv1 3x3 -> bn -> act -> record; conv2 3x3 (stride) -> bn -> + shortcut -> act
    -> record; shortcut 1x1 conv (no bias, no bn) when channels or stride change."""

    def __init__(self, c_in: int, width: int, stride: int, activation_layer, batch_normalization,
                 bias: bool) -> None:
        super().__init__()
        bn = batch_normalization is not None and batch_normalization is not False
        self.bn = bn
        self.act = activation_layer is not None
        self.conv1 = nn.Conv2d(c_in, width, 3, stride=1, padding=1, bias=bias)
        if bn:
            self.conv_bn1 = nn.BatchNorm2d(width)
        if self.act:
            self.conv_activation1 = activation_layer()
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=bias)
        if bn:
            self.conv_bn2 = nn.BatchNorm2d(width)
        if self.act:
            self.conv_activation2 = activation_layer()
        self.has_shortcut = c_in != width or stride != 1
        if self.has_shortcut:
            self.identity_downsample = nn.Conv2d(c_in, width, 1, stride=stride, bias=False)
        self.independent = batch_normalization == "independent"
        if self.independent:
            self.conv_bn1s = nn.ModuleDict()
            self.conv_bn2s = nn.ModuleDict()

    def layers(self) -> list[tuple[str, nn.Conv2d]]:
        out = [("conv1", self.conv1), ("conv2", self.conv2)]
        if self.has_shortcut:
            out.append(("identity_downsample", self.identity_downsample))
        return out

    def _bn(self, k: int, key: str | None) -> nn.Module:
        return getattr(self, f"conv_bn{k}") if key is None else getattr(self, f"conv_bn{k}s")[key]

    def forward(self, x: Tensor, prefix: str, wm, bm, activations, key: str | None) -> Tensor:
        n1, n2, ns = f"{prefix}/conv1", f"{prefix}/conv2", f"{prefix}/identity_downsample"
        out = _conv(x, self.conv1, wm[n1], bm.get(n1))
        if self.bn:
            out = self._bn(1, key)(out)
        if self.act:
            out = self.conv_activation1(out)
        activations[n1] = out
        out = _conv(out, self.conv2, wm[n2], bm.get(n2))
        if self.bn:
            out = self._bn(2, key)(out)
        shortcut = _conv(x, self.identity_downsample, wm[ns], bm.get(ns)) if self.has_shortcut else x
        out = out + shortcut
        if self.act:
            out = self.conv_activation2(out)
        activations[n2] = out
        return out


class WSNMaskResNet18(_WSNBase):
    def __init__(self, input_channels: int, output_dim: int,
                 activation_layer: type[nn.Module] | None = nn.ReLU,
                 batch_normalization: str | None = "independent", bias: bool = False) -> None:
        super().__init__(output_dim)
        bn = batch_normalization is not None and batch_normalization is not False
        self.bn = bn
        self.act = activation_layer is not None
        self.conv1 = nn.Conv2d(input_channels, 64, 7, stride=2, padding=3, bias=bias)
        if bn:
            self.conv_bn1 = nn.BatchNorm2d(64)
        if self.act:
            self.conv_activation1 = activation_layer()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self._add_scores("conv1", self.conv1.weight)
        c_in = 64
        for stage, width, stride in (("conv2x", 64, 1), ("conv3x", 128, 2), ("conv4x", 256, 2),
                                     ("conv5x", 512, 2)):
            blocks = []
            for s in (stride, 1):
                blocks.append(WSNMaskResNetBlockSmall(c_in, width, s, activation_layer,
                                                      batch_normalization, bias))
                c_in = width
            setattr(self, stage, nn.Sequential(*blocks))
            for j, b in enumerate(blocks):
                for lname, conv in b.layers():
                    self._add_scores(f"{stage}/{j}/{lname}", conv.weight)
        self.avepool = nn.AdaptiveAvgPool2d((1, 1))
        self.independent = batch_normalization == "independent"
        if self.independent:
            self.conv_bn1s = nn.ModuleDict()

    def _bn_owners(self):
        if not self.independent:
            return
        yield self, "conv_bn1"
        for stage in ("conv2x", "conv3x", "conv4x", "conv5x"):
            for b in getattr(self, stage):
                yield b, "conv_bn1"
                yield b, "conv_bn2"

    def setup_task_id(self, task_id: int) -> None:
        super().setup_task_id(task_id)
        for owner, attr in self._bn_owners():
            copies = getattr(owner, f"{attr}s")
            if str(task_id) not in copies:
                copies[str(task_id)] = deepcopy(getattr(owner, attr))

    def store_bn(self) -> None:
        for owner, attr in self._bn_owners():
            getattr(owner, f"{attr}s")[str(self.task_id)] = deepcopy(getattr(owner, attr))

    def forward(self, input: Tensor, stage: str, mask_percentage: float, test_mask=None,
                test_task_id: int | None = None):
        wm, bm = self.get_mask(stage, mask_percentage, test_mask)
        key = None
        if self.independent and stage in ("test", "unlearning_test"):
            key = str(test_task_id if test_task_id is not None else self.task_id)
        activations = {}
        x = _conv(input, self.conv1, wm["conv1"], bm.get("conv1"))
        if self.bn:
            x = (self.conv_bn1 if key is None else self.conv_bn1s[key])(x)
        if self.act:
            x = self.conv_activation1(x)
        activations["conv1"] = x
        x = self.maxpool(x)
        for stage_name in ("conv2x", "conv3x", "conv4x", "conv5x"):
            for j, block in enumerate(getattr(self, stage_name)):
                x = block(x, f"{stage_name}/{j}", wm, bm, activations, key)
        x = self.avepool(x)
        x = x.view(x.size(0), -1)
        return x, wm, bm, activations
