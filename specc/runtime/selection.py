r"""Exact order statistics of a large float32 tensor by a two-level radix select (WSN's gate).

WSN's threshold needs the `lo`-th and `hi = lo + 1`-th smallest of a layer's scores (0-based) every
training step; `torch.kthvalue` copies and partitions the whole tensor for each. Here:

1. Each float is mapped to an int32 *key* that orders as the float does: its bits, with the 31
   value bits flipped when the sign bit is set (then -0.0 sits just below +0.0, and -inf / +inf at
   the ends of the finite keys). The map is its own inverse.
2. Level 1: a histogram of the keys' top 16 bits (65536 buckets, one `bincount`), its running sum,
   and the bucket holding the `lo`-th key (`searchsorted`).
3. Level 2: the keys clamped to a window of 2**18 consecutive keys holding that bucket, one
   `bincount` of the clamped keys: the window's exact histogram, with the counts below and above it
   in its two end bins. The `lo`-th and `hi`-th keys are read off its running sum; both are exact,
   since every key below the window is counted in the first bin. Where both ends of the window are
   normal floats of one sign, the window is cut on the floats themselves (`clamp`) and a key is a
   difference of bit patterns (one subtraction): no key transform of the whole tensor. That reads
   the same under flush-to-zero (a subnormal lies outside such a window either way).
4. Where the window misses the `hi`-th key (the `lo`-th one's successor lies far away in key
   space), a second window around the last call's `hi`-th key is tried, and where that misses
   too, it is the smallest value above the `lo`-th one (a masked minimum): exact either way.

A window that does not hold the `lo`-th key is detected by its end bins; so a window may be placed
anywhere: `order_statistics` places it around a *hint*, the keys found by the previous call
(WSN's scores move little between steps), and falls back to level 1 when it misses. Results do not
depend on the hint.

Plain eager tensor code that reads a few counts back as Python ints (free on the CPU, where it is
used; a graph break under torch.compile, where the gate keeps `torch.kthvalue`). NaN-free inputs
only: the caller answers NaN first.
"""
from __future__ import annotations

import struct
import threading

import torch
from torch import Tensor

__all__ = ["float32_keys", "keys_to_float32", "order_statistics"]

_BUCKET_BITS = 16
_WINDOW = 1 << 18  # keys in a window: the lo-th key is placed a quarter in


def float32_keys(x: Tensor) -> Tensor:
    """int32 keys ordered as the float32 values `x` (NaN-free) are; -0.0 just below +0.0."""
    bits = x.view(torch.int32)
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


def keys_to_float32(keys: Tensor) -> Tensor:
    """The inverse of `float32_keys` (the map is an involution)."""
    return float32_keys(keys.view(torch.float32)).view(torch.float32)


def _bits(value: float) -> int:
    return struct.unpack("<i", struct.pack("<f", value))[0]


def _key(value: float) -> int:
    bits = _bits(value)
    return bits ^ 0x7FFFFFFF if bits < 0 else bits


def _float(key: int) -> float:
    bits = key ^ 0x7FFFFFFF if key < 0 else key
    return struct.unpack("<f", struct.pack("<i", bits))[0]


_SMALLEST_NORMAL = 2.0 ** -126
_POSITIVE_NORMAL_KEY = _key(_SMALLEST_NORMAL)
_NEGATIVE_NORMAL_KEY = _key(-_SMALLEST_NORMAL)
_KEY_MINUS_INF, _KEY_PLUS_INF = _key(-float("inf")), _key(float("inf"))


_scratch = threading.local()


def _scratch_like(x: Tensor) -> Tensor:
    """A float32 tensor of `x`'s size on its device, reused by every call of this thread: the
    window's temporaries cost no allocation (a fresh large tensor's first touch costs several
    times the pass that fills it). Holds the largest layer's size."""
    buf = getattr(_scratch, "buffer", None)
    if buf is None or buf.numel() < x.numel() or buf.device != x.device:
        buf = _scratch.buffer = torch.empty(x.numel(), dtype=torch.float32, device=x.device)
    return buf[:x.numel()]


def _bucket_of_rank(keys: Tensor, rank: int) -> int:
    """Level 1: the top-16-bit bucket (as a signed key prefix) of the `rank`-th smallest key."""
    top = (keys >> _BUCKET_BITS) + (1 << (31 - _BUCKET_BITS))  # 0 .. 65535
    counts = torch.bincount(top, minlength=1 << (32 - _BUCKET_BITS)).cumsum_(0)
    bucket = int(torch.searchsorted(counts, rank + 1))  # first bucket whose running count passes rank
    return bucket - (1 << (31 - _BUCKET_BITS))


def _window_bins(x: Tensor, first: int, last: int) -> Tensor:
    """Each element's bin in the window of keys `first + 1 .. last - 1`: 0 for a key <= `first`,
    `key - first` inside, `last - first` for a key >= `last` (int32). Cut on the floats where both
    ends are normal floats of one sign (no NaN, no subnormal, no zero of the other sign)."""
    if _POSITIVE_NORMAL_KEY <= first and last <= _KEY_PLUS_INF:  # keys are the bit patterns
        clamped = torch.clamp(x, _float(first), _float(last), out=_scratch_like(x))
        return clamped.view(torch.int32).sub_(_bits(_float(first)))
    if _KEY_MINUS_INF <= first and last <= _NEGATIVE_NORMAL_KEY:  # keys are -1 - 2**31 - bits
        clamped = torch.clamp(x, _float(first), _float(last), out=_scratch_like(x))
        return clamped.view(torch.int32).sub_(_bits(_float(first))).neg_()
    return float32_keys(x).clamp_(first, last).sub_(first)


def _window(x: Tensor, start: int, ranks: tuple[int, ...]) -> list[int | None]:
    """Level 2: the keys of `ranks` that lie in the window of `_WINDOW` keys from key `start` on
    (None for a rank outside it)."""
    # NaN-free keys lie in -inf .. +inf: a window there, its ends one key further (no int32 overflow)
    start = min(max(start, _KEY_MINUS_INF), _KEY_PLUS_INF + 1 - _WINDOW)
    counts = torch.bincount(_window_bins(x, start - 1, start + _WINDOW), minlength=_WINDOW + 2).cumsum_(0)
    found = torch.searchsorted(counts, torch.tensor([r + 1 for r in ranks], dtype=counts.dtype)).tolist()
    return [start - 1 + j if 1 <= j <= _WINDOW else None for j in found]


def order_statistics(x: Tensor, lo: int, hi: int, hint: tuple[int, int] | None = None
                     ) -> tuple[Tensor, Tensor, tuple[int, int]]:
    """`(lo-th, hi-th, keys)`: the `lo`-th and `hi`-th smallest (0-based, `hi` is `lo` or `lo + 1`)
    of the NaN-free float32 tensor `x` as 0-d tensors, bit for bit elements of `x`, and their keys,
    to pass as `hint` next time (any two ints: windows are placed around them)."""
    x = x.reshape(-1)
    ranks = (lo,) if hi == lo else (lo, hi)
    found = _window(x, hint[0] - _WINDOW // 4, ranks) if hint is not None else [None]
    if found[0] is None:  # no hint, or the window around it misses the lo-th key: level 1
        bucket = _bucket_of_rank(float32_keys(x), lo)
        found = _window(x, (bucket << _BUCKET_BITS) - _WINDOW // 4, ranks)
    key_lo = found[0]
    # level 1 placed the window on the bucket that holds the lo-th key, so the window holds it
    assert key_lo is not None, "the level-1 window misses the key it was placed on"
    key_hi = key_lo if hi == lo else found[1]
    if key_hi is None and hint is not None and hint[1] != hint[0]:  # a window around the last hi-th
        key_hi = _window(x, hint[1] - _WINDOW // 4, (hi,))[0]
    below = _float(key_lo)
    if key_hi is None:  # the windows miss the hi-th: it is the next value present (ties are inside)
        inf = torch.full((), float("inf"), dtype=x.dtype, device=x.device)
        above = float(torch.where(x > below, x, inf, out=_scratch_like(x)).amin())
        key_hi = _key(above)
    else:
        above = _float(key_hi)
    values = torch.tensor([below, above], dtype=torch.float32, device=x.device)
    return values[0], values[1], (key_lo, key_hi)
