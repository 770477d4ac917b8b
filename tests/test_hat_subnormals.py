"""HAT without the subnormal trap (issue 22): on specc's bases, a HAT network flushes subnormal
floats to zero (FTZ and DAZ) during its own forward and, in a backward pass, from the moment the
pass reaches a tensor that forward returned until the pass ends; the caller's state everywhere else.

What this changes against CLArena's arithmetic is exactly this: the default-base network computes
what CLArena's HATMaskResNet18 computes when CLArena's whole step runs under
`specc.flush_denormals()`: bit for bit, features, masks, activations and every parameter's gradient
(the task embeddings' included: HAT's compensation divides them). So every value that was subnormal
in an operation of CLArena's step is 0 here, and a value derived from one differs in consequence;
nothing else differs. `flush_subnormals = False` on the instance (and `--base clarena`, checked by
tests/test_clarena_client.py) gives CLArena's arithmetic bit for bit.

The settings are the ones that made HAT 4.4x slower than the unmasked ResNet-18 on an Intel Xeon:
s_max 400, batch_idx 3 and 10 of 10: saturated masks whose products are subnormal."""
from __future__ import annotations

import pytest
import torch

import specc
from generated.resnet18_hat import HATMaskResNet18
from specc.runtime.denormals import denormals_flushed

KW = dict(input_channels=3, output_dim=512, gate="sigmoid", batch_normalization="shared")
SMALLEST_NORMAL = torch.finfo(torch.float32).tiny


def _pair(clarena):
    torch.manual_seed(0)
    ours = HATMaskResNet18(**KW)
    theirs = clarena.backbones.HATMaskResNet18(**KW)
    # CLArena's blocks list their embeddings again under their own keys (aliases of the network's)
    theirs.load_state_dict(ours.state_dict(), strict=False)
    mine, other = ours.state_dict(), theirs.state_dict()
    assert all(torch.equal(v, other[k]) for k, v in mine.items())
    for net in (ours, theirs):
        net.setup_task_id(1)
        net.train()
    return ours, theirs


def _step(net, x, r, batch_idx, regularise=False):
    """Forward, a loss on the feature (`regularise`: and on the masks, as HAT's regulariser reads
    them), backward."""
    for p in net.parameters():
        p.grad = None
    feature, mask, activations = net(x, "train", s_max=400, batch_idx=batch_idx, num_batches=10)
    loss = (feature * r).sum()
    if regularise:
        loss = loss + sum(m.sum() for m in mask.values())
    loss.backward()
    # every name of a parameter (CLArena's blocks name the network's embeddings again)
    grads = {n: p.grad.clone() for n, p in net.named_parameters(remove_duplicate=False) if p.grad is not None}
    return feature.detach(), {k: v.detach() for k, v in mask.items()}, \
        {k: v.detach() for k, v in activations.items()}, grads


def _same(a, b) -> bool:
    if isinstance(a, dict):  # b may name a parameter more often (CLArena's blocks)
        return a.keys() <= b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return all(_same(u, v) for u, v in zip(a, b))
    return torch.equal(a, b)


def _subnormals(value) -> int:
    if isinstance(value, (dict, tuple)):
        return sum(_subnormals(v) for v in (value.values() if isinstance(value, dict) else value))
    return int(((value != 0) & (value.abs() < SMALLEST_NORMAL)).sum())


@pytest.fixture(scope="module")
def runs(clarena):  # noqa: F811 - the fixture
    ours, theirs = _pair(clarena)
    torch.manual_seed(1)
    x, r = torch.randn(4, 3, 32, 32), torch.randn(4, 512)
    out = {}
    assert not denormals_flushed()
    for b in (3, 10):
        out[b, "specc"] = _step(ours, x, r, b)
        assert not denormals_flushed()  # the caller's state after the step
        out[b, "clarena"] = _step(theirs, x, r, b)
        with specc.flush_denormals():
            out[b, "clarena flushed"] = _step(theirs, x, r, b)
        ours.flush_subnormals = False
        try:
            out[b, "specc unflushed"] = _step(ours, x, r, b)
        finally:
            ours.flush_subnormals = True
        # With HAT's regulariser on the masks too. (Not against CLArena: its ResNet's blocks make
        # their masks again, so the two gradients of a block's embedding add after the sigmoid's
        # backward there, before it in specc: a rounding difference of the default base, not of
        # the flushing. specc flushing everywhere computes what CLArena would.)
        out[b, "specc regularised"] = _step(ours, x, r, b, regularise=True)
        assert not denormals_flushed()
        with specc.flush_denormals():
            out[b, "specc regularised, flushed"] = _step(ours, x, r, b, regularise=True)
    return out


@pytest.mark.parametrize("batch_idx", [3, 10])
def test_default_is_clarena_under_flush_to_zero(runs, batch_idx):
    assert _same(runs[batch_idx, "specc"], runs[batch_idx, "clarena flushed"])
    assert _same(runs[batch_idx, "specc regularised"], runs[batch_idx, "specc regularised, flushed"])


@pytest.mark.parametrize("batch_idx", [3, 10])
def test_the_settings_make_subnormals_that_matter(runs, batch_idx):
    """The premise: CLArena's own step meets subnormals here, and flushing them changes its results
    (so the test above can fail), while specc's default step has none left."""
    plain = runs[batch_idx, "clarena"]
    assert _subnormals(plain) > 0
    assert not _same(plain, runs[batch_idx, "clarena flushed"])
    assert _subnormals(runs[batch_idx, "specc"]) == 0


@pytest.mark.parametrize("batch_idx", [3, 10])
def test_opting_out_keeps_clarenas_arithmetic(runs, batch_idx):
    assert _same(runs[batch_idx, "specc unflushed"], runs[batch_idx, "clarena"])


def test_masked_units_carry_exact_zeros(runs):
    """Where CLArena's masked activation is subnormal, specc's is exactly 0 (and so is everything
    the next convolution reads from that unit)."""
    ours, plain = runs[3, "specc"][2], runs[3, "clarena"][2]
    tiny = [(ours[k], plain[k]) for k in ours if _subnormals(plain[k])]
    assert tiny
    for o, p in tiny:
        where = (p != 0) & (p.abs() < SMALLEST_NORMAL)
        assert torch.all(o[where] == 0)


def test_scope_is_the_forward_and_the_backward_from_its_outputs():
    """Flushing is on inside the network's forward and, in the backward pass, inside the network;
    off again after each; a caller's own flush_denormals() is left on."""
    torch.manual_seed(0)
    net = HATMaskResNet18(**KW)
    net.setup_task_id(1)
    seen = {}

    def record(key):
        def hook(*_):
            seen.setdefault(key, denormals_flushed())  # returns None: values unchanged
        return hook

    net.conv1.register_forward_hook(record("forward"))
    x = torch.randn(2, 3, 32, 32)
    feature, _, activations = net(x, "train", s_max=400, batch_idx=3, num_batches=10)
    assert seen["forward"] and not denormals_flushed()
    first = activations[net.weighted_layer_names[0]]
    first.register_hook(record("backward"))
    feature.sum().backward()
    assert seen["backward"] and not denormals_flushed()

    with specc.flush_denormals():
        net(x, "train", s_max=400, batch_idx=3, num_batches=10)[0].sum().backward()
        assert denormals_flushed()
    assert not denormals_flushed()


def test_a_backward_that_raises_is_cleaned_up_by_the_next_forward():
    torch.manual_seed(0)
    net = HATMaskResNet18(**KW)
    net.setup_task_id(1)
    x = torch.randn(2, 3, 32, 32)
    feature, _, activations = net(x, "train", s_max=400, batch_idx=3, num_batches=10)

    def fail(grad):
        raise RuntimeError("boom")

    activations[net.weighted_layer_names[0]].register_hook(fail)
    with pytest.raises(RuntimeError, match="boom"):
        feature.sum().backward()
    net(x, "train", s_max=400, batch_idx=3, num_batches=10)
    assert not denormals_flushed()


def test_amnesiac_backup_stage_is_scoped_too():
    """AmnesiacHAT's 'train_with_backup' forward (its own, beside HAT's) flushes as HAT's does."""
    from generated.mlp_amnesiac_hat import AmnesiacHATMLP

    torch.manual_seed(0)
    net = AmnesiacHATMLP(input_dim=20, hidden_dims=[16, 8], output_dim=4, gate="sigmoid")
    for t in (1, 2):
        net.setup_task_id(t)
        if t == 1:
            net.store_mask()
    net.instantiate_backup_backbones([1])
    seen = {}

    def record(key):
        def hook(*_):
            seen.setdefault(key, denormals_flushed())  # returns None: values unchanged
        return hook

    net.get_layer_by_name(net.weighted_layer_names[0]).register_forward_hook(record("forward"))
    feature, backups, _, _ = net(torch.randn(3, 20), "train_with_backup", s_max=400, batch_idx=3, num_batches=10)
    assert seen["forward"] and not denormals_flushed()
    feature.register_hook(record("backward"))  # runs after the network's own hook on the feature
    (feature.sum() + sum(b.sum() for b in backups.values())).backward()
    assert seen["backward"] and not denormals_flushed()


def test_a_cpu_that_cannot_flush_computes_without_the_scope(monkeypatch):
    """Where torch cannot flush (set_flush_denormal returns False), the default scope does nothing
    and the forward runs as with `flush_subnormals = False`, instead of raising on every forward."""
    from specc.runtime import denormals

    torch.manual_seed(0)
    net = HATMaskResNet18(**KW)
    net.setup_task_id(1)
    x = torch.randn(2, 3, 32, 32)
    net.flush_subnormals = False
    expected = net(x, "train", s_max=400, batch_idx=3, num_batches=10)[0]
    net.flush_subnormals = True
    monkeypatch.setattr(torch, "set_flush_denormal", lambda enabled: not enabled)
    denormals._flush_supported.cache_clear()
    try:
        assert torch.equal(net(x, "train", s_max=400, batch_idx=3, num_batches=10)[0], expected)
        with pytest.raises(RuntimeError, match="cannot flush"):  # an explicit request still says so
            specc.flush_denormals(True)
    finally:
        denormals._flush_supported.cache_clear()


def test_the_probe_reads_the_cpu_whatever_the_default_device():
    before = denormals_flushed()
    with torch.device("meta"):
        assert denormals_flushed() == before
