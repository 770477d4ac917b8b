"""HATMaskAlexNet against an independent implementation of the HAT paper's network."""
from __future__ import annotations

import pytest
import torch

from reference.hat_alexnet import HATAlexNet

from generated.alexnet_hat import HATMaskAlexNet


def _load(ours: HATMaskAlexNet, ref: HATAlexNet) -> None:
    pairs = {"conv1": ref.c1, "conv2": ref.c2, "conv3": ref.c3, "fc1": ref.fc1, "fc2": ref.fc2}
    with torch.no_grad():
        for name, layer in pairs.items():
            ours.get_layer_by_name(name).weight.copy_(layer.weight)
            ours.get_layer_by_name(name).bias.copy_(layer.bias)
            ref_name = name.replace("conv", "c")
            ours.task_embedding_t[name].weight.copy_(ref.embeddings[ref_name].view(1, -1))


@pytest.mark.parametrize("input_size", [32, 28])
def test_same_network_as_the_papers(input_size):
    torch.manual_seed(0)
    ref = HATAlexNet(input_channels=3, input_size=input_size).eval()
    ours = HATMaskAlexNet(input_channels=3, input_size=input_size).eval()
    assert [n for n in ours.weighted_layer_names] == ["conv1", "conv2", "conv3", "fc1", "fc2"]
    assert ours.fc1.in_features == ref.fc1.in_features
    _load(ours, ref)
    ours.setup_task_id(1)
    x = torch.randn(4, 3, input_size, input_size)
    for s in (1.0, 400.0):  # fractional and (nearly) binary masks
        feature, mask, activations = ours(x, "validation", s_max=s)
        expected = ref(x, ref.masks(s))
        for name, m in ref.masks(s).items():
            assert torch.equal(mask[name], m)
        assert torch.equal(feature, expected)
        assert sorted(activations) == ["conv1", "conv2", "conv3", "fc1", "fc2"]
