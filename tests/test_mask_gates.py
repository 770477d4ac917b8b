"""specc.mask on hand-written squeeze-excitation models (issue 21): the broadcast product of a gate is
understood (view(b, c, 1, 1), [:, :, None, None], unsqueeze, expand_as), a masked unit reaches its
consumers as exactly 0 under HAT (checked with hooks), and a forward specc cannot follow is refused
with the model's source line and a hint, leaving the model as it was."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import specc
from specc.analysis import AnalysisError

GATES = {
    "view": lambda y, b, c: y.view(b, c, 1, 1),
    "view_expand_as": None,  # senet.pytorch: x * y.view(b, c, 1, 1).expand_as(x)
    "index": lambda y, b, c: y[:, :, None, None],
    "unsqueeze": lambda y, b, c: y.unsqueeze(-1).unsqueeze(-1),
}


class SE(nn.Module):
    def __init__(self, channel: int, form: str, reduction: int = 4):
        super().__init__()
        self.form = form
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(channel, channel // reduction, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(channel // reduction, channel, bias=False), nn.Sigmoid())

    def forward(self, x):
        b, c, _, _ = x.size()
        y = self.fc(self.avg_pool(x).view(b, c))
        if self.form == "view_expand_as":
            return x * y.view(b, c, 1, 1).expand_as(x)
        if self.form == "bad_view":
            return x * y.view(b, -1, 1, 1)
        return x * GATES[self.form](y, b, c)


class Net(nn.Module):
    def __init__(self, form: str):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.se = SE(8, form)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.conv2(self.relu(self.se(self.bn(self.conv(x)))))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


@pytest.mark.parametrize("form", list(GATES))
@pytest.mark.parametrize("layer, unit, consumers", [
    ("conv", 3, ["se.fc.0", "conv2"]),   # the stream: into the gate's pooling and after the product
    ("se/fc/0", 1, ["se.fc.2"]),         # the gate's hidden unit (ReLU(0) = 0)
    ("se/fc/2", 5, ["conv2"]),           # a gate masked to 0 zeroes the product's channel
])
def test_hat_on_a_hand_written_se_model(form, layer, unit, consumers):
    torch.manual_seed(0)
    net = specc.mask(Net(form), "hat", output_dim=4)
    assert net.weighted_layer_names == ["conv", "se/fc/0", "se/fc/2", "conv2"]
    net.setup_task_id(1)
    with torch.no_grad():
        for emb in net.task_embedding_t.values():
            emb.weight.fill_(1.0)
        net.task_embedding_t[layer].weight[0, unit] = -100.0
    seen = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: seen.__setitem__(name, args[0].detach()))
             for name, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    net(torch.randn(2, 3, 6, 6), "train", s_max=400.0, batch_idx=2, num_batches=2)
    for h in hooks:
        h.remove()
    for c in consumers:
        assert torch.all(seen[c][:, unit] == 0), f"unit {unit} of {layer} reaches {c} non-zero"
        assert not torch.all(seen[c] == 0)


@pytest.mark.parametrize("scheme", ["hat"])
def test_an_unknown_view_is_refused_with_its_line_and_the_model_is_left_as_it_was(scheme):
    model = Net("bad_view")
    keys = list(model.state_dict())
    with pytest.raises(AnalysisError) as err:
        specc.mask(model, scheme)
    message = str(err.value)
    assert "test_mask_gates.py" in message and "y.view(b, -1, 1, 1)" in message and "x.size()" in message
    assert type(model) is Net and list(model.state_dict()) == keys
    with pytest.raises(AnalysisError):  # the same refusal again, not "a masked backbone already"
        specc.mask(model, scheme)


def test_wsn_on_a_hand_written_se_model():
    net = specc.mask(Net("view_expand_as"), "wsn", output_dim=4)
    assert net.weighted_layer_names == ["conv", "se/fc/0", "se/fc/2", "conv2"]
    net.setup_task_id(1)
    assert net(torch.randn(2, 3, 6, 6), "train", mask_percentage=0.5)[0].shape == (2, 4)


def test_wsn_masks_parameters_whatever_the_forward_does_to_units():
    """WSN masks only parameters: a view specc cannot follow (HAT refuses it, above) does not stop it;
    the masked network with all-ones masks computes the plain one."""
    torch.manual_seed(0)
    plain = Net("bad_view")
    x = torch.randn(2, 3, 6, 6)
    expected = plain(x)
    net = specc.mask(plain, "wsn", output_dim=4)
    assert net.weighted_layer_names == ["conv", "se/fc/0", "se/fc/2", "conv2"]
    net.setup_task_id(1)
    assert torch.equal(net(x, "train", mask_percentage=1.0)[0], expected)
