r"""The WSN gate: keep the top-scored fraction of a layer's parameters.

WSN (Winning SubNetworks) masks a layer's parameters by their learnable scores: with a keep fraction
`c`, a parameter is kept (mask 1) when its score is at least the `(1 - c)` quantile of all the layer's
scores, and dropped (mask 0) otherwise; ties at the threshold are kept. The backward pass is the
straight-through estimator: the scores receive the incoming gradient unchanged.

The threshold is defined exactly as `torch.quantile(scores.flatten(), q)` with its default 'linear'
interpolation, but it is computed without `torch.quantile`, which refuses inputs of more than 2**24
elements and sorts the whole tensor. Linear interpolation needs only two order statistics:

1. `rank = q * (n - 1)`, computed like torch does: `q` is first rounded to the scores' dtype and the
   product is taken in that dtype (so for float32 scores the rank is a float32 number).
2. `lo = floor(rank)`, `hi = ceil(rank)`, `weight = rank - lo` (exact: a number minus its floor).
3. The `lo`-th smallest score (0-based) comes from one `torch.kthvalue` (a selection, expected
   linear time). The `hi`-th one is needed only when `hi > lo`: it equals the `lo`-th when at least
   `lo + 2` scores are `<=` it (a tie), and otherwise it is the smallest score above it; a count
   and a masked minimum, one linear pass each, instead of a second selection.
4. `torch.lerp(below, above, weight)`, the very kernel `torch.quantile` ends with, on tensors of the
   same dtype and device, so the rounding (including any fused multiply-add) is the same.

A NaN anywhere makes the threshold NaN (torch.quantile's rule), so `scores >= threshold` keeps nothing.
An empty tensor has no quantile (an error, as in torch.quantile); the gate returns an empty mask.

Beyond torch.quantile's domain (more than 2**24 elements, or a floating dtype other than float32 and
float64) the rank is computed in float64 instead: a float32 rank can no longer hold every index there,
and torch offers no result to agree with. Everything else is unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["PercentileLayerParameterMaskingByScore", "quantile_threshold"]

# torch.quantile's size limit: up to here, every index is exact in a float32 rank.
_TORCH_QUANTILE_MAX_NUMEL = 2**24
_TORCH_QUANTILE_DTYPES = (torch.float32, torch.float64)


def quantile_threshold(scores: Tensor, q: float) -> Tensor:
    r"""The `q` quantile of all elements of `scores`, bit-identical to
    `torch.quantile(scores.flatten(), q)` (linear interpolation) wherever torch.quantile accepts
    the input, and defined the same way for larger tensors. Returns a 0-d tensor of `scores`' dtype
    on `scores`' device. Not differentiable (the gate supplies its own backward)."""
    if not scores.is_floating_point():
        raise TypeError(
            f"quantile_threshold() needs floating point scores, but got {scores.dtype}."
        )
    q = float(q)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile_threshold() q must be in the range [0, 1] but got {q}.")

    flat = scores.detach().reshape(-1)
    n = flat.numel()
    dtype, device = flat.dtype, flat.device
    if n == 0:
        raise ValueError("quantile_threshold() input tensor must be non-empty.")

    last_index = n - 1
    in_torch_domain = dtype in _TORCH_QUANTILE_DTYPES and n <= _TORCH_QUANTILE_MAX_NUMEL
    rank_dtype = dtype if in_torch_domain else torch.float64
    # The rank arithmetic is a handful of scalars: do it on the CPU (IEEE multiplication and
    # subtraction round the same everywhere), so the indices are known without a device sync.
    rank = torch.tensor(q, dtype=rank_dtype) * last_index
    lo = int(rank.floor())
    hi = int(rank.ceil())
    weight = float(rank - lo)

    below = flat.kthvalue(lo + 1).values
    if hi == lo:
        above = below
    else:
        ties_reach_hi = (flat <= below).sum() >= hi + 1
        smallest_above = flat.masked_fill(flat <= below, math.inf).min()
        above = torch.where(ties_reach_hi, below, smallest_above)

    # Shape (1,) operands and a tensor weight, as in torch.quantile's final lerp_.
    weight_t = torch.full((1,), weight, dtype=dtype, device=device)
    threshold = torch.lerp(below.reshape(1), above.reshape(1), weight_t).reshape(())
    # Selection leaves NaNs somewhere arbitrary; torch.quantile answers NaN for any NaN input.
    return torch.where(flat.isnan().any(), torch.full_like(threshold, math.nan), threshold)


class PercentileLayerParameterMaskingByScore(torch.autograd.Function):
    r"""Binary mask of a layer's top-scored parameters, with a straight-through backward.

    `apply(scores, percentage)` returns a tensor shaped like `scores` (and of its dtype): 1 where the
    score is `>=` the `(1 - percentage)` quantile of all scores, else 0.
    """

    @staticmethod
    def forward(ctx, scores: Tensor, percentage: float) -> Tensor:
        if scores.numel() == 0:
            # A layer without parameters has nothing to keep; there is no quantile to take.
            return torch.zeros_like(scores)
        threshold = quantile_threshold(scores, 1 - percentage)
        return (scores >= threshold).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:
        # The mask is piecewise constant, so its true gradient is zero almost everywhere; WSN trains
        # the scores by passing the gradient through as if the gate were the identity.
        return grad_output, None
