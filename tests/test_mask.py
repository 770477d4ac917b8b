"""`specc.mask` on hand-written models: the same passes as for generated classes, so a hand-written
network masked by specc.mask equals its spec-built equivalent (weighted layers, state_dict, masks,
outputs, activations, gradients, parameter-wise measures), bit for bit.

The hand-written models: the MLP of tests/reference/plain.py (CLArena's layout), torchvision's
ResNet-18 of tests/reference/peers (batch norm in the projection shortcut, one ReLU module per
block called twice), and an AlexNet-like network written here in the layout of specs/alexnet.cl."""
from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

from reference import plain
from reference.peers import torchvision_resnet18 as tv

import specc

STAGES = ("train", "validation", "test")


class AlexNetLike(nn.Module):
    """specs/alexnet.cl's network (32x32 input, no batch norm), hand-written."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 4)
        self.conv_activation1 = nn.ReLU()
        self.conv_dropout1 = nn.Dropout(0.2)
        self.conv_pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(64, 128, 3)
        self.conv_activation2 = nn.ReLU()
        self.conv_dropout2 = nn.Dropout(0.2)
        self.conv_pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(128, 256, 2)
        self.conv_activation3 = nn.ReLU()
        self.conv_dropout3 = nn.Dropout(0.5)
        self.conv_pool3 = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(256 * 2 * 2, 2048)
        self.fc_activation1 = nn.ReLU()
        self.fc_dropout1 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(2048, 64)
        self.fc_activation2 = nn.ReLU()
        self.fc_dropout2 = nn.Dropout(0.5)

    def forward(self, x):
        x = self.conv_pool1(self.conv_dropout1(self.conv_activation1(self.conv1(x))))
        x = self.conv_pool2(self.conv_dropout2(self.conv_activation2(self.conv2(x))))
        x = self.conv_pool3(self.conv_dropout3(self.conv_activation3(self.conv3(x))))
        x = torch.flatten(x, 1)
        x = self.fc_dropout1(self.fc_activation1(self.fc1(x)))
        return self.fc_dropout2(self.fc_activation2(self.fc2(x)))


def _generated(stem: str, cls: str, **kwargs):
    return getattr(importlib.import_module(f"generated.{stem}"), cls)(**kwargs)


CASES = {
    "mlp": (lambda: plain.MLP(input_dim=12, hidden_dims=[10, 8], output_dim=6, batch_normalization=True),
            lambda: _generated("mlp_hat", "HATMaskMLP", input_dim=12, hidden_dims=[10, 8], output_dim=6,
                               gate="sigmoid", batch_normalization="independent"),
            dict(batch_normalization="independent", output_dim=6), (5, 12)),
    "torchvision_resnet18": (lambda: tv.make(width=8),
                             lambda: _generated("torchvision_resnet18_hat", "HATMaskTorchvisionResNet18", width=8),
                             dict(output_dim=64), (3, 3, 32, 32)),
    "alexnet": (AlexNetLike,
                lambda: _generated("alexnet_hat", "HATMaskAlexNet", output_dim=64),
                dict(output_dim=64), (3, 3, 32, 32)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_masked_hand_written_model_equals_the_spec_built_one(case):
    make_plain, make_generated, options, shape = CASES[case]
    torch.manual_seed(0)
    ours = specc.mask(make_plain(), "hat", **options)
    spec = make_generated()
    assert type(ours).__name__.startswith("HATMask")
    assert ours.weighted_layer_names == spec.weighted_layer_names
    assert list(ours.state_dict()) == list(spec.state_dict())
    for net in (ours, spec):
        net.setup_task_id(1)
    ours.load_state_dict(spec.state_dict())
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    for stage in STAGES:
        if stage == "test":
            for net in (ours, spec):
                net.store_mask()
                if options.get("batch_normalization") == "independent":
                    net.store_bn()
        outs = []
        for net in (ours, spec):
            net.zero_grad()
            net.train(stage == "train")
            torch.manual_seed(2)  # dropout draws the same numbers in both
            kwargs = dict(s_max=400, batch_idx=2, num_batches=5) if stage == "train" else (
                dict(s_max=400) if stage == "validation" else dict(test_task_id=1))
            feature, mask, activations = net(x, stage, **kwargs)
            if stage == "train":
                (feature.square().sum() + sum(m.sum() for m in mask.values())).backward()
            outs.append((feature, mask, activations))
        (fa, ma, aa), (fb, mb, ab) = outs
        assert torch.equal(fa, fb), stage
        assert list(ma) == list(mb) and all(torch.equal(ma[k], mb[k]) for k in ma), stage
        assert list(aa) == list(ab) and all(torch.equal(aa[k], ab[k]) for k in aa), stage
        if stage == "train":
            grads = [(n, p.grad) for n, p in spec.named_parameters() if p.grad is not None]
            mine = dict(ours.named_parameters())
            assert grads and all(torch.equal(mine[n].grad, g) for n, g in grads)
    measure = {name: torch.rand(spec.get_layer_by_name(name).weight.shape[0]) for name in spec.weighted_layer_names}
    for name in spec.weighted_layer_names:
        for a, b in zip(ours.get_layer_measure_parameter_wise(measure, name, "min"),
                        spec.get_layer_measure_parameter_wise(measure, name, "min")):
            assert torch.equal(a, b), name


def test_wsn_on_a_hand_written_mlp_equals_the_spec_built_one():
    torch.manual_seed(0)
    ours = specc.mask(plain.MLP(input_dim=12, hidden_dims=[10], output_dim=6), "wsn")
    spec = _generated("mlp_wsn", "WSNMaskMLP", input_dim=12, hidden_dims=[10], output_dim=6)
    assert ours.weighted_layer_names == spec.weighted_layer_names
    assert sorted(ours.state_dict()) == sorted(spec.state_dict())
    ours.load_state_dict(spec.state_dict())
    x = torch.randn(4, 12)
    a = ours(x, "train", mask_percentage=0.4)
    b = spec(x, "train", mask_percentage=0.4)
    assert torch.equal(a[0], b[0])
    assert all(torch.equal(a[1][k], b[1][k]) for k in a[1])


def test_mask_keeps_a_models_own_modules_first_and_refuses_twice():
    model = AlexNetLike()
    names = list(model.state_dict())
    masked = specc.mask(model, "hat", output_dim=64)
    assert masked is model
    assert list(model.state_dict())[:len(names)] == names
    assert [k for k in model.state_dict() if k not in names] == [
        f"task_embedding_t.{n}.weight" for n in model.weighted_layer_names]
    with pytest.raises(ValueError, match="already"):
        specc.mask(model, "hat")
    with pytest.raises(ValueError, match="unknown scheme"):
        specc.mask(AlexNetLike(), "nope")


def test_mask_takes_the_options_the_schemes_declaration_gives():
    """The options are those of `mask SCHEME(...)` in a spec (specc/schemes), checked the same way."""
    with pytest.raises(TypeError, match="hat has no option 'gates'"):
        specc.mask(AlexNetLike(), "hat", gates="sigmoid")
    with pytest.raises(ValueError, match="gate must be 'sigmoid', got 'tanh'"):
        specc.mask(AlexNetLike(), "hat", gate="tanh")
    with pytest.raises(ValueError, match="batch_normalization must be none or 'shared' or 'independent' or 'off', got 'per-task'"):
        specc.mask(AlexNetLike(), "wsn", batch_normalization="per-task")
    with pytest.raises(ValueError, match="AmnesiacHAT cannot mask a built model: it builds its backups"):
        specc.mask(AlexNetLike(), "amnesiac_hat")
    # an option the declaration has and the old hand-listed signature did not
    folded = specc.mask(AlexNetLike(), "hat", fold_batch_norm=True, batch_normalization="independent")
    assert folded._specc_options["fold_batch_norm"] is True
    wsn = specc.mask(AlexNetLike(), "wsn", batch_normalization="off")
    assert not hasattr(wsn, "batch_normalization") or wsn.batch_normalization is None


def test_masked_forward_shows_the_models_own_source_lines():
    model = specc.mask(AlexNetLike(), "hat", output_dim=64)
    src = model.print_readable(print_output=False)
    assert "mask['conv1']" in src and "test_mask.py" in src
