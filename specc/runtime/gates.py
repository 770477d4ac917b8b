r"""The WSN gate: keep the top-scored fraction of a layer's parameters.

WSN (Winning SubNetworks) masks a layer's parameters by their learnable scores: with a keep fraction
`c`, a parameter is kept (mask 1) when its score is at least the `(1 - c)` quantile of all the layer's
scores, and dropped (mask 0) otherwise; ties at the threshold are kept. The backward pass is the
straight-through estimator: the scores receive the incoming gradient unchanged.

The threshold is defined exactly as `torch.quantile(scores.flatten(), q)` with its default 'linear'
interpolation, but it is computed without `torch.quantile`, which refuses inputs of more than 2**24
elements and sorts the whole tensor. Linear interpolation needs only two order statistics:

1. `rank = q * (n - 1)`, computed like torch does: `q` is first rounded to the scores' dtype and the
   product is taken in that dtype (so for float32 scores the rank is a float32 number). This is
   done exactly in Python (`rank_parts`), so nothing is read back from a tensor: no device sync,
   and no graph break under torch.compile.
2. `lo = floor(rank)`, `hi = ceil(rank)`, `weight = rank - lo` (exact: a number minus its floor).
3. The `lo`-th smallest score (0-based) comes from one `torch.kthvalue` (a selection, expected
   linear time). The `hi`-th one is needed only when `hi > lo`: it equals the `lo`-th when at least
   `lo + 2` scores are `<=` it (a tie), and otherwise it is the smallest score above it; a count
   and a masked minimum, one linear pass each, instead of a second selection.
4. `torch.lerp(below, above, weight)`, the very kernel `torch.quantile` ends with, on tensors of the
   same dtype and device, so the rounding (including any fused multiply-add) is the same.

On the CPU, in eager mode, for float32 layers of at least `RADIX_MIN_NUMEL` scores, steps 3's two
order statistics come instead from `SELECT`: `specc.runtime.bracket.order_statistics` (a bracket
around the last step's two scores, counted with NumPy) where NumPy is at hand, else
`specc.runtime.selection.order_statistics` (a radix select around the last step's threshold): the
same two scores, so the same threshold, bit for bit.

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

from .selection import order_statistics

try:  # the bracket select counts with NumPy; without NumPy (or in an exported file), the radix select
    from .bracket import order_statistics as bracket_order_statistics
except ImportError:  # no NumPy, or a torch that cannot hand tensors to it (another NumPy ABI)
    bracket_order_statistics = None  # type: ignore[assignment]

__all__ = ["PercentileLayerParameterMaskingByMagnitude", "PercentileLayerParameterMaskingByScore", "quantile_threshold", "rank_parts"]

# torch.quantile's size limit: up to here, every index is exact in a float32 rank.
_TORCH_QUANTILE_MAX_NUMEL = 2**24
_TORCH_QUANTILE_DTYPES = (torch.float32, torch.float64)


def _to_float32(x: float) -> float:
    """The float32 nearest to the finite float `x` (ties to even, as C's double-to-float conversion
    and torch's casts round), as a Python float; subnormal results included, no overflow below
    2**128. Exact: scaling by powers of two is exact, and round() of a float rounds half to even."""
    if x == 0.0:
        return x
    mantissa, exponent = math.frexp(x)  # x = mantissa * 2**exponent, 0.5 <= |mantissa| < 1
    bits = 24 - max(0, -125 - exponent)  # float32 keeps 24 significant bits, fewer when subnormal
    if bits < 0:
        return 0.0 * x  # below half the smallest subnormal
    return math.ldexp(round(math.ldexp(mantissa, bits)), exponent - bits)


def rank_parts(q: float, n: int, dtype: torch.dtype) -> tuple[int, int, float]:
    r"""`(lo, hi, weight)` of the rank `q * (n - 1)` of a quantile of `n` scores of `dtype`, as
    torch.quantile computes the rank: in float32 for float32 scores within its domain (`q` rounded
    to float32, the product rounded once), in float64 otherwise.

    Plain Python arithmetic, so no tensor is read back (no device sync, no graph break under
    torch.compile). It is exact: a float32 `q` times an index below 2**24 has at most 48
    significant bits, so the float64 product is exact and rounding it to float32 is torch's
    float32 multiplication; `rank - floor(rank)` is exact in any binary format."""
    last_index = n - 1
    if dtype == torch.float32 and n <= _TORCH_QUANTILE_MAX_NUMEL:
        rank = _to_float32(_to_float32(q) * last_index)
    else:
        rank = q * last_index  # float64, as torch.tensor(q, dtype=torch.float64) * last_index
    lo = math.floor(rank)
    return lo, math.ceil(rank), rank - lo


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

    lo, hi, weight = rank_parts(q, n, dtype)

    if _by_radix(flat):
        if SELECT is order_statistics and bool(flat.sum().isnan()) and bool(flat.isnan().any()):
            return torch.full((), math.nan, dtype=dtype, device=device)  # a NaN (or inf - inf: look again)
        hint_key = (SELECT, flat.data_ptr(), n, lo)  # each selector reads only its own hints
        found = SELECT(flat, lo, hi, _HINTS.get(hint_key))
        if len(_HINTS) > _MAX_HINTS:
            _HINTS.clear()
        if found is None:  # the bracket select met a NaN
            return torch.full((), math.nan, dtype=dtype, device=device)
        below, above, _HINTS[hint_key] = found
        return _lerp(below, above, weight)

    below = flat.kthvalue(lo + 1).values
    if hi == lo:
        above = below
    else:
        ties_reach_hi = (flat <= below).sum() >= hi + 1
        smallest_above = flat.masked_fill(flat <= below, math.inf).min()
        above = torch.where(ties_reach_hi, below, smallest_above)
    threshold = _lerp(below, above, weight)
    # Selection leaves NaNs somewhere arbitrary; torch.quantile answers NaN for any NaN input.
    return torch.where(flat.isnan().any(), torch.full_like(threshold, math.nan), threshold)


# The bracket select (runtime/bracket.py; NumPy) or else the radix select (runtime/selection.py) where
# they are the faster exact way: float32 on the CPU, eagerly (they read counts back: free on the CPU, a
# graph break under torch.compile), large layers (a small tensor costs more in their fixed steps).
# The hint: what the selector found last for the same storage and rank (WSN's scores move little per
# step); results never depend on it.
RADIX_MIN_NUMEL = 1 << 15
SELECT = bracket_order_statistics if bracket_order_statistics is not None else order_statistics
_HINTS: dict[tuple, tuple] = {}
_MAX_HINTS = 4096


def _by_radix(flat: Tensor) -> bool:
    return flat.numel() >= RADIX_MIN_NUMEL and flat.dtype == torch.float32 and flat.device.type == "cpu" \
        and not torch.compiler.is_compiling()


def _lerp(below: Tensor, above: Tensor, weight: float) -> Tensor:
    """torch.quantile's last step: lerp on shape (1,) operands and a tensor weight, as it has them
    (so the rounding, fused multiply-add included, is the same)."""
    weight_t = torch.full((1,), weight, dtype=below.dtype, device=below.device)
    return torch.lerp(below.reshape(1), above.reshape(1), weight_t).reshape(())


class PercentileLayerParameterMaskingByScore(torch.autograd.Function):
    r"""Binary mask of a layer's top-scored parameters, with a straight-through backward.

    `apply(scores, percentage)` returns a tensor shaped like `scores` (and of its dtype): 1 where the
    score is `>=` the `(1 - percentage)` quantile of all scores, else 0.

    Sharded scores (an FSDP2 parameter outside its forward: a DTensor) give the whole mask, as a
    plain tensor (a mask is a whole-layer quantity; stored and combined as such), and the
    gradient goes back to them laid out as they are.
    """

    @staticmethod
    def forward(ctx, scores: Tensor, percentage: float) -> Tensor:
        ctx.sharded = hasattr(scores, "full_tensor")  # a DTensor
        if ctx.sharded:
            ctx.layout = (scores.device_mesh, scores.placements)
            scores = scores.detach().full_tensor()
        if scores.numel() == 0:
            # A layer without parameters has nothing to keep; there is no quantile to take.
            return torch.zeros_like(scores)
        threshold = quantile_threshold(scores, 1 - percentage)
        # One pass writing the mask's dtype directly (`(scores >= threshold).to(dtype)` takes two,
        # the bool-to-float copy being slow on the CPU); the same 1.0 / 0.0 values.
        return torch.ge(scores, threshold, out=torch.empty_like(scores))

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:
        # The mask is piecewise constant, so its true gradient is zero almost everywhere; WSN trains
        # the scores by passing the gradient through as if the gate were the identity.
        if ctx.sharded:  # each rank keeps its own shard of the whole gradient (no communication)
            from torch.distributed.tensor import distribute_tensor

            mesh, placements = ctx.layout
            return distribute_tensor(grad_output, mesh, placements, src_data_rank=None), None
        return grad_output, None


class PercentileLayerParameterMaskingByMagnitude:
    r"""WSN's gate as the WSN paper's code ranks: by the scores' magnitude. `apply(scores, percentage)`
    is `PercentileLayerParameterMaskingByScore.apply(scores.abs(), percentage)`: 1 where `|score|`
    is `>=` the `(1 - percentage)` quantile of all `|score|`, else 0. The straight-through gradient
    then reaches each score times its sign (`abs` lies outside the gate, as in that code)."""

    @staticmethod
    def apply(scores: Tensor, percentage: float) -> Tensor:
        return PercentileLayerParameterMaskingByScore.apply(scores.abs(), percentage)


# `mask wsn(rank_by=...)`: the gate of each ranking
GATES_BY_RANKING = {"score": PercentileLayerParameterMaskingByScore,
                    "magnitude": PercentileLayerParameterMaskingByMagnitude}
