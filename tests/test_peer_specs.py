"""Public continual-learning backbones written as specs (specs/peers/), bit for bit against the
independent plain-PyTorch references of tests/reference/peers/.

For each peer:

* plain: the spec built with small sizes has the reference's state_dict keys in the same order
  (minus the classification head, which specc backbones leave to the heads: the dropped prefixes are
  listed per case and in each spec's header); the reference's weights are copied in; the features
  are torch.equal in eval mode and in train mode (same seed for dropout), and so are every
  parameter's gradient after a backward pass, the batch norms' running statistics after it, and
  the recorded activations;
* facts: weighted_layer_names, preceding / next layer and layer shapes are what the architecture
  implies (the reference's own list of masked layers, in data-flow order);
* HAT: the `_hat` spec against the reference with HAT's unit masks inserted by hand
  (``hat_forward_features`` of the peer module, masks from tests/reference/hat.py's gate formulas):
  features, masks, activations and gradients (weights and task embeddings) in the train,
  validation and test stages; and get_layer_measure_parameter_wise against the documented formula,
  with the input units of every layer worked out from the architecture;
* WSN (the WSN paper's networks): the `_wsn` spec against the reference with WSN's parameter masks
  (tests/reference/wsn.py's gate).

specc's HAT networks flush subnormal floats to zero in their own forward and backward (issue 22;
exactly what that changes: tests/test_hat_subnormals.py), so the HAT references compute their masks,
forward and backward under `specc.flush_denormals()` (`reference_arithmetic`): the same arithmetic,
with every subnormal value 0.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import pytest
import torch

from conftest import SPECS
from reference import hat as hat_ref
from reference import wsn as wsn_ref
from reference.peers import (
    avalanche_simple_cnn,
    avalanche_slim_resnet18,
    densenet_bc,
    hat_alexnet,
    hat_mlp,
    inception_net,
    mammoth_resnet18,
    mammoth_resnet32,
    mobilenet_v1,
    pycil_resnet32,
    se_resnet18,
    torchvision_resnet18,
    wsn_alexnet,
    wsn_resnet18,
)

import specc

PEER_SPECS = SPECS / "peers"


# ---------------------------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------------------------


@dataclass
class Case:
    module: object  # the reference peer module
    make: Callable  # the small reference model
    stem: str  # specs/peers/<stem>.cl (and <stem>_hat.cl, <stem>_wsn.cl)
    args: dict  # constructor arguments of the spec for the same sizes
    input_shape: tuple
    dropped: tuple = ()  # state_dict key prefixes of the reference that the backbone leaves out
    # (reference model, layer names) -> {layer: the layers whose units its inputs carry (see
    # input_measure)}; default: the architecture's rule for residual networks (see resnet_sources)
    sources: Callable | None = None
    hat_args: dict = field(default_factory=dict)


def resnet_sources(names: list[str]) -> dict[str, str | None]:
    """Input owners of a residual network of stem + blocks (conv1, conv2): the stem reads the data;
    a block's conv1 reads the block input, i.e. the previous block's output (whose units are the
    residual sum, masked by that block's conv2 mask) or the stem's output; conv2 reads conv1."""
    out: dict[str, str | None] = {}
    last = None  # the owner of the current block input
    for name in names:
        out[name] = last
        last = name
    return out


def chain_sources(model, names: list[str]) -> dict[str, str | None]:
    """Input owners of a plain chain of layers: each layer reads the one before it."""
    return {name: (names[i - 1] if i else None) for i, name in enumerate(names)}


def hat_alexnet_sources(model, names: list[str]) -> dict:
    """The HAT AlexNet: a chain, but fc1 reads c3's channels flattened, each channel at
    smid * smid positions (channel-major: input unit j of fc1 is channel j // smid**2)."""
    smid = model.smid
    return {"c1": None, "c2": "c1", "c3": "c2", "fc1": ("c3", smid * smid), "fc2": "fc1"}


def wsn_alexnet_sources(model, names: list[str]) -> dict:
    """The WSN AlexNet: a chain; fc1 reads conv3's channels flattened (smid * smid each)."""
    smid = model.smid
    return {"conv1": None, "conv2": "conv1", "conv3": "conv2", "fc1": ("conv3", smid * smid), "fc2": "fc1"}


CASES = {
    "avalanche_simple_cnn": Case(avalanche_simple_cnn, lambda: avalanche_simple_cnn.make(num_classes=5),
                                 "avalanche_simple_cnn", dict(input_channels=3), (3, 3, 32, 32),
                                 dropped=("classifier.",), sources=chain_sources),
    "avalanche_slim_resnet18": Case(avalanche_slim_resnet18, lambda: avalanche_slim_resnet18.make(nclasses=5, nf=4),
                                    "avalanche_slim_resnet18", dict(nf=4), (3, 3, 32, 32), dropped=("linear.",)),
    "densenet_bc": Case(densenet_bc, densenet_bc.make, "densenet_bc",
                        dict(growth_rate=4, block_config=[2, 2], num_init_features=8, bn_size=2), (3, 3, 32, 32)),
    "densenet_bc-dropout": Case(densenet_bc, lambda: densenet_bc.make(drop_rate=0.2), "densenet_bc",
                                dict(growth_rate=4, block_config=[2, 2], num_init_features=8, bn_size=2, drop_rate=0.2),
                                (3, 3, 32, 32)),
    "hat_alexnet": Case(hat_alexnet, hat_alexnet.make, "hat_alexnet",
                        dict(input_channels=3, input_size=32, channels=[16, 32, 64], hidden=64), (4, 3, 32, 32),
                        dropped=("last.",), sources=hat_alexnet_sources),
    "hat_mlp": Case(hat_mlp, hat_mlp.make, "hat_mlp", dict(input_channels=1, input_size=8, nlayers=2, nhid=32),
                    (4, 1, 8, 8), dropped=("last.",), sources=chain_sources),
    "hat_mlp-3layers": Case(hat_mlp, lambda: hat_mlp.make(nlayers=3, nhid=16), "hat_mlp",
                            dict(input_channels=1, input_size=8, nlayers=3, nhid=16), (4, 1, 8, 8),
                            dropped=("last.",), sources=chain_sources),
    "inception_net": Case(inception_net, inception_net.make, "inception_net",
                          dict(input_channels=3, width_div=8, branch3_kernel=5), (3, 3, 32, 32),
                          sources=lambda model, names: inception_net.hat_sources(model)),
    "mammoth_resnet18": Case(mammoth_resnet18, lambda: mammoth_resnet18.make(num_classes=5, nf=4),
                             "mammoth_resnet18", dict(nf=4, input_size=32), (3, 3, 32, 32),
                             dropped=("classifier.",)),
    # depth 8: one block in layer1 and layer2, but two in layer3 (its first and its last block), as
    # mammoth builds it; depth 14: two blocks per stage
    "mammoth_resnet32": Case(mammoth_resnet32, lambda: mammoth_resnet32.make(depth=8, num_classes=5),
                             "mammoth_resnet32", dict(depth=8), (3, 3, 32, 32), dropped=("bn_final.", "classifier.")),
    "mammoth_resnet32-depth14": Case(mammoth_resnet32, lambda: mammoth_resnet32.make(depth=14, num_classes=5),
                                     "mammoth_resnet32", dict(depth=14), (2, 3, 32, 32),
                                     dropped=("bn_final.", "classifier.")),
    # six blocks, four of stride 2: a 32x32 input ends 2x2, pooled to 1x1 (as the public cfg does)
    "mobilenet_v1": Case(mobilenet_v1, lambda: mobilenet_v1.make(num_classes=5), "mobilenet_v1",
                         dict(stem_width=8, widths=[16, 32, 32, 64, 64, 128], strides=[1, 2, 1, 2, 2, 2]),
                         (3, 3, 32, 32), dropped=("linear.",), sources=chain_sources),
    "pycil_resnet32": Case(pycil_resnet32, lambda: pycil_resnet32.make(depth=14, base_width=4, num_classes=5),
                           "pycil_resnet32", dict(depth=14, base_width=4), (3, 3, 32, 32), dropped=("fc.",)),
    "se_resnet18": Case(se_resnet18, lambda: se_resnet18.make(num_classes=5, width=8, reduction=4), "se_resnet18",
                        dict(width=8, reduction=4), (3, 3, 32, 32), dropped=("fc.",)),
    "torchvision_resnet18": Case(torchvision_resnet18, lambda: torchvision_resnet18.make(width=4),
                                 None, dict(width=4), (3, 3, 32, 32)),
    "wsn_alexnet": Case(wsn_alexnet, wsn_alexnet.make, "wsn_alexnet",
                        dict(input_channels=3, input_size=32, channels=[16, 32, 64], hidden=64), (4, 3, 32, 32),
                        dropped=("last.",), sources=wsn_alexnet_sources),
    "wsn_resnet18": Case(wsn_resnet18, lambda: wsn_resnet18.make(nf=4), "wsn_resnet18", dict(nf=4),
                         (3, 3, 32, 32), dropped=("last.",)),
}
WSN = ("wsn_alexnet", "wsn_resnet18", "mobilenet_v1", "se_resnet18")  # the WSN paper's networks, and depthwise-separable blocks
# torchvision's spec lives in specs/ (it predates specs/peers/)
SPEC_PATHS = {"torchvision_resnet18": SPECS / "torchvision_resnet18"}


def spec_path(name: str, variant: str = "") -> str:
    base = SPEC_PATHS[name] if name in SPEC_PATHS else PEER_SPECS / CASES[name].stem
    return f"{base}{variant}.cl"


def data(shape, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def load_reference_weights(ref, ours, dropped, extra_prefixes=()) -> None:
    """Copy the reference's state into `ours`: its keys, in order, must be the reference's minus
    the `dropped` prefixes (plus the scheme's own, `extra_prefixes`, which are left as they are)."""
    ref_sd = ref.state_dict()
    kept = [k for k in ref_sd if not k.startswith(tuple(dropped))]
    ours_keys = [k for k in ours.state_dict() if not k.startswith(tuple(extra_prefixes))] \
        if extra_prefixes else list(ours.state_dict())
    assert ours_keys == kept
    missing, unexpected = ours.load_state_dict({k: ref_sd[k] for k in kept}, strict=not extra_prefixes)
    assert not unexpected and all(k.startswith(tuple(extra_prefixes)) for k in missing)


def assert_same_dicts(a: dict, b: dict, what: str) -> None:
    assert list(a) == list(b), what
    for k in a:
        assert torch.equal(a[k], b[k]), (what, k)


def assert_same_grads(ref, ours, dropped, extra: dict | None = None) -> None:
    """Every parameter of `ours` has the gradient of the reference's parameter of the same name."""
    ref_params = dict(ref.named_parameters())
    checked = 0
    for name, p in ours.named_parameters():
        if name in ref_params:
            g_ref = ref_params[name].grad
            assert (p.grad is None) == (g_ref is None), name
            assert g_ref is None or torch.equal(p.grad, g_ref), name
            checked += 1
        elif extra is not None and name in extra:
            g_ref = extra[name].grad
            assert (p.grad is None) == (g_ref is None), name
            assert g_ref is None or torch.equal(p.grad, g_ref), name
            checked += 1
        else:
            raise AssertionError(f"parameter {name} has no counterpart")
    assert checked and all(n in dict(ours.named_parameters()) for n in ref_params if not n.startswith(dropped))


def assert_same_buffers(ref, ours) -> None:
    """The batch norms' running statistics (updated by a train-mode forward) are the reference's."""
    ref_buffers = dict(ref.named_buffers())
    for k, v in ours.named_buffers():
        assert torch.equal(v, ref_buffers[k]), k


def ones_masks(layers: dict) -> dict[str, torch.Tensor]:
    return {n: torch.ones(m.weight.shape[0]) for n, m in layers.items()}


# ---------------------------------------------------------------------------------------------
# plain parity
# ---------------------------------------------------------------------------------------------


def check_plain(name: str) -> None:
    case = CASES[name]
    torch.manual_seed(0)
    ref = case.make()
    ours = specc.build(spec_path(name), **case.args)
    load_reference_weights(ref, ours, case.dropped)
    x = data(case.input_shape)
    layers = case.module.hat_layers(ref)

    ref.eval(), ours.eval()
    feature, acts = ours(x)
    assert torch.equal(feature, ref.forward_features(x))
    # the activations are the reference's (HAT's forward with all-ones masks is the plain one)
    if hasattr(case.module, "plain_forward_with_activations"):
        expected_feature, expected_acts = case.module.plain_forward_with_activations(ref, x)
    else:
        expected_feature, expected_acts = case.module.hat_forward_features(ref, x, ones_masks(layers))
    assert torch.equal(feature, expected_feature)
    assert_same_dicts(acts, expected_acts, "activations")

    ref.train(), ours.train()
    torch.manual_seed(5)
    a = ref.forward_features(x)
    torch.manual_seed(5)
    b, _ = ours(x)
    assert torch.equal(a, b)
    w = data(a.shape, seed=2)
    (a * w).sum().backward()
    (b * w).sum().backward()
    assert_same_grads(ref, ours, case.dropped)
    assert_same_buffers(ref, ours)


def check_facts(name: str, variant: str = "") -> None:
    case = CASES[name]
    ref = case.make()
    ours = specc.build(spec_path(name, variant), **case.args)
    assert_same_layers(ours, case.module.hat_layers(ref))


def assert_same_layers(ours, layers: dict) -> None:
    """specc's weighted layers are the reference's (`layers`: name -> module), in order, with the
    seed's neighbours and the same weight shapes."""
    names = list(layers)
    assert ours.weighted_layer_names == names
    for i, n in enumerate(names):
        assert ours.preceding_layer_name(n) == (names[i - 1] if i else None)
        assert ours.next_layer_name(n) == (names[i + 1] if i + 1 < len(names) else None)
        assert ours.get_layer_by_name(n).weight.shape == layers[n].weight.shape, n


# HAT on a pre-activation network: specc refuses it (a batch norm after a concatenation would move
# a masked unit's zero; specc/analysis/mask_points.py); no HAT spec, see finding 3
NO_HAT = ("densenet_bc", "densenet_bc-dropout", "se_resnet18")  # se_resnet18: no _hat spec yet


PLAIN = sorted(CASES)


@pytest.mark.parametrize("name", PLAIN)
def test_plain_parity(name):
    check_plain(name)


@pytest.mark.parametrize("name", PLAIN)
def test_weighted_layers_and_neighbours(name):
    check_facts(name)


# ---------------------------------------------------------------------------------------------
# HAT parity
# ---------------------------------------------------------------------------------------------

S_MAX = 400.0


def build_hat(name: str, variant: str = "_hat"):
    case = CASES[name]
    torch.manual_seed(0)
    ref = case.make()
    ours = specc.build(spec_path(name, variant), **case.args, **case.hat_args)
    load_reference_weights(ref, ours, case.dropped, extra_prefixes=("task_embedding_t.",))
    layers = case.module.hat_layers(ref)
    emb = hat_ref.new_embeddings({n: m.weight.shape[0] for n, m in layers.items()},
                                 torch.Generator().manual_seed(3))
    assert list(ours.task_embedding_t) == list(layers)
    with torch.no_grad():
        for n, e in emb.items():
            ours.task_embedding_t[n].weight.copy_(e)
    ours.setup_task_id(1)
    return case, ref, ours, emb, layers


def reference_arithmetic(ours):
    """specc.flush_denormals() where `ours` flushes subnormals in its own forward and backward."""
    return specc.flush_denormals() if getattr(ours, "flush_subnormals", False) else nullcontext()


def check_hat(name: str) -> None:
    case, ref, ours, emb, layers = build_hat(name)
    x = data(case.input_shape)
    embedding_params = {f"task_embedding_t.{n}.weight": e for n, e in emb.items()}
    with reference_arithmetic(ours):
        stages = [("train", dict(s_max=S_MAX, batch_idx=2, num_batches=5),
                   hat_ref.gate_masks(emb, hat_ref.annealed_scale(S_MAX, 2, 5))),
                  ("validation", dict(s_max=1.0), hat_ref.gate_masks(emb, 1.0)),  # fractional masks
                  ("validation", dict(s_max=S_MAX), hat_ref.gate_masks(emb, S_MAX)),
                  ("test", dict(test_task_id=1), None)]
    for stage, kwargs, masks in stages:
        if stage == "test":
            stored = ours.store_mask()
            masks = hat_ref.binary_masks(emb)
            assert_same_dicts(stored, masks, "stored masks")
        train = stage == "train"
        ref.train(train), ours.train(train)
        torch.manual_seed(7)
        with reference_arithmetic(ours):
            expected, expected_acts = case.module.hat_forward_features(ref, x, masks)
        torch.manual_seed(7)
        feature, mask, acts = ours(x, stage, **kwargs)
        assert torch.equal(feature, expected), stage
        assert_same_dicts(mask, masks, f"{stage} masks")
        assert_same_dicts(acts, expected_acts, f"{stage} activations")
        if train:
            w = data(expected.shape, seed=2)
            with reference_arithmetic(ours):
                ((expected * w).sum() + sum(m.sum() for m in masks.values())).backward()
            ((feature * w).sum() + sum(m.sum() for m in mask.values())).backward()
            assert_same_grads(ref, ours, case.dropped, extra=embedding_params)
            assert_same_buffers(ref, ours)


def test_hat_alexnet_masks_where_the_paper_puts_them():
    """The public HAT code multiplies a conv's mask after ReLU, dropout and pooling and a linear
    layer's after ReLU and dropout; specc before the ReLU. Without dropout (eval) the same bits,
    fractional, nearly binary and stored binary masks alike."""
    case, ref, ours, emb, layers = build_hat("hat_alexnet")
    ref.eval(), ours.eval()
    x = data(case.input_shape)
    for s in (1.0, S_MAX):
        feature, _, _ = ours(x, "validation", s_max=s)
        with reference_arithmetic(ours):
            expected = hat_alexnet.hat_paper_forward_features(ref, x, hat_ref.gate_masks(emb, s))
        assert torch.equal(feature, expected)
    ours.store_mask()
    feature, _, _ = ours(x, "test", test_task_id=1)
    assert torch.equal(feature, hat_alexnet.hat_paper_forward_features(ref, x, hat_ref.binary_masks(emb)))


# the MLP's dropouts scale by 1 / 0.5 = 2, exact in floating point: there both placements give the
# same bits; AlexNet's 0.2 dropout scales by 1.25, which rounds differently on either side of a mask
@pytest.mark.parametrize("name, paper, placements_differ", [("hat_alexnet", hat_alexnet, True),
                                                            ("hat_mlp-3layers", hat_mlp, False)])
def test_the_papers_mask_point_gives_the_papers_network(name, paper, placements_differ):
    """`mask hat(point="chain_end")` multiplies after ReLU, dropout (and max pooling), as the public
    HAT code does: the same bits in training (dropout on, same seed), gradients included."""
    case, ref, ours, emb, layers = build_hat(name, "_hat_paper")
    x = data(case.input_shape)
    ref.train(), ours.train()
    torch.manual_seed(7)
    with reference_arithmetic(ours):
        masks = hat_ref.gate_masks(emb, hat_ref.annealed_scale(S_MAX, 2, 5))
        expected = paper.hat_paper_forward_features(ref, x, masks)
    torch.manual_seed(7)
    feature, mask, _ = ours(x, "train", s_max=S_MAX, batch_idx=2, num_batches=5)
    assert torch.equal(feature, expected)
    w = data(expected.shape, seed=2)
    with reference_arithmetic(ours):
        (expected * w).sum().backward()
    (feature * w).sum().backward()
    assert_same_grads(ref, ours, case.dropped, extra={f"task_embedding_t.{n}.weight": e for n, e in emb.items()})
    # CLArena's placement differs from the paper's in training (dropout's scaling rounds differently)
    _, _, clarena_placement, _, _ = build_hat(name)
    clarena_placement.train()
    torch.manual_seed(7)
    other, _, _ = clarena_placement(x, "train", s_max=S_MAX, batch_idx=2, num_batches=5)
    assert torch.equal(other, expected) != placements_differ
    ref.eval(), ours.eval()
    ours.store_mask()
    feature, _, _ = ours(x, "test", test_task_id=1)
    assert torch.equal(feature, paper.hat_paper_forward_features(ref, x, hat_ref.binary_masks(emb)))


def test_hat_mlp_masks_where_the_paper_puts_them():
    """The public HAT MLP multiplies a layer's mask after its ReLU and dropout; specc before the
    ReLU. Without dropout (eval) the same bits."""
    case, ref, ours, emb, layers = build_hat("hat_mlp-3layers")
    ref.eval(), ours.eval()
    x = data(case.input_shape)
    for s in (1.0, S_MAX):
        feature, _, _ = ours(x, "validation", s_max=s)
        with reference_arithmetic(ours):
            expected = hat_mlp.hat_paper_forward_features(ref, x, hat_ref.gate_masks(emb, s))
        assert torch.equal(feature, expected)


def input_measure(measure: dict, source) -> torch.Tensor | None:
    """The measure of each input unit of a layer whose inputs carry `source`'s units: None (the
    network input), a layer name, (layer, positions per unit) (through a flatten), or a list of
    those (a concatenation, in order)."""
    if source is None:
        return None
    parts = source if isinstance(source, list) else [source]
    pieces = []
    for part in parts:
        owner, repeat = part if isinstance(part, tuple) else (part, 1)
        pieces.append(measure[owner].repeat_interleave(repeat))
    return torch.cat(pieces)


def random_measure(layers: dict, seed: int) -> dict[str, torch.Tensor]:
    """Multiples of 1/1024 in [0, 1]: min, max and (a + b) / 2 are exact in float32."""
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randint(0, 1025, (m.weight.shape[0],), generator=g).float() / 1024 for n, m in layers.items()}


def check_hat_measures(name: str, grouped: bool) -> None:
    """The measures of the layers that are grouped convolutions (`grouped`) or of the others."""
    case, ref, ours, emb, layers = build_hat(name)
    names = [n for n, m in layers.items() if (getattr(m, "groups", 1) != 1) == grouped]
    assert names
    sources = (case.sources or (lambda model, names: resnet_sources(names)))(ref, list(layers))
    for measure in (random_measure(layers, 4), hat_ref.binary_masks(emb)):
        for layer in names:
            inputs = input_measure(measure, sources[layer])
            for mode in ("min", "max", "mean"):
                expected_w, expected_b = hat_ref.parameter_wise_measure(
                    layers[layer].weight, measure[layer], inputs, mode, groups=getattr(layers[layer], "groups", 1))
                got_w, got_b = ours.get_layer_measure_parameter_wise(measure, layer, mode)
                assert got_w.shape == layers[layer].weight.shape, (layer, mode)
                assert torch.equal(got_w, expected_w), (layer, mode)
                assert torch.equal(got_b, expected_b), (layer, mode)


HAT = sorted(n for n in CASES if n not in NO_HAT)


@pytest.mark.parametrize("name", HAT)
def test_hat_parity(name):
    check_hat(name)


GROUPED = ("mobilenet_v1",)  # peers with grouped (depthwise) convolutions


@pytest.mark.parametrize("name", HAT)
def test_hat_measures(name):
    check_hat_measures(name, grouped=False)


@pytest.mark.parametrize("name", GROUPED)
def test_hat_measures_of_grouped_convs(name):
    check_hat_measures(name, grouped=True)


def test_hat_measure_of_grouped_first_layer(tmp_path):
    """A grouped conv reading the network input: its own measure on every weight, as for any first layer."""
    (tmp_path / "g.cl").write_text(
        "network G() {\n"
        "    input image(4, 8, 8)\n"
        "    c0: conv2d(8, kernel=3, padding=1, groups=2) -> r0: ReLU() -> record\n"
        "    c1: conv2d(8, kernel=1) -> r1: ReLU() -> record\n"
        "}\n"
        "backbone HATMaskG = G\n"
        "mask hat(gate = \"sigmoid\")\n")
    model = specc.build(tmp_path / "g.cl")
    measure = {"c0": torch.arange(8.0) / 8, "c1": torch.arange(8.0).flip(0) / 8}
    conv = model.get_layer_by_name("c0")
    for mode in ("min", "max", "mean"):
        expected_w, expected_b = hat_ref.parameter_wise_measure(conv.weight, measure["c0"], None, mode, groups=2)
        got_w, got_b = model.get_layer_measure_parameter_wise(measure, "c0", mode)
        assert torch.equal(got_w, expected_w) and torch.equal(got_b, expected_b)


@pytest.mark.parametrize("name", HAT)
def test_hat_weighted_layers_and_neighbours(name):
    check_facts(name, "_hat")


# ---------------------------------------------------------------------------------------------
# WSN parity (the WSN paper's networks)
# ---------------------------------------------------------------------------------------------


def check_wsn(name: str) -> None:
    """The `_wsn` spec against the reference whose weights are multiplied by tests/reference/wsn.py's
    gate of the same scores: masks, features, activations, gradients (weights and scores)."""
    case = CASES[name]
    torch.manual_seed(0)
    ref = case.make()
    ours = specc.build(spec_path(name, "_wsn"), **case.args)
    load_reference_weights(ref, ours, case.dropped, extra_prefixes=("weight_score_t.", "bias_score_t."))
    layers = case.module.wsn_layers(ref)
    assert ours.weighted_layer_names == list(layers)
    g = torch.Generator().manual_seed(3)
    scores = {n: torch.nn.Parameter(torch.randn(m.weight.shape[0], m.weight[0].numel(), generator=g))
              for n, m in layers.items()}
    bias_scores = {n: torch.nn.Parameter(torch.randn(1, m.weight.shape[0], generator=g)) for n, m in layers.items()}
    assert list(ours.weight_score_t) == list(layers)
    with torch.no_grad():
        for n in layers:
            ours.weight_score_t[n].weight.copy_(scores[n])
            if ours.bias_score_t[n] is not None:
                ours.bias_score_t[n].weight.copy_(bias_scores[n])
    extra = {f"weight_score_t.{n}.weight": p for n, p in scores.items()}
    extra.update({f"bias_score_t.{n}.weight": p for n, p in bias_scores.items()})
    ours.setup_task_id(1)
    x = data(case.input_shape)
    for stage, c in (("train", 0.5), ("validation", 0.3), ("test", None)):
        train = stage == "train"
        ref.train(train), ours.train(train)
        if stage == "test":
            wm = {n: (torch.rand(scores[n].shape, generator=g) < 0.5).float() for n in layers}
            bm = {n: (torch.rand(bias_scores[n].shape[1:], generator=g) < 0.5).float() for n in layers}
            kwargs = dict(mask_percentage=0.5, test_mask=(wm, bm))
        else:
            wm = {n: wsn_ref.reference_gate(scores[n], c) for n in layers}
            bm = {n: wsn_ref.reference_gate(bias_scores[n][0], c) for n in layers}
            kwargs = dict(mask_percentage=c)
        torch.manual_seed(7)
        expected, expected_acts = case.module.wsn_forward_features(ref, x, wm)
        torch.manual_seed(7)
        feature, weight_mask, bias_mask, acts = ours(x, stage, **kwargs)
        assert torch.equal(feature, expected), stage
        assert_same_dicts(weight_mask, wm, f"{stage} weight masks")
        assert_same_dicts({n: m for n, m in bias_mask.items() if m is not None},
                          {n: m for n, m in bm.items() if bias_mask.get(n) is not None}, f"{stage} bias masks")
        assert_same_dicts(acts, expected_acts, f"{stage} activations")
        if train:
            w = data(expected.shape, seed=2)
            (expected * w).sum().backward()
            (feature * w).sum().backward()
            assert_same_grads(ref, ours, case.dropped, extra=extra)
            assert_same_buffers(ref, ours)


@pytest.mark.parametrize("name", WSN)
def test_wsn_parity(name):
    check_wsn(name)


@pytest.mark.parametrize("name", WSN)
def test_wsn_weighted_layers_and_neighbours(name):
    case = CASES[name]
    ours = specc.build(spec_path(name, "_wsn"), **case.args)
    layers = case.module.wsn_layers(case.make())
    assert_same_layers(ours, layers)
    for n, layer in layers.items():
        assert ours.weight_score_t[n].weight.shape == (layer.weight.shape[0], layer.weight[0].numel())
