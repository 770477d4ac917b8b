"""AmnesiacHAT's batched 'train_with_backup' (amnesiac_batching: a main convolution called once for
the main path and every backup path, on their inputs stacked along the batch) against the
sequential forward it replaces (`_specc_sequential_backups`: one call per path, as CLArena).

For AmnesiacHATMLP and AmnesiacHATResNet18, 1 and 3 backups, every batch-norm mode, in training
mode (batch norms update their running statistics once per path), one forward and backward of
the same loss on deep copies of one network:

* features, backup features, masks, activations and the state left behind (running statistics):
  torch.equal;
* gradients: torch.equal for every parameter except the weights of the main convolutions that
  were stacked. Their gradient is one sum over every path's samples instead of one sum per path
  added up: the same terms in another floating-point order. Allowed: |difference| <= 1e-5 * the
  tensor's largest |gradient| (float32; the measured differences are below 2e-6 of it).

The stacking is checked to happen (a main convolution is called once per step, not 1 + n times),
so that these equalities are not those of two identical forwards.
"""
from __future__ import annotations

from copy import deepcopy

import pytest
import torch
from test_amnesiac_parity import KINDS, TRAIN_ARGS, built
from torch import nn

GRAD_TOLERANCE = 1e-5


def _step(net: nn.Module, x: torch.Tensor):
    feature, backups, mask, activations = net(x, "train_with_backup", **TRAIN_ARGS)
    # a loss that weighs each path differently, so that a path's gradient cannot stand for another's
    loss = (feature ** 2).sum() + sum((i + 2) * (f ** 2).sum() for i, f in enumerate(backups.values()))
    loss.backward()
    grads = {k: p.grad for k, p in net.named_parameters()}
    return feature, backups, mask, activations, grads, net.state_dict()


def _call_counts(net: nn.Module) -> dict[str, list[int]]:
    counts = {}
    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d) and not name.startswith("backup_backbones"):
            counts[name] = calls = [0]
            module.register_forward_hook(lambda *_, calls=calls: calls.__setitem__(0, calls[0] + 1))
    return counts


@pytest.mark.parametrize("n_backups", [1, 3])
@pytest.mark.parametrize("bn", [None, "shared", "independent"])
@pytest.mark.parametrize("kind", ["mlp", "resnet18"])
def test_batched_equals_sequential(kind, bn, n_backups):
    net = built(kind, n_backups, ("generated",), batch_normalization=bn)["generated"]
    net.train()
    reference = deepcopy(net)
    reference._specc_sequential_backups = True
    x = torch.randn(*KINDS[kind][-1], generator=torch.Generator().manual_seed(1))
    counts = _call_counts(net)
    f, b, m, a, g, state = _step(net, x)
    rf, rb, rm, ra, rg, rstate = _step(reference, x)

    assert torch.equal(f, rf)
    assert list(b) == list(rb) == net.backup_task_ids
    for t in b:
        assert torch.equal(b[t], rb[t]), t
    assert list(m) == list(rm) and all(torch.equal(m[k], rm[k]) for k in m)
    assert list(a) == list(ra) and all(torch.equal(a[k], ra[k]) for k in a)
    assert list(state) == list(rstate)
    for k in state:
        assert torch.equal(state[k], rstate[k]), k

    stacked = {f"{name}.weight" for name, (n,) in counts.items() if n == 1}
    if kind == "resnet18":  # every main convolution: called once for all 1 + n paths
        assert set(counts) and all(n == 1 for (n,) in counts.values()), counts
    else:
        assert not counts  # linear layers are not stacked: the MLP's forward is the sequential one
    assert list(g) == list(rg)
    for k in g:
        if g[k] is None or rg[k] is None:
            assert g[k] is None and rg[k] is None, k
        elif k in stacked:
            assert (g[k] - rg[k]).abs().max() <= GRAD_TOLERANCE * rg[k].abs().max(), k
        else:
            assert torch.equal(g[k], rg[k]), k


def test_sequential_reference_calls_each_path():
    """The reference really is sequential: a main convolution runs once per path."""
    net = built("resnet18", 3, ("generated",), batch_normalization="shared")["generated"]
    net._specc_sequential_backups = True
    counts = _call_counts(net)
    net(torch.randn(*KINDS["resnet18"][-1]), "train_with_backup", **TRAIN_ARGS)
    assert all(n == 4 for (n,) in counts.values()), counts


@pytest.mark.parametrize("threads", [1, 2])
def test_shared_layer_stacks_where_it_pays_and_computes_the_same(threads):
    """One call where the weights outweigh the output positions and each batch is 2 or more (16
    for a 1x1 convolution without stride); one call per input otherwise (large images, a batch of
    1: another kernel); the outputs those of separate calls, to the bit."""
    from specc.runtime.schemes import amnesiac_batching

    g = torch.Generator().manual_seed(0)
    cases = [  # (convolution, per-input shape, stacked)
        (nn.Conv2d(64, 64, 3, padding=1), (2, 64, 2, 2), True),
        (nn.Conv2d(128, 256, 3, stride=2, padding=1), (4, 128, 4, 4), True),
        (nn.Conv2d(64, 128, 1, stride=2), (2, 64, 2, 2), True),
        (nn.Conv2d(64, 64, 1), (4, 64, 2, 2), False),  # 1x1 without stride, batch < 16
        (nn.Conv2d(64, 64, 1), (16, 64, 1, 1), True),
        (nn.Conv2d(64, 64, 3, padding=1), (1, 64, 2, 2), False),  # batch of 1
        (nn.Conv2d(3, 64, 3, padding=1), (4, 3, 16, 16), False),  # large image: not weight-bound
    ]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for conv, shape, stacked in cases:
            inputs = [torch.randn(shape, generator=g) for _ in range(3)]
            calls = []
            hook = conv.register_forward_hook(lambda m, i, o, calls=calls: calls.append(i[0].shape[0]))
            out = amnesiac_batching.shared_layer(conv, inputs)
            hook.remove()
            assert calls == ([3 * shape[0]] if stacked else [shape[0]] * 3), (conv, shape, calls)
            for o, x in zip(out, inputs):
                assert torch.equal(o, conv(x)), (conv, shape)
    finally:
        torch.set_num_threads(previous)


def test_batched_forward_compiles_whole():
    """torch.compile captures the batched ResNet forward (stacked calls included) as one graph,
    without a break, and computes what eager does (tests/test_compile.py covers the MLP, whose
    linear layers are not stacked)."""
    import torch._dynamo

    net = built("resnet18", 2, ("generated",), batch_normalization="shared")["generated"]
    net.train()
    reference = deepcopy(net)
    x = torch.randn(*KINDS["resnet18"][-1], generator=torch.Generator().manual_seed(1))
    explained = torch._dynamo.explain(net)(x, "train_with_backup", **TRAIN_ARGS)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    torch._dynamo.reset()
    compiled = torch.compile(net, fullgraph=True, backend="eager")
    f, b, _, _ = compiled(x, "train_with_backup", **TRAIN_ARGS)
    rf, rb, _, _ = reference(x, "train_with_backup", **TRAIN_ARGS)
    assert torch.equal(f, rf) and all(torch.equal(b[t], rb[t]) for t in rb)
