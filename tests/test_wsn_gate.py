"""The WSN gate and its quantile threshold, checked against torch.quantile and independent references."""

from __future__ import annotations

import math
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from specc.runtime.gates import PercentileLayerParameterMaskingByScore, quantile_threshold

gate = PercentileLayerParameterMaskingByScore.apply

DTYPES = [torch.float32, torch.float64]


@st.composite
def score_tensors(draw, integer_valued: bool | None = None):
    """Random 1- to 3-dimensional score tensors; integer-valued ones are full of ties."""
    shape = draw(st.lists(st.integers(1, 7), min_size=1, max_size=3))
    dtype = draw(st.sampled_from(DTYPES))
    if integer_valued is None:
        integer_valued = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    if integer_valued:
        high = draw(st.integers(1, 4))
        scores = torch.randint(-high, high + 1, shape, generator=gen).to(dtype)
    else:
        scale = draw(st.sampled_from([1e-6, 1.0, 1e6]))
        scores = (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)
    return scores


def reference_mask(scores: torch.Tensor, percentage: float) -> torch.Tensor:
    return (scores >= torch.quantile(scores.flatten(), 1 - percentage)).to(scores.dtype)


keep_open = st.floats(0.0, 1.0, exclude_min=True)  # (0, 1]
keep_closed = st.floats(0.0, 1.0) | st.sampled_from([0.0, 1.0, 0.5, 0.25, 0.1, 0.7, 1 / 3])


@settings(max_examples=150, deadline=None)
@given(scores=score_tensors(), percentage=keep_open)
def test_mask_equals_torch_quantile_definition(scores, percentage):
    mask = gate(scores, percentage)
    assert mask.shape == scores.shape
    assert mask.dtype == scores.dtype
    assert torch.equal(mask, reference_mask(scores, percentage))


@settings(max_examples=150, deadline=None)
@given(scores=score_tensors(), q=keep_closed)
def test_threshold_is_bit_identical_to_torch_quantile(scores, q):
    ours = quantile_threshold(scores, q)
    theirs = torch.quantile(scores.flatten(), q)
    assert ours.shape == theirs.shape == ()
    assert ours.dtype == theirs.dtype
    # Same bits, not merely close: compare the integer views.
    int_view = torch.int32 if scores.dtype == torch.float32 else torch.int64
    assert torch.equal(ours.reshape(1).view(int_view), theirs.reshape(1).view(int_view))


@settings(max_examples=100, deadline=None)
@given(scores=score_tensors(integer_valued=True), percentage=keep_closed)
def test_mask_with_heavy_ties_including_zero_and_full_keep(scores, percentage):
    mask = gate(scores, percentage)
    assert torch.equal(mask, reference_mask(scores, percentage))
    # Ties are kept: every score equal to a kept score is kept too.
    kept = scores[mask.bool()]
    if kept.numel():
        assert bool(mask[scores >= kept.min()].all())


@pytest.mark.parametrize("dtype", DTYPES)
def test_rank_is_computed_in_the_scores_dtype(dtype):
    # n - 1 = 100, q = 0.53: in float32 the rank is 52.999996..., in float64 it is 53.0. With a
    # jump from 0 to 1 between sorted positions 52 and 53, the float32 rank interpolates to just
    # below 1 and the float64 rank gives exactly 1; torch uses the scores' dtype.
    scores = (torch.arange(101) >= 53).to(dtype)
    ours = quantile_threshold(scores, 0.53)
    assert torch.equal(ours, torch.quantile(scores, 0.53))
    if dtype == torch.float32:
        assert 0.99 < ours.item() < 1.0
    else:
        assert ours.item() == 1.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_edge_cases(dtype):
    one = torch.tensor([2.5], dtype=dtype)
    for q in (0.0, 0.3, 1.0):
        assert torch.equal(quantile_threshold(one, q), torch.tensor(2.5, dtype=dtype))
    assert torch.equal(gate(one, 0.3), torch.ones(1, dtype=dtype))

    scores = torch.tensor([[3.0, -1.0], [7.0, 0.5]], dtype=dtype)
    assert quantile_threshold(scores, 0.0).item() == -1.0  # minimum
    assert quantile_threshold(scores, 1.0).item() == 7.0  # maximum
    assert torch.equal(gate(scores, 1.0), torch.ones_like(scores))  # keep all
    # Keep fraction 0: q = 1, the threshold is the maximum, which is kept (>=).
    assert torch.equal(gate(scores, 0.0), (scores == 7.0).to(dtype))

    with_nan = torch.tensor([1.0, math.nan, 2.0], dtype=dtype)
    assert math.isnan(quantile_threshold(with_nan, 0.5).item())
    assert math.isnan(torch.quantile(with_nan, 0.5).item())
    assert torch.equal(gate(with_nan, 0.5), torch.zeros(3, dtype=dtype))

    assert gate(torch.empty(0, 4, dtype=dtype), 0.5).shape == (0, 4)


def test_invalid_inputs():
    with pytest.raises(ValueError, match="must be in the range"):
        quantile_threshold(torch.ones(3), 1.5)
    with pytest.raises(ValueError, match="must be in the range"):
        gate(torch.ones(3), 1.5)  # q = -0.5
    with pytest.raises(TypeError):
        quantile_threshold(torch.ones(3, dtype=torch.int64), 0.5)
    with pytest.raises(ValueError, match="non-empty"):
        quantile_threshold(torch.empty(0), 0.5)


@settings(max_examples=50, deadline=None)
@given(scores=score_tensors(), percentage=keep_open, seed=st.integers(0, 2**31 - 1))
def test_gradient_is_straight_through(scores, percentage, seed):
    scores = scores.clone().requires_grad_(True)
    upstream = torch.randn(
        scores.shape, generator=torch.Generator().manual_seed(seed), dtype=scores.dtype
    )
    mask = gate(scores, percentage)
    assert mask.requires_grad
    (grad,) = torch.autograd.grad(mask, scores, grad_outputs=upstream)
    assert torch.equal(grad, upstream)


def test_gradient_reaches_scores_through_a_masked_product():
    scores = torch.randn(4, 5, requires_grad=True)
    weight = torch.randn(4, 5)
    (weight * gate(scores, 0.5)).sum().backward()
    assert torch.equal(scores.grad, weight)


def _order_statistic_from_counts(cumulative: torch.Tensor, k: int) -> float:
    """k-th smallest (0-based) of integer data 0..L-1, from the cumulative level counts."""
    return float(torch.searchsorted(cumulative, torch.tensor(k), right=True))


def test_twenty_million_scores_beyond_torch_quantile():
    # torch.quantile refuses more than 2**24 elements. The reference here needs no sort: the data
    # are integers 0..999, so counting each level gives every order statistic exactly.
    n = 20_000_000
    gen = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 1000, (n,), generator=gen)
    scores = levels.to(torch.float32)
    cumulative = torch.bincount(levels, minlength=1000).cumsum(0)

    # 1. A rank straddling two levels: the upper order statistic is "the smallest score above".
    boundary = int(cumulative[499]) - 1  # last sorted index holding level 499
    q = (boundary + 0.5) / (n - 1)
    start = time.perf_counter()
    threshold = quantile_threshold(scores, q).item()
    elapsed = time.perf_counter() - start
    rank = q * (n - 1)  # beyond torch's domain the rank is float64, like Python's floats
    lo = math.floor(rank)
    below = _order_statistic_from_counts(cumulative, lo)
    above = _order_statistic_from_counts(cumulative, lo + 1)
    assert (below, above) == (499.0, 500.0)
    assert threshold == pytest.approx(below + (rank - lo) * (above - below), abs=1e-4)
    assert below < threshold < above

    # 2. The gate, with a rank inside a run of ties (both order statistics are the same level).
    start = time.perf_counter()
    mask = gate(scores, 0.3)
    elapsed += time.perf_counter() - start
    rank = (1 - 0.3) * (n - 1)
    lo = math.floor(rank)
    below = _order_statistic_from_counts(cumulative, lo)
    assert _order_statistic_from_counts(cumulative, lo + 1) == below
    assert mask.dtype == torch.float32
    assert torch.equal(mask, (scores >= below).float())
    assert int(mask.bool().sum()) == n - int(cumulative[int(below) - 1])

    # A sort-based quantile alone takes ~3 s at this size on a laptop-class CPU.
    assert elapsed < 20.0


RANK_BY_SPEC = """
network Small() {
    input features(6)
    fc1: linear(5) -> relu: ReLU() -> record
    fc2: linear(4) -> record
}
backbone WSNMaskSmall = Small
mask wsn(rank_by = "magnitude")
"""


def test_rank_by_magnitude_keeps_the_largest_absolute_scores(tmp_path):
    """`mask wsn(rank_by="magnitude")` (the WSN paper's ranking): each layer keeps the parameters whose
    |score| reaches the (1 - c) quantile of all |score| (torch.quantile), and the straight-through
    gradient reaches each score times its sign; the default ranking keeps the largest scores."""
    import specc
    from specc.emit.export import export_source
    from specc.frontend.load import load_program

    spec = tmp_path / "small_wsn.cl"
    spec.write_text(RANK_BY_SPEC)
    default_spec = tmp_path / "small_default.cl"
    default_spec.write_text(RANK_BY_SPEC.replace('rank_by = "magnitude"', ""))
    namespace: dict = {}
    exec(compile(export_source(load_program(str(spec))), "exported", "exec"), namespace)
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(1))
    for model in (specc.build(spec), namespace["WSNMaskSmall"]()):
        model.setup_task_id(1)
        g = torch.Generator().manual_seed(2)
        with torch.no_grad():
            for name in model.weighted_layer_names:
                s = model.weight_score_t[name].weight
                s.copy_(torch.randn(s.shape, generator=g))
        c = 0.4
        feature, weight_mask, bias_mask, _ = model(x, "train", mask_percentage=c)
        seeds = {}
        for name in model.weighted_layer_names:
            s = model.weight_score_t[name].weight
            magnitude = s.detach().abs()
            expected = (magnitude >= torch.quantile(magnitude.flatten(), 1 - c)).float()
            assert torch.equal(weight_mask[name], expected), name
            assert not torch.equal(expected, reference_mask(s.detach(), c))  # the ranking matters here
            seeds[name] = torch.randn(s.shape, generator=g)
        sum((weight_mask[n] * seeds[n]).sum() for n in seeds).backward()
        for name in model.weighted_layer_names:
            s = model.weight_score_t[name].weight
            assert torch.equal(s.grad, seeds[name] * s.detach().sign()), name
    plain = specc.build(default_spec)
    plain.setup_task_id(1)
    with torch.no_grad():
        for name in plain.weighted_layer_names:
            plain.weight_score_t[name].weight.copy_(model.weight_score_t[name].weight)
    _, default_mask, _, _ = plain(x, "train", mask_percentage=0.4)
    for name in plain.weighted_layer_names:
        s = plain.weight_score_t[name].weight.detach()
        assert torch.equal(default_mask[name], reference_mask(s, 0.4)), name
