r"""HAT's and WSN's gradient rules as functions of a backbone, for any training loop.

CLArena's HAT and WSN algorithms change the gradients between `backward()` and the optimizer step
(`layer.weight.grad.data *= ...`). These functions compute the same factors, in the same operation
order (so the results are bit for bit CLArena's on plain tensors), and apply them in place to
gradients that are plain tensors (one process, DistributedDataParallel, which has averaged them
during backward) or DTensors (FSDP2's `fully_shard`: each rank scales its own shard; the factors
are made whole on every rank from the whole masks, then laid out like the gradient, without
communication). Call them after `loss.backward()` and before `optimizer.step()`:

    loss.backward()
    rules.clip_hat_gradients(backbone, cumulative_mask)                      # HAT's Eq. (2)
    rules.compensate_hat_embedding_gradients(backbone, s_max, batch_idx, num_batches, clamp_threshold)
    optimizer.step()

    loss.backward()
    rules.clip_wsn_gradients(backbone, cumulative_weight_mask, cumulative_bias_mask)   # WSN's Eq. (4)
    optimizer.step()

`cumulative_mask` is HAT's {layer name: unit mask} of the previous tasks (the elementwise max of
their `store_mask()` results; zeros for the first task); WSN's cumulative masks are the elementwise
max of the previous tasks' weight and bias masks (None for a layer without bias).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .distributed import like
from .schemes.hat_backbone import anneal_scalar

__all__ = ["hat_adjustment_rates", "clip_hat_gradients", "compensate_hat_embedding_gradients",
           "clip_wsn_gradients"]

HAT_MODES = ("hat", "hat_random", "hat_const_alpha", "hat_const_1")


def _scale_grad(param: nn.Parameter | None, factor: Tensor) -> None:
    if param is None or param.grad is None:
        return
    with torch.no_grad():
        param.grad.mul_(like(param.grad, factor))


def hat_adjustment_rates(backbone: nn.Module, cumulative_mask: dict[str, Tensor], mode: str = "hat",
                         alpha: float | None = None) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    r"""The factors HAT multiplies each weighted layer's weight and bias gradients by, from the
    cumulative unit mask of previous tasks spread onto the parameters with the 'min' aggregation
    (`backbone.get_layer_measure_parameter_wise`): 'hat' (1 - m: parameters of previous tasks
    frozen), 'hat_random' (uniform(0, 1) where m is 1), 'hat_const_alpha' (`alpha` where m is 1),
    'hat_const_1' (no constraint). Returns `(weight_rates, bias_rates)` keyed by layer name (bias
    only for layers with a bias), whole tensors. With 'hat_random' every rank must draw the same
    numbers (same seed), as for any random choice in data-parallel training."""
    if mode not in HAT_MODES:
        raise ValueError(f"mode must be one of {HAT_MODES}, not {mode!r}")
    if mode == "hat_const_alpha" and alpha is None:
        raise ValueError("alpha must be given for mode 'hat_const_alpha'")
    weight_rates, bias_rates = {}, {}
    for layer_name in backbone.weighted_layer_names:
        layer = backbone.get_layer_by_name(layer_name)
        weight_mask, bias_mask = backbone.get_layer_measure_parameter_wise(
            neuron_wise_measure=cumulative_mask, layer_name=layer_name, aggregation_mode="min")
        if mode == "hat":
            rate_w, rate_b = 1 - weight_mask, 1 - bias_mask
        elif mode == "hat_random":
            rate_w = torch.rand_like(weight_mask) * weight_mask + (1 - weight_mask)
            rate_b = torch.rand_like(bias_mask) * bias_mask + (1 - bias_mask)
        elif mode == "hat_const_alpha":
            rate_w = alpha * torch.ones_like(weight_mask) * weight_mask + (1 - weight_mask)
            rate_b = alpha * torch.ones_like(bias_mask) * bias_mask + (1 - bias_mask)
        else:
            rate_w = torch.ones_like(weight_mask) * weight_mask + (1 - weight_mask)
            rate_b = torch.ones_like(bias_mask) * bias_mask + (1 - bias_mask)
        weight_rates[layer_name] = rate_w
        if layer.bias is not None:
            bias_rates[layer_name] = rate_b
    return weight_rates, bias_rates


def clip_hat_gradients(backbone: nn.Module, cumulative_mask: dict[str, Tensor], mode: str = "hat",
                       alpha: float | None = None) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    r"""HAT's gradient clipping (HAT paper Eq. (2); CLArena's `clip_grad_by_adjustment`): multiply
    each weighted layer's weight and bias gradient in place by its adjustment rate
    (hat_adjustment_rates). Returns the rates."""
    weight_rates, bias_rates = hat_adjustment_rates(backbone, cumulative_mask, mode, alpha)
    for layer_name, rate in weight_rates.items():
        layer = backbone.get_layer_by_name(layer_name)
        _scale_grad(layer.weight, rate)
        if layer_name in bias_rates:
            _scale_grad(layer.bias, bias_rates[layer_name])
    return weight_rates, bias_rates


def compensate_hat_embedding_gradients(backbone: nn.Module, s_max: float, batch_idx: int, num_batches: int,
                                       clamp_threshold: float) -> None:
    r"""HAT's embedding gradient compensation (HAT paper Sec. 2.5; CLArena's
    `compensate_task_embedding_gradients`): multiply each task embedding's gradient in place by
    `s_max / s * (cosh(clamp(s * e, -c, c)) + 1) / (cosh(e) + 1)`, `s` the annealed scale of
    batch `batch_idx`. Elementwise, so it runs on FSDP2 shards as they are; an embedding shared by
    several layers (tied shortcuts) is compensated once."""
    s = anneal_scalar(s_max, batch_idx, num_batches)
    seen: set[int] = set()
    for te in backbone.task_embedding_t.values():
        if id(te) in seen or te.weight.grad is None:
            continue
        seen.add(id(te))
        with torch.no_grad():
            e = te.weight.detach()
            num = torch.cosh(torch.clamp(s * e, -clamp_threshold, clamp_threshold)) + 1
            den = torch.cosh(e) + 1
            compensation = s_max / s * num / den
            te.weight.grad.mul_(compensation)


def clip_wsn_gradients(backbone: nn.Module, cumulative_weight_mask: dict[str, Tensor],
                       cumulative_bias_mask: dict[str, Tensor | None]) -> None:
    r"""WSN's gradient rule (WSN paper Eq. (4); CLArena's WSN `clip_grad_by_mask`): multiply each
    weighted layer's weight and bias gradient in place by 1 - the cumulative mask of previous
    tasks, so the parameters they selected stay fixed."""
    for layer_name in backbone.weighted_layer_names:
        layer = backbone.get_layer_by_name(layer_name)
        # (a conv's mask may be laid out as its scores are, (out, in * kh * kw): same order)
        _scale_grad(layer.weight, (1 - cumulative_weight_mask[layer_name]).reshape(layer.weight.shape))
        if layer.bias is not None and cumulative_bias_mask.get(layer_name) is not None:
            _scale_grad(layer.bias, 1 - cumulative_bias_mask[layer_name])
