"""Issue 6: HAT's guarantee (a finished task's outputs do not move while later tasks train) on
architectures hand-written backbones get wrong: a conv -> flatten -> linear net (HAT's own
AlexNet-like network) and ResNets whose shortcut convs are protected. The parity HATMaskResNet18
leaves its shortcut convs out of `weighted_layer_names`, and drifts: asserted as the contrast.

The harness is HAT's training recipe, written here from the seed's documentation: plain SGD; after
each backward on task 2, every weighted layer's weight and bias gradients are multiplied by
1 - the parameter-wise measure of task 1's mask (`get_layer_measure_parameter_wise`, 'min')."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from generated.alexnet_hat import HATMaskAlexNet
from generated.resnet18_hat import HATMaskResNet18
from generated.resnet18_hat_protected import HATMaskResNet18Protected
from generated.resnet50_hat_protected import HATMaskResNet50Protected


def _train(backbone, head, x, y, steps, protect_with=None):
    params = [p for p in backbone.parameters()] + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.05)
    backbone.train()
    for step in range(steps):
        opt.zero_grad()
        feature, _, _ = backbone(x, "train", s_max=400.0, batch_idx=step + 1, num_batches=steps)
        nn.functional.cross_entropy(head(feature), y).backward()
        if protect_with is not None:
            for name in backbone.weighted_layer_names:
                layer = backbone.get_layer_by_name(name)
                w_measure, b_measure = backbone.get_layer_measure_parameter_wise(protect_with, name, "min")
                layer.weight.grad *= 1 - w_measure
                if layer.bias is not None and layer.bias.grad is not None:
                    layer.bias.grad *= 1 - b_measure
        opt.step()


def two_task_run(backbone, x_shape, steps=4, protect=True):
    """Task 1's test outputs before and after training task 2."""
    torch.manual_seed(0)
    x1, x2 = torch.randn(*x_shape), torch.randn(*x_shape)
    y1, y2 = torch.randint(0, 3, (x_shape[0],)), torch.randint(0, 3, (x_shape[0],))
    head1, head2 = nn.Linear(backbone.output_dim, 3), nn.Linear(backbone.output_dim, 3)

    backbone.setup_task_id(1)
    backbone.initialize_task_embedding("N01")
    _train(backbone, head1, x1, y1, steps)
    backbone.store_mask()
    backbone.eval()
    with torch.no_grad():
        before = backbone(x1, "test", test_task_id=1)[0].clone()

    backbone.setup_task_id(2)
    backbone.initialize_task_embedding("N01")
    _train(backbone, head2, x2, y2, steps, protect_with=backbone.masks[1] if protect else None)
    backbone.eval()
    with torch.no_grad():
        after = backbone(x1, "test", test_task_id=1)[0]
    return before, after


def _used(mask: dict) -> bool:
    # The run means something only if task 1 kept some units and left others free for task 2.
    flat = torch.cat([m.flatten() for m in mask.values()])
    return 0 < flat.sum() < flat.numel()


@pytest.mark.parametrize("make, x_shape", [
    (lambda: HATMaskAlexNet(), (8, 3, 32, 32)),
    (lambda: HATMaskResNet18Protected(input_channels=3, output_dim=512, gate="sigmoid"), (4, 3, 32, 32)),
    (lambda: HATMaskResNet50Protected(input_channels=3, output_dim=2048, gate="sigmoid"), (2, 3, 32, 32)),
], ids=["HATMaskAlexNet", "HATMaskResNet18Protected", "HATMaskResNet50Protected"])
def test_no_drift_with_hat_rule(make, x_shape):
    backbone = make()
    before, after = two_task_run(backbone, x_shape, steps=3)
    assert _used(backbone.masks[1])
    assert torch.equal(before, after)


def test_parity_resnet18_drifts_through_its_unprotected_shortcuts():
    backbone = HATMaskResNet18(input_channels=3, output_dim=512, gate="sigmoid")
    assert not any("identity_downsample" in n for n in backbone.weighted_layer_names)
    before, after = two_task_run(backbone, (4, 3, 32, 32), steps=3)
    assert _used(backbone.masks[1])
    assert not torch.equal(before, after)


def test_without_the_rule_alexnet_drifts():
    # The harness can fail: without HAT's gradient rule task 1's outputs move.
    backbone = HATMaskAlexNet()
    before, after = two_task_run(backbone, (8, 3, 32, 32), steps=3, protect=False)
    assert not torch.equal(before, after)


def test_measure_through_flatten_against_direct_computation():
    """fc1 of the AlexNet-like net reads conv3's channels flattened over 2x2 positions: weight
    (i, j) connects fc1 unit i with conv3 channel j // 4."""
    net = HATMaskAlexNet()
    torch.manual_seed(1)
    measure = {name: torch.rand(net.get_layer_by_name(name).weight.size(0)) for name in net.weighted_layer_names}
    for mode, agg in (("min", torch.minimum), ("max", torch.maximum), ("mean", lambda a, b: (a + b) / 2)):
        w, b = net.get_layer_measure_parameter_wise(measure, "fc1", mode)
        assert w.shape == net.fc1.weight.shape == (2048, 1024)
        rows = torch.randint(0, 2048, (50,))
        cols = torch.randint(0, 1024, (50,))
        for i, j in zip(rows.tolist(), cols.tolist()):
            expected = agg(measure["fc1"][i], measure["conv3"][j // 4])
            assert torch.equal(w[i, j], expected), (mode, i, j)
        assert torch.equal(b, measure["fc1"])


def test_protected_shortcut_shares_its_block_mask_and_reads_the_block_input():
    net = HATMaskResNet18Protected(input_channels=3, output_dim=512, gate="sigmoid")
    shortcut, owner = "conv3x/0/identity_downsample", "conv3x/0/conv2"
    assert shortcut in net.weighted_layer_names
    assert net.task_embedding_t[shortcut] is net.task_embedding_t[owner]
    net.setup_task_id(1)
    _, mask, _ = net(torch.randn(2, 3, 32, 32), "validation", s_max=400.0)
    assert torch.equal(mask[shortcut], mask[owner])
    # Its preceding layer comes from the graph (the previous block's last conv), not list order.
    torch.manual_seed(2)
    measure = {name: torch.rand(net.get_layer_by_name(name).weight.size(0)) for name in net.weighted_layer_names}
    measure[shortcut] = measure[owner]  # tied: one mask under two names, as get_mask returns it
    w, _ = net.get_layer_measure_parameter_wise(measure, shortcut, "min")
    expected = torch.minimum(measure[owner].view(-1, 1, 1, 1), measure["conv2x/1/conv2"].view(1, -1, 1, 1))
    assert torch.equal(w, expected.expand_as(w))
