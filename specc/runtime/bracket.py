r"""Exact order statistics of a large float32 CPU tensor by a bracket around the last step's (WSN's gate).

WSN's threshold needs the `lo`-th and `hi`-th smallest of a layer's scores (0-based, `hi` is `lo` or
`lo + 1`) every training step, and the scores move little per step. With the last step's two order
statistics `u <= v` and how far they moved then (the hint):

1. A bracket of float32 values `[a, b] = [u - d, v + d]`, `d` four times the last move (0 when
   nothing moved: then the bracket is `[u, v]`).
2. Two counting passes, `below = #(x < a)` and `above = #(x > b)`. These are a prefix and a suffix
   of the elements in key order (`specc.runtime.selection.float32_keys`, where -0.0 sits just below
   +0.0; float comparisons with a zero bound take both zeros alike, so the sets are still a prefix
   and a suffix). The bracket holds both order statistics exactly when `below <= lo` and
   `hi < n - above`; then they are the `(lo - below)`-th and `(hi - below)`-th smallest, in key
   order, of the few elements inside, picked from those alone.
3. A bracket that misses is widened (16 times, at least to 2**-16 of the values' magnitude; three
   tries), then the whole tensor is partitioned (`numpy.partition` of the keys).

So the results are, bit for bit, the elements a sort by key puts there (as the radix select's),
whatever the hint. A NaN is neither below nor above a bracket, so it is inside and seen there (or,
before a whole partition, in a sum): then there are no order statistics (None).

Counting and picking use NumPy on the tensor's memory (no copy): its comparisons and counts run
several times faster than torch's bool kernels on the CPU (about 0.3 ns an element, two passes,
against the radix select's histogram at several ns). Without NumPy the gate keeps the radix select.
"""
from __future__ import annotations

import math
import threading

import numpy as np
import torch
from torch import Tensor

from .selection import _float

__all__ = ["order_statistics"]

try:  # a torch built against another NumPy ABI imports, but cannot share a tensor's memory with it
    torch.zeros(1).numpy()
except Exception as e:  # noqa: BLE001 - RuntimeError("Numpy is not available") and kin
    raise ImportError(f"torch cannot hand tensors to this NumPy: {e}") from e

_GROWTH, _TRIES = 16.0, 3
_LEAST = 2.0 ** -16  # the least widening, relative to the values' magnitude
_FLOAT32_MAX = 3.4028234663852886e38

_scratch = threading.local()


def _flags(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two bool buffers of `n` elements, reused by every call of this thread (a fresh large array's
    first touch costs more than the pass that fills it)."""
    buf = getattr(_scratch, "flags", None)
    if buf is None or buf.shape[1] < n:
        buf = _scratch.flags = np.empty((2, n), dtype=np.bool_)
    return buf[0, :n], buf[1, :n]


def _keys(values: np.ndarray) -> np.ndarray:
    bits = values.view(np.int32)
    return bits ^ ((bits >> 31) & np.int32(0x7FFFFFFF))


def _pick(values: np.ndarray, ranks: tuple[int, ...]) -> list[int]:
    """The keys of the `ranks`-th smallest of `values` (key order; `ranks` one or two consecutive)."""
    keys = np.partition(_keys(values), ranks[0])  # one kth: several times faster than two
    found = [int(keys[ranks[0]])]
    if len(ranks) > 1:  # the next one is the smallest of those the partition put after it
        found.append(int(keys[ranks[1]:].min()))
    return found


def _bracket(x: np.ndarray, a: np.float32, b: np.float32, ranks: tuple[int, ...]) -> list[int] | None:
    """The keys of `ranks` from the elements in `[a, b]` (None where the bracket misses them; `[]`
    where an element is NaN)."""
    below_flags, outside = _flags(x.size)
    below = int(np.count_nonzero(np.less(x, a, out=below_flags)))
    if below > ranks[0]:
        return None
    above = int(np.count_nonzero(np.greater(x, b, out=outside)))
    if x.size - above <= ranks[-1]:
        return None
    inside = x[np.logical_not(np.logical_or(below_flags, outside, out=outside), out=outside)]
    if np.isnan(inside).any():
        return []
    return _pick(inside, tuple(r - below for r in ranks))


def _finite(value: float) -> float:
    return max(min(value, _FLOAT32_MAX), -_FLOAT32_MAX)


def _from_hint(x: np.ndarray, hint, ranks: tuple[int, ...]) -> list[int] | None:
    u, v, d = (float(h) for h in hint)
    if math.isnan(u + v + d):
        return None
    u, v = _finite(min(u, v)), _finite(max(u, v))
    d = min(abs(d), _FLOAT32_MAX)
    for _ in range(_TRIES):
        found = _bracket(x, np.float32(max(u - d, -math.inf)), np.float32(min(v + d, math.inf)), ranks)
        if found is not None:
            return found
        d = min(max(d * _GROWTH, max(abs(u), abs(v)) * _LEAST, 2.0 ** -149), _FLOAT32_MAX)
    return None


def order_statistics(x: Tensor, lo: int, hi: int, hint: tuple[float, float, float] | None = None
                     ) -> tuple[Tensor, Tensor, tuple[float, float, float]] | None:
    """`(lo-th, hi-th, hint)`: the `lo`-th and `hi`-th smallest (0-based, `hi` is `lo` or `lo + 1`)
    of the float32 CPU tensor `x` as 0-d tensors, bit for bit elements of `x` (in key order), and
    the hint to pass next time (their values and how far they moved; any three floats are a valid
    hint). None where `x` holds a NaN."""
    flat = x.detach().reshape(-1).numpy()
    ranks = (lo,) if hi == lo else (lo, hi)
    with np.errstate(over="ignore", invalid="ignore"):  # bounds beyond float32 are infinite; inf - inf
        found = _from_hint(flat, hint, ranks) if hint is not None else None
        if found is None:
            if np.isnan(flat.sum()) and np.isnan(flat).any():  # (a sum is NaN for inf - inf too: look again)
                return None
            found = _pick(flat, ranks)
    if not found:
        return None
    below, above = _float(found[0]), _float(found[-1])
    moved = 0.0
    if hint is not None:
        moved = max(abs(below - float(hint[0])), abs(above - float(hint[1])))
        moved = 0.0 if math.isnan(moved) else min(4.0 * moved, _FLOAT32_MAX)
    values = torch.tensor([below, above], dtype=torch.float32)
    return values[0], values[1], (below, above, moved)
