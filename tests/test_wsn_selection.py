"""WSN's gate by bracket select and radix select (issue 22): the order statistics and the masks are
exactly today's.

`specc.runtime.bracket.order_statistics` (the gate's, NumPy at hand) and
`specc.runtime.selection.order_statistics` (the radix select, without NumPy) are compared with a
sort, bit for bit, over random tensors with ties, repeated values, signed zeros, infinities and
subnormals, sizes 1 to 5000 (and layer-sized ones), every rank, and any hint (none, right, stale,
absurd). The gate on the CPU uses one of them for layers of at least `gates.RADIX_MIN_NUMEL` scores;
here that bound is lowered to 1 so that every size goes through it, and with each selector its masks
must be `torch.equal` to `scores >= torch.quantile(...)` (the definition; ties at the threshold kept,
NaN anywhere keeps nothing). Sequences of slowly changing scores take the reuse path (the window or
bracket around the last step's threshold; the whole tensor only on the first step) and abrupt
changes the fallback (the whole tensor again): both are counted, so that each path is known to run."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specc.runtime import bracket, gates, selection
from specc.runtime.gates import PercentileLayerParameterMaskingByScore, quantile_threshold
from specc.runtime.selection import float32_keys, keys_to_float32, order_statistics

# (the fixture lowering the radix bound holds for the whole test: nothing to reset per example)
SETTINGS = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

SPECIAL = [0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, 1e-40, -1e-40, 1e-45, 3.4e38, -3.4e38, 1e-30, 2.0 ** -126]


@st.composite
def score_tensors(draw, max_size=5000):
    n = draw(st.integers(1, max_size))
    kind = draw(st.sampled_from(["normal", "ties", "special", "tiny", "spread"]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    if kind == "normal":
        x = torch.randn(n, generator=g) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    elif kind == "ties":  # a few values, many times each
        values = torch.randn(draw(st.integers(1, 5)), generator=g)
        x = values[torch.randint(len(values), (n,), generator=g)]
    elif kind == "special":
        pool = torch.tensor(SPECIAL + [0.5, -0.25], dtype=torch.float32)
        x = pool[torch.randint(len(pool), (n,), generator=g)]
    elif kind == "tiny":  # around zero: both signs, subnormals, far apart in key space
        x = torch.randn(n, generator=g) * torch.tensor(10.0).pow(-torch.randint(0, 44, (n,), generator=g).float())
    else:  # uniform over the bit patterns of finite floats
        x = torch.randint(-2139095040, 2139095040, (n,), generator=g, dtype=torch.int32).view(torch.float32)
        x = torch.where(x.isnan(), torch.zeros_like(x), x)
    return x.contiguous()


def _reference(x: torch.Tensor, rank: int) -> torch.Tensor:
    return x.sort().values[rank]


def _ranks(x: torch.Tensor, data) -> tuple[int, int]:
    """A rank `lo` of `x` and `hi`: `lo` or the next (as the gate's threshold needs them)."""
    lo = data.draw(st.integers(0, x.numel() - 1))
    return lo, data.draw(st.sampled_from([lo, min(lo + 1, x.numel() - 1)]))


@SETTINGS
@given(x=score_tensors(), data=st.data())
def test_order_statistics_equal_a_sort(x, data):
    lo, hi = _ranks(x, data)
    true_keys = [int(float32_keys(_reference(x, r).reshape(1))) for r in (lo, hi)]
    near = st.sampled_from([0, 100_000, -5_000_000])
    hint = data.draw(st.one_of(
        st.none(),
        st.tuples(st.sampled_from(true_keys), st.sampled_from(true_keys)),
        st.tuples(near, near).map(lambda d: (true_keys[0] + d[0], true_keys[1] + d[1])),
        st.tuples(st.sampled_from([-(2**31), 2**31 - 1, 0]), st.sampled_from([-(2**31), 2**31 - 1, 0]))))
    below, above, keys = order_statistics(x, lo, hi, hint)
    assert below == _reference(x, lo) and above == _reference(x, hi)  # -0.0 == 0.0: the same threshold
    assert keys == (int(float32_keys(below.reshape(1))), int(float32_keys(above.reshape(1))))
    assert (x == below).any() and (x == above).any()  # elements of x


@SETTINGS
@given(x=score_tensors(), data=st.data())
def test_bracket_order_statistics_equal_a_sort(x, data):
    lo, hi = _ranks(x, data)
    true = [float(_reference(x, r)) for r in (lo, hi)]
    moves = st.sampled_from([0.0, 1e-40, 1e-6, 1.0, 1e30, math.inf, math.nan])
    hint = data.draw(st.one_of(
        st.none(),
        st.tuples(st.sampled_from(true), st.sampled_from(true), moves),
        st.tuples(moves, moves, moves).map(lambda d: (true[0] - d[0], true[1] + d[1], d[2])),
        st.tuples(st.sampled_from(SPECIAL + [math.nan]), st.sampled_from(SPECIAL), moves)))
    below, above, next_hint = bracket.order_statistics(x, lo, hi, hint)
    assert below == _reference(x, lo) and above == _reference(x, hi)  # -0.0 == 0.0: the same threshold
    # the elements in key order (-0.0 before +0.0), as the radix select returns them
    keys = float32_keys(x).sort().values
    assert torch.equal(float32_keys(torch.stack([below, above])), keys[[lo, hi]])
    assert next_hint[:2] == (float(below), float(above)) and next_hint[2] >= 0


def test_bracket_answers_none_for_a_nan():
    x = torch.randn(3000)
    _, _, hint = bracket.order_statistics(x, 1499, 1500)
    for i in (0, 1500, 2999):
        y = x.clone()
        y[i] = math.nan
        assert bracket.order_statistics(y, 1499, 1500, hint) is None  # the NaN lies inside the bracket
        assert bracket.order_statistics(y, 1499, 1500) is None


def test_keys_order_as_the_floats_and_invert():
    x = torch.tensor(sorted(set(SPECIAL)) + [-2.0, 2.0], dtype=torch.float32).sort().values
    keys = float32_keys(x)
    assert torch.all(keys[1:] >= keys[:-1])
    assert torch.equal(keys_to_float32(keys).view(torch.int32), x.view(torch.int32))


@pytest.fixture(params=["bracket", "radix"])
def radix_everywhere(request, monkeypatch):
    """The gate's fast selection for every size, with each selector (`request.param`)."""
    monkeypatch.setattr(gates, "RADIX_MIN_NUMEL", 1)
    monkeypatch.setattr(gates, "SELECT", {"bracket": bracket.order_statistics,
                                          "radix": selection.order_statistics}[request.param])
    gates._HINTS.clear()
    yield request.param
    gates._HINTS.clear()


def test_the_gate_selects_by_bracket_with_numpy():
    assert gates.SELECT is bracket.order_statistics


def _reference_mask(scores: torch.Tensor, c: float) -> torch.Tensor:
    return (scores >= torch.quantile(scores.flatten(), 1 - c)).to(scores.dtype)


@SETTINGS
@given(x=score_tensors(), c=st.floats(0.0, 1.0, exclude_min=True), nan=st.booleans(), data=st.data())
def test_gate_masks_equal_torch_quantile(radix_everywhere, x, c, nan, data):
    if nan:
        x[data.draw(st.integers(0, x.numel() - 1))] = math.nan
    scores = x.reshape(1, -1) if x.numel() % 7 else x.reshape(7, -1)
    mask = PercentileLayerParameterMaskingByScore.apply(scores, c)
    assert torch.equal(mask, _reference_mask(scores, c))
    t, ref = quantile_threshold(scores, 1 - c), torch.quantile(scores.flatten(), 1 - c)
    assert (t.isnan() and ref.isnan()) or torch.equal(t, ref)


class _LevelOneCount:
    """Selections over the whole tensor: the radix select's level 1, the bracket select's partition."""

    def __init__(self, monkeypatch, selector: str):
        self.calls = 0
        module, name = (selection, "_bucket_of_rank") if selector == "radix" else (bracket, "_pick")
        real = getattr(module, name)

        def counted(values, rank):
            self.calls += values.size >= 256 * 576 // 2 if selector == "bracket" else 1  # not a bracket's few
            return real(values, rank)

        monkeypatch.setattr(module, name, counted)


# (low, high, step): the threshold moves by far less than the window's 2**16 keys below and
# 3 * 2**16 above it per step; positive and negative normal floats (windows cut on the floats) and
# values around zero, subnormals included (windows on the integer keys)
DRIFTS = [(0.5, 1.0, 1e-5), (-1.0, -0.5, 1e-5), (-1e-37, 1e-37, 1e-44)]


@pytest.mark.parametrize("low,high,step", DRIFTS)
@pytest.mark.parametrize("c", [0.5, 0.1, 1.0])
def test_slowly_changing_scores_reuse_the_last_threshold(radix_everywhere, monkeypatch, c, low, high, step):
    """Small steps of the scores: level 1 runs on the first step only; every mask is exact."""
    count = _LevelOneCount(monkeypatch, radix_everywhere)
    g = torch.Generator().manual_seed(0)
    scores = torch.nn.Parameter(torch.empty(256, 576).uniform_(low, high, generator=g))
    for _ in range(8):
        mask = PercentileLayerParameterMaskingByScore.apply(scores, c)
        assert torch.equal(mask, _reference_mask(scores.detach(), c))
        with torch.no_grad():
            scores.add_(torch.randn(scores.shape, generator=g), alpha=step)
    assert count.calls == 1


@pytest.mark.parametrize("c", [0.5, 0.3])
def test_abrupt_changes_fall_back(radix_everywhere, monkeypatch, c):
    """New scores in the same storage each step: the hinted window misses, level 1 runs again (the
    radix select's on all 5 later steps; the bracket select widens its bracket 16-fold thrice before
    partitioning the whole, which catches one of these moves)."""
    count = _LevelOneCount(monkeypatch, radix_everywhere)
    g = torch.Generator().manual_seed(1)
    scores = torch.empty(128, 600)
    for step in range(6):
        scores.copy_(torch.randn(scores.shape, generator=g) * 10.0 ** (3 * (step % 3) - 3) + step)
        mask = PercentileLayerParameterMaskingByScore.apply(scores, c)
        assert torch.equal(mask, _reference_mask(scores, c))
    assert count.calls >= (5 if radix_everywhere == "radix" else 4)


def test_a_layer_sized_tensor_without_lowering_the_bound():
    """ResNet-18's largest layer (2359296 scores) through the gate as WSN calls it: the bracket path."""
    assert 512 * 4608 >= gates.RADIX_MIN_NUMEL
    g = torch.Generator().manual_seed(2)
    scores = torch.empty(512, 4608)
    torch.nn.init.kaiming_uniform_(scores, a=math.sqrt(5), generator=g)
    for c in (0.5, 0.05):
        assert torch.equal(PercentileLayerParameterMaskingByScore.apply(scores, c), _reference_mask(scores, c))


def test_without_numpy_the_gate_keeps_the_radix_select():
    """torch runs without NumPy (a warning at import): then the gate imports, selects by radix, and
    its masks are still those of torch.quantile's threshold."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import sys, warnings
        sys.modules["numpy"] = None                      # `import numpy` raises ImportError
        warnings.simplefilter("ignore")
        import torch
        from specc.runtime import gates, selection
        assert gates.SELECT is selection.order_statistics, gates.SELECT
        g = torch.Generator().manual_seed(0)
        scores = torch.randn(256, 300, generator=g)
        for c in (0.5, 0.2):
            mask = gates.PercentileLayerParameterMaskingByScore.apply(scores, c)
            reference = (scores >= torch.quantile(scores.flatten(), 1 - c)).float()
            assert torch.equal(mask, reference)
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_each_selector_reads_only_its_own_hints(monkeypatch):
    """The selector changed between two steps on the same scores (hints kept): each reads its own."""
    gates._HINTS.clear()
    g = torch.Generator().manual_seed(3)
    scores = torch.randn(256, 300, generator=g)
    for select in (bracket.order_statistics, selection.order_statistics, bracket.order_statistics):
        monkeypatch.setattr(gates, "SELECT", select)
        assert torch.equal(PercentileLayerParameterMaskingByScore.apply(scores, 0.5), _reference_mask(scores, 0.5))
    gates._HINTS.clear()
