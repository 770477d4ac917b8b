"""WSN's masked layer forms (`specc.runtime.schemes.wsn.WSN_FORMS`) against the plain product they
replace, `weight * mask` under autograd (the reference, as the forms computed it before
`MaskedWeight`): the same output and the same gradients of the input, weight, bias and scores
(through the gate's straight-through rule), bit for bit (`torch.equal`). Each in a plain backward
(the weight's gradient written over the incoming one), in a backward that builds a graph
(`create_graph`: a fresh tensor), with frozen weights and with masks that take no gradient (the
test stage's stored masks)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from specc.runtime.gates import PercentileLayerParameterMaskingByScore as Gate
from specc.runtime.schemes import wsn


def _reference(kind: str, x, weight, bias, weight_mask, bias_mask):
    b = None if bias is None or bias_mask is None else bias * bias_mask
    if kind == "linear":
        return F.linear(x, weight * weight_mask, b)
    conv = F.conv2d if kind == "conv2d" else F.conv1d
    return conv(x, weight * weight_mask.view_as(weight), b, 2, 1, 1, 2)


def _form(kind: str, x, weight, bias, weight_mask, bias_mask):
    form, attributes = wsn.WSN_FORMS[kind]
    return form(x, weight, bias, weight_mask, bias_mask, *((2, 1, 1, 2) if attributes else ()))


SHAPES = {"linear": ((5, 12), (7, 12)), "conv2d": ((3, 4, 9, 9), (6, 2, 3, 3)), "conv1d": ((3, 4, 11), (6, 2, 3))}


def _leaves(kind: str, with_bias: bool, frozen_weight: bool, seed: int):
    g = torch.Generator().manual_seed(seed)
    x_shape, w_shape = SHAPES[kind]
    x = torch.randn(x_shape, generator=g, requires_grad=True)
    weight = torch.randn(w_shape, generator=g, requires_grad=not frozen_weight)
    bias = torch.randn(w_shape[0], generator=g, requires_grad=True) if with_bias else None
    scores = torch.randn(w_shape[0], weight[0].numel(), generator=g, requires_grad=True)
    bias_scores = torch.randn(w_shape[0], generator=g, requires_grad=True)
    upstream = torch.randn(_reference(kind, x, weight, bias, torch.ones_like(scores), None).shape, generator=g)
    return x, weight, bias, scores, bias_scores, upstream


def _run(fn, kind, leaves, masks_take_grad: bool, create_graph: bool):
    x, weight, bias, scores, bias_scores, upstream = leaves
    if masks_take_grad:
        wm, bm = Gate.apply(scores, 0.5), Gate.apply(bias_scores, 0.5)
    else:
        wm, bm = Gate.apply(scores, 0.5).detach(), Gate.apply(bias_scores, 0.5).detach()
    out = fn(kind, x, weight, bias, wm, bm)
    inputs = [t for t in (x, weight, bias, scores, bias_scores) if t is not None and t.requires_grad]
    grads = torch.autograd.grad(out, inputs, upstream, create_graph=create_graph, allow_unused=True)
    return out.detach(), [None if g is None else g.detach() for g in grads]


@pytest.mark.parametrize("kind", list(SHAPES))
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("mode", ["plain", "create_graph", "frozen_weight", "stored_masks"])
def test_masked_forms_equal_the_plain_product(kind, with_bias, mode):
    leaves = _leaves(kind, with_bias, frozen_weight=mode == "frozen_weight", seed=hash((kind, with_bias)) % 1000)
    kwargs = dict(masks_take_grad=mode != "stored_masks", create_graph=mode == "create_graph")
    out, grads = _run(_form, kind, leaves, **kwargs)
    ref_out, ref_grads = _run(_reference, kind, leaves, **kwargs)
    assert torch.equal(out, ref_out)
    assert len(grads) == len(ref_grads)
    for got, want in zip(grads, ref_grads):
        assert (got is None) == (want is None)
        if want is not None:
            assert torch.equal(got, want)
            assert torch.equal(got.view(torch.int32), want.view(torch.int32))  # signed zeros too


def test_a_second_order_gradient_flows_through_the_masked_weight():
    """create_graph: the weight's gradient is a function of the incoming one (not written over it)."""
    x, weight, bias, scores, bias_scores, _ = _leaves("linear", True, False, 3)
    mask = Gate.apply(scores, 0.5)
    out = wsn.wsn_linear(x, weight, bias, mask, None)
    (gw,) = torch.autograd.grad(out.square().sum(), [weight], create_graph=True)
    (gx,) = torch.autograd.grad(gw.sum(), [x])
    ref_out = F.linear(x, weight * mask)
    (ref_gw,) = torch.autograd.grad(ref_out.square().sum(), [weight], create_graph=True)
    (ref_gx,) = torch.autograd.grad(ref_gw.sum(), [x])
    assert torch.equal(gw, ref_gw) and torch.equal(gx, ref_gx)
