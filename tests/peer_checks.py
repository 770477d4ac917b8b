"""Checks shared by the tests of the torchvision-layout peer specs (tests/test_mobilenet_v3.py,
tests/test_efficientnet.py): a spec against its plain-PyTorch reference, bit for bit, through a
rename of state-dict keys (`rename`: the spec's key -> the reference's), plain, WSN and HAT."""
from __future__ import annotations

import torch
from torch import nn


def randomized(ref: nn.Module) -> nn.Module:
    """torchvision's init leaves biases 0 and batch norms at (1, 0, 0, 1), where a bias or a running
    statistic wired to the wrong place could not show: give them random values."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, t in list(ref.named_parameters()) + list(ref.named_buffers()):
            if name.endswith(("bias", "running_mean")) or (name.endswith("weight") and t.dim() == 1):
                t.copy_(torch.randn(t.shape, generator=g))
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
    return ref


def assert_bit_equal(ours, ref, x0: torch.Tensor, sources: dict[str, nn.Module], rename, modes) -> None:
    """Feature, recorded activations (the output of `sources[layer]` in the reference), input and
    parameter gradients and buffers of `ours` equal the reference's (`rename`: our key -> its key),
    mode after mode, dropout under the same seed."""
    ref_params, ref_buffers = dict(ref.named_parameters()), dict(ref.named_buffers())
    for mode in modes:
        ours.train(mode == "train"), ref.train(mode == "train")
        seen = {}
        hooks = [m.register_forward_hook(lambda mod, a, out, name=name, seen=seen: seen.__setitem__(name, out.detach().clone()))
                 for name, m in sources.items()]
        xa, xb = x0.clone().requires_grad_(), x0.clone().requires_grad_()
        torch.manual_seed(7)
        a, acts = ours(xa)
        torch.manual_seed(7)
        b = ref(xb)
        for h in hooks:
            h.remove()
        assert torch.equal(a, b), mode
        assert sorted(acts) == sorted(seen), mode
        for name in acts:
            assert torch.equal(acts[name], seen[name]), (mode, name)
        (a * torch.linspace(-1, 1, a.shape[1])).sum().backward()
        (b * torch.linspace(-1, 1, b.shape[1])).sum().backward()
        assert torch.equal(xa.grad, xb.grad), mode
        for name, p in ours.named_parameters():
            assert torch.equal(p.grad, ref_params[rename(name)].grad), (mode, name)
        for name, v in ours.named_buffers():
            assert torch.equal(v, ref_buffers[rename(name)]), (mode, name)
        ours.zero_grad(), ref.zero_grad()


def _wsn_reference(ref, x, layers: dict[str, str], wm: dict, bm: dict):
    """The reference's feature with each WSN layer's weight (and bias, where it has one) multiplied
    by its mask (row-major per output unit), through torch.func.functional_call."""
    from torch.func import functional_call

    params = dict(ref.named_parameters())
    for layer, prefix in layers.items():
        w = params[f"{prefix}.weight"]
        params[f"{prefix}.weight"] = w * wm[layer].reshape(w.shape)
        if f"{prefix}.bias" in params:
            params[f"{prefix}.bias"] = params[f"{prefix}.bias"] * bm[layer]
    return functional_call(ref, params, (x,))


def assert_wsn_equal(ours, ref, rename, x) -> None:
    """`ours` (a WSN backbone) against `ref` with the masks folded in, stage after stage: feature,
    weight masks, and in training the gradients of weights and scores and the running stats."""
    from reference import wsn as wsn_ref

    ref_sd = ref.state_dict()
    plain = [k for k in ours.state_dict() if not k.startswith(("weight_score_t.", "bias_score_t."))]
    assert [rename(k) for k in plain] == list(ref_sd)
    ours.load_state_dict({k: ref_sd[rename(k)] for k in plain}, strict=False)
    # every conv (the SE's 1x1 convs too) and linear, in data-flow order
    layers = {n: rename(n.replace("/", ".")) for n in ours.weighted_layer_names}
    modules = dict(ref.named_modules())
    assert all(isinstance(modules[p], (nn.Conv2d, nn.Linear)) for p in layers.values())
    assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in ref.modules()) == len(layers)
    g = torch.Generator().manual_seed(3)
    scores = {n: nn.Parameter(torch.randn(modules[p].weight.shape[0], modules[p].weight[0].numel(), generator=g))
              for n, p in layers.items()}
    bias_scores = {n: nn.Parameter(torch.randn(1, modules[p].weight.shape[0], generator=g)) for n, p in layers.items()}
    with torch.no_grad():
        for n in layers:
            ours.weight_score_t[n].weight.copy_(scores[n])
            ours.bias_score_t[n].weight.copy_(bias_scores[n])
    ours.setup_task_id(1)
    for stage, c in (("train", 0.5), ("validation", 0.3), ("test", None)):
        ref.train(stage == "train"), ours.train(stage == "train")
        if stage == "test":
            wm = {n: (torch.rand(scores[n].shape, generator=g) < 0.5).float() for n in layers}
            bm = {n: (torch.rand(bias_scores[n].shape[1:], generator=g) < 0.5).float() for n in layers}
            kwargs = dict(mask_percentage=0.5, test_mask=(wm, bm))
        else:
            wm = {n: wsn_ref.reference_gate(scores[n], c) for n in layers}
            bm = {n: wsn_ref.reference_gate(bias_scores[n][0], c) for n in layers}
            kwargs = dict(mask_percentage=c)
        torch.manual_seed(7)
        expected = _wsn_reference(ref, x, layers, wm, bm)
        torch.manual_seed(7)
        feature, weight_mask, bias_mask, _ = ours(x, stage, **kwargs)
        assert torch.equal(feature, expected), stage
        for n in layers:
            assert torch.equal(weight_mask[n], wm[n]), (stage, n)
        if stage == "train":
            w = torch.randn(expected.shape, generator=g)
            (expected * w).sum().backward()
            (feature * w).sum().backward()
            ref_params = dict(ref.named_parameters())
            for name, p in ours.named_parameters():
                if name.startswith("weight_score_t."):
                    other = scores[name.split(".")[1]]
                elif name.startswith("bias_score_t."):
                    other = bias_scores[name.split(".")[1]]
                else:
                    other = ref_params[rename(name)]
                assert (p.grad is None) == (other.grad is None), name
                assert p.grad is None or torch.equal(p.grad, other.grad), name
            ref_buffers = dict(ref.named_buffers())
            for name, v in ours.named_buffers():
                assert torch.equal(v, ref_buffers[rename(name)]), name


def assert_hat_runs(hat_net, plain, x) -> None:
    """The HAT backbone has the plain one's weighted layers, trains (its task embeddings get
    gradients), validates, stores its mask and tests with a 0/1 mask."""
    assert hat_net.weighted_layer_names == plain.weighted_layer_names
    hat_net.setup_task_id(1)
    hat_net.train()
    feature, mask, acts = hat_net(x, "train", s_max=400.0, batch_idx=1, num_batches=2)
    assert feature.shape == plain(x)[0].shape and list(mask) == hat_net.weighted_layer_names
    feature.sum().backward()
    assert all(e.weight.grad is not None for e in hat_net.task_embedding_t.values())
    hat_net.eval()
    hat_net(x, "validation", s_max=400.0)
    hat_net.store_mask()
    feature_test, mask_test, _ = hat_net(x, "test", test_task_id=1)
    assert all(torch.all((m == 0) | (m == 1)) for m in mask_test.values())


# SMALL_TABLE's features[n] is its row n - 1: features[3] has an expansion, a depthwise conv, an SE
# and a strided projection; features[4] a residual add after its projection; features[5] no expansion


def assert_masked_unit_is_zero(hat_net, layer: str, consumers: list[str], x, unit: int = 3) -> None:
    """With every task embedding 1 but `layer`'s `unit` (-100: mask 0 at s_max 400), that unit is
    exactly 0 in the input of each consumer module, and the other units are not all 0."""
    hat_net.setup_task_id(1)
    with torch.no_grad():
        for emb in hat_net.task_embedding_t.values():
            emb.weight.fill_(1.0)
        hat_net.task_embedding_t[layer].weight[0, unit] = -100.0
    seen = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: seen.__setitem__(name, args[0].detach()))
             for name, m in hat_net.named_modules() if name in consumers]
    hat_net.train()
    hat_net(x, "train", s_max=400.0, batch_idx=2, num_batches=2)
    for h in hooks:
        h.remove()
    assert sorted(seen) == sorted(consumers)
    for c in consumers:
        assert torch.all(seen[c][:, unit] == 0), f"unit {unit} of {layer} reaches {c} non-zero"
        others = torch.cat([seen[c][:, :unit], seen[c][:, unit + 1:]], dim=1)
        assert torch.count_nonzero(others) > others.numel() // 4, c


def assert_pretrained_loads(build, ref: nn.Module, rename, path) -> None:
    """`ref`'s state dict saved at `path` (its last linear included) and loaded through the spec's
    `pretrained` declaration (`build(pretrained_weights=...)`) gives every key of the network the
    reference's value under `rename`; the reference's last linear is dropped."""
    torch.save(ref.state_dict(), path)
    ours = build(pretrained_weights=str(path))
    ref_sd, ours_sd = ref.state_dict(), ours.state_dict()
    assert len(ours_sd) == len(ref_sd) - 2  # all but the last linear's weight and bias
    for key, value in ours_sd.items():
        assert torch.equal(value, ref_sd[rename(key)]), key


def assert_hat_equal(ours, ref, rename, points: dict[str, nn.Module], x) -> None:
    """`ours` (a HAT backbone) against `ref` with each layer's unit mask multiplied, by a forward
    hook, into the output of `points[layer]` (where the analysis puts it), masks from
    tests/reference/hat.py's formulas: feature and masks in the train, validation (fractional and
    nearly binary) and test stages, and in training the gradients of the weights and of the task
    embeddings and the running stats. Computed as specc's HAT computes (subnormals flushed)."""
    from contextlib import nullcontext

    from reference import hat as hat_ref

    import specc

    ref_sd = ref.state_dict()
    plain = [k for k in ours.state_dict() if not k.startswith("task_embedding_t.")]
    assert [rename(k) for k in plain] == list(ref_sd)
    ours.load_state_dict({k: ref_sd[rename(k)] for k in plain}, strict=False)
    assert list(ours.task_embedding_t) == ours.weighted_layer_names == list(points)
    emb = hat_ref.new_embeddings({n: e.weight.shape[1] for n, e in ours.task_embedding_t.items()},
                                 torch.Generator().manual_seed(3))
    with torch.no_grad():
        for n, e in emb.items():
            ours.task_embedding_t[n].weight.copy_(e)
    ours.setup_task_id(1)
    arithmetic = specc.flush_denormals if getattr(ours, "flush_subnormals", False) else nullcontext
    with arithmetic():
        stages = [("train", dict(s_max=400.0, batch_idx=2, num_batches=5),
                   hat_ref.gate_masks(emb, hat_ref.annealed_scale(400.0, 2, 5))),
                  ("validation", dict(s_max=1.0), hat_ref.gate_masks(emb, 1.0)),
                  ("validation", dict(s_max=400.0), hat_ref.gate_masks(emb, 400.0)),
                  ("test", dict(test_task_id=1), None)]
    for stage, kwargs, masks in stages:
        if stage == "test":
            ours.store_mask()
            masks = hat_ref.binary_masks(emb)
        ref.train(stage == "train"), ours.train(stage == "train")
        hooks = [m.register_forward_hook(lambda mod, a, out, mask=masks[n]: hat_ref.apply_unit_mask(out, mask))
                 for n, m in points.items()]
        torch.manual_seed(7)
        with arithmetic():
            expected = ref(x)
        for h in hooks:
            h.remove()
        torch.manual_seed(7)
        feature, mask, _ = ours(x, stage, **kwargs)
        assert torch.equal(feature, expected), stage
        for n in points:
            assert torch.equal(mask[n], masks[n]), (stage, n)
        if stage == "train":
            w = torch.randn(expected.shape, generator=torch.Generator().manual_seed(2))
            with arithmetic():
                ((expected * w).sum() + sum(m.sum() for m in masks.values())).backward()
            ((feature * w).sum() + sum(m.sum() for m in mask.values())).backward()
            ref_params = dict(ref.named_parameters())
            for name, p in ours.named_parameters():
                other = emb[name.split(".")[1]] if name.startswith("task_embedding_t.") else ref_params[rename(name)]
                assert (p.grad is None) == (other.grad is None), name
                assert p.grad is None or torch.equal(p.grad, other.grad), name
            ref_buffers = dict(ref.named_buffers())
            for name, v in ours.named_buffers():
                assert torch.equal(v, ref_buffers[rename(name)]), name
