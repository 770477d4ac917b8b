"""HAT's unit-wise measures spread onto a layer's parameters where the layer's inputs follow the
graph rather than CLArena's list of weighted layers (after a flatten, a grouped convolution, a
concat): `HATMasked.get_layer_measure_parameter_wise` calls it, and `specc export` copies it into an
exported module with the segments written out (`export_class` in hat.py)."""
from __future__ import annotations

import torch
from torch import Tensor, nn


def _graph_measure(neuron_wise_measure: dict[str, Tensor], layer_name: str, layer: nn.Module, segments,
                   aggregation_mode: str):
    aggregate = {"min": torch.minimum, "max": torch.maximum, "mean": lambda a, b: (a + b) / 2}.get(aggregation_mode)
    if aggregate is None:
        raise ValueError(f"The aggregation method {aggregation_mode} is not supported.")
    weight = layer.weight
    own = neuron_wise_measure[layer_name]
    spread = (-1, 1) + (1,) * (weight.dim() - 2)
    own_b = own.view(*spread).expand(weight.shape)
    # The measure of every input unit of the layer (NaN-free: unowned inputs get a flag instead).
    values, owned = [], []
    inputs = weight.shape[1] * getattr(layer, "groups", 1)
    known = sum(seg.size * seg.repeat for seg in segments if seg.size is not None)
    for seg in segments:
        # an input of unknown size (the network's input) is what the others leave of the layer's inputs
        count = seg.size * seg.repeat if seg.size is not None else inputs - known
        if seg.owner is None:
            values.append(torch.zeros(count, device=own.device, dtype=own.dtype))
            owned.append(torch.zeros(count, device=own.device, dtype=torch.bool))
        else:
            units = neuron_wise_measure[seg.owner]
            if seg.size is not None and (seg.start or seg.size != units.shape[0]):
                units = units[seg.start:seg.start + seg.size]  # part of the owner's units (v's of qkv)
            values.append(units.repeat_interleave(seg.repeat))
            owned.append(torch.ones(count, device=own.device, dtype=torch.bool))
    pre, has = torch.cat(values), torch.cat(owned)
    groups = getattr(layer, "groups", 1)
    out_units, in_per_group = weight.shape[0], weight.shape[1]
    if groups != 1:
        # output channel i of a grouped convolution reads input channels of its group only
        base = (torch.arange(out_units, device=own.device) // (out_units // groups)) * in_per_group
        index = base[:, None] + torch.arange(in_per_group, device=own.device)[None, :]
        pre, has = pre[index], has[index]
        shape = (out_units, in_per_group) + (1,) * (weight.dim() - 2)
    else:
        shape = (1, -1) + (1,) * (weight.dim() - 2)
    pre_b = pre.view(*shape).expand(weight.shape)
    has_b = has.view(*shape).expand(weight.shape)
    weight_measure = torch.where(has_b, aggregate(own_b, pre_b), own_b)
    return weight_measure, own
