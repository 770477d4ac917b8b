"""Run-time helpers of WSN-masked compiled backbones: layers computed on masked parameters.

The stored parameters are never modified: the products `weight * mask` are new tensors, so the
gradient reaches the parameters (scaled by the mask) and, straight through the gate, the scores.
A convolution's weight mask may come as (out, in/groups * kh * kw), the layout of its score
embedding, or already shaped like the weight; it is viewed as the weight's shape."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def _masked_bias(bias: Tensor | None, mask: Tensor | None) -> Tensor | None:
    # As CLArena's WSNMaskMLP: no bias mask (or no bias) means the layer runs without bias.
    if bias is None or mask is None:
        return None
    return bias * mask


def wsn_linear(x: Tensor, weight: Tensor, bias: Tensor | None, weight_mask: Tensor,
               bias_mask: Tensor | None) -> Tensor:
    return F.linear(x, weight * weight_mask.view_as(weight), _masked_bias(bias, bias_mask))


def wsn_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, weight_mask: Tensor, bias_mask: Tensor | None,
               stride, padding, dilation, groups: int) -> Tensor:
    return F.conv2d(x, weight * weight_mask.view_as(weight), _masked_bias(bias, bias_mask),
                    stride, padding, dilation, groups)
