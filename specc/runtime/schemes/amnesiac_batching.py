"""The main network's layer on every path of AmnesiacHAT's 'train_with_backup' in one call.

In that stage a main weighted layer (and a main shortcut projection) runs on the main path's input
and, inside each backup path's routed mix `m_b * backup(x_b) + (1 - m_b) * main(x_b)`, on that path's
input: 1 + n calls of the same weights. Where a layer's cost is in its weights (few output
positions per weight: ResNets' late stages at small images), one call on the inputs stacked along
the batch reads and updates the weights once instead of 1 + n times; the backup layers, each with
weights of its own, still run one by one. The weights' traffic then is that of 1 + n networks; the
arithmetic stays that of 1 + 2n layer calls.

What it changes: nothing in the forward, nor in batch norms (each path's batch norm still runs on
its own slice, in the same order); the gradient of the shared weight is one sum over every path's
samples instead of one sum per path added up: the same terms in another floating-point order (see
the README). The forward stays exact because a CPU convolution computes each sample alike whatever
the batch size, as long as the batch selects the same backend: measured for batches of 2 and more.
torch picks the backend by batch size in two cases (ConvParams::use_mkldnn): a batch of 1 with a
small kernel and input (measured: another result) and, on one thread, a 1x1 convolution without
stride below 16 samples (measured equal here, kept out as a precaution). So the layers are stacked
only where each path's batch is 2 or more (16 for such 1x1 convolutions), on CPU tensors (other
devices choose kernels by shape: not stacked, so their results stay the sequential ones). Linear
layers are not stacked: a matrix product's row may round differently with the number of rows
(measured with two threads). tests/test_amnesiac_batched.py compares with the sequential forward.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["CONVOLUTIONS", "stackable", "shared_layer"]

CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def stackable(layer: nn.Module) -> bool:
    """A convolution whose module call is a plain convolution (its class not a subclass)."""
    return type(layer) in CONVOLUTIONS


def _weight_bound(layer: nn.Module, x: Tensor) -> bool:
    """Whether one output position costs less than the weights' reduction length (in_channels/groups
    * kernel): then the layer's time goes to reading and updating its weights, which stacking saves;
    otherwise stacking only adds the copies of the inputs and outputs."""
    positions = x.shape[0] * math.prod(x.shape[2:]) // math.prod(layer.stride)
    return positions <= layer.weight[0].numel()


def _same_kernel(layer: nn.Module, inputs: list[Tensor]) -> bool:
    """Whether one call on the stacked inputs computes each sample as the separate calls do (see
    the module's docstring)."""
    first = inputs[0]
    if first.device.type != "cpu" or any(x.shape[1:] != first.shape[1:] for x in inputs[1:]):
        return False
    pointwise = all(k == 1 for k in layer.kernel_size) and all(s == 1 for s in layer.stride) \
        and all(d == 1 for d in layer.dilation)
    return min(x.shape[0] for x in inputs) >= (16 if pointwise else 2)


def shared_layer(layer: nn.Module, inputs: list[Tensor]) -> tuple[Tensor, ...]:
    """`layer` on each of `inputs` (the main path's first): one call on the stacked inputs where
    that pays and computes the same, else one call each."""
    if len(inputs) > 1 and _weight_bound(layer, inputs[0]) and _same_kernel(layer, inputs):
        return layer(torch.cat(inputs)).split([x.shape[0] for x in inputs])
    return tuple(layer(x) for x in inputs)
