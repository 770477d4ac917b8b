"""Run-time helpers of HAT-masked compiled backbones."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def _select(live: nn.Module, copies: nn.ModuleDict, task: str | None, sub: tuple) -> nn.Module:
    """The live batch norm, or its copy stored for `task` (reached in the copy by `sub`)."""
    if task is None:
        return live
    module = copies[task]
    for part in sub:
        module = module[int(part)]
    return module


def independent_bn(x: Tensor, live: nn.Module, copies: nn.ModuleDict, task: str | None, sub: tuple) -> Tensor:
    """Batch norm with per-task copies: the live module, or the copy stored for `task`."""
    return _select(live, copies, task, sub)(x)


def batch_norm_masked(bn: nn.modules.batchnorm._BatchNorm, x: Tensor, mask: Tensor) -> Tensor:
    """`bn(x) * mask` (mask over channels) in one pass: the mask is folded into the affine weight
    and bias, which are per-channel, so `(x_hat * w + b) * m == x_hat * (w * m) + b * m`.

    Running statistics are updated exactly as nn.BatchNorm's forward does (they do not depend on
    the affine transform). The result can differ from `bn(x) * mask` in the last bit when the mask
    is fractional (the product is rounded in another order); with binary masks it is identical."""
    bn._check_input_dim(x)
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    use_batch_stats = bn.training or (bn.running_mean is None and bn.running_var is None)
    track = not bn.training or bn.track_running_stats
    return F.batch_norm(x, bn.running_mean if track else None, bn.running_var if track else None,
                        bn.weight * mask, bn.bias * mask, use_batch_stats, factor, bn.eps)


def independent_bn_masked(x: Tensor, live: nn.Module, copies: nn.ModuleDict, task: str | None, sub: tuple,
                          mask: Tensor) -> Tensor:
    """`independent_bn(...) * mask`, folded like batch_norm_masked."""
    return batch_norm_masked(_select(live, copies, task, sub), x, mask)
