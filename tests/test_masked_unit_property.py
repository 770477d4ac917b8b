"""A HAT-masked unit contributes nothing, for every spec (hypothesis).

HAT's promise is that a unit whose mask is 0 cannot affect the network: whatever sits in the unit's
chain (batch norm before or after the activation, pooling, a residual add), the next layers see it
as exactly 0. The check here does not use specc's analysis: random conv chains (layers in any order
after the conv: batch norm, activation, max pool; grouped convs; residual blocks with identity,
projection or option-A shortcuts (strided conv, `subsample` and `pad_channels`); blocks that
concatenate a parallel branch (`concat`)) are masked with one unit of one layer driven to exactly 0 (its embedding very
negative), and then

1. every parameter of that unit's chain (the conv's filter and bias for the unit, the channel's batch
   norm weight, bias and running statistics) is changed: the network's output must not change at all
   (a mask placed before a batch norm lets the norm's shift through: this catches it);
2. the channel reaches every later conv/linear of the main path as exactly 0 when nothing but
   pooling and flatten lie between them.

Measures of the same specs are checked against a direct (i, j) loop in test_hat_measure-style
(tests/test_peer_specs.py covers grouped convs on the peers).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from hypothesis import HealthCheck, given, note, settings, strategies
from hypothesis import strategies as st
from test_hat_measure import AGG, random_measure

import specc

AFTER = ["bn", "act", "pool"]


@dataclass
class Stage:
    name: str
    width: int
    groups: int
    after: list[str]  # what follows the conv, in order
    residual: str | None  # None, "identity", "projection" or "option_a"
    width_in: int = 4
    concat: int = 0  # channels of a parallel 1x1 conv branch concatenated after the chain (0: none)


@st.composite
def stages(draw):
    n = draw(st.integers(1, 3))
    width_in = 4
    out = []
    size = 8
    for i in range(n):
        width = draw(st.sampled_from([4, 8]))
        groups = draw(st.sampled_from([g for g in (1, 2, 4) if width_in % g == 0 and width % g == 0]))
        after = draw(st.permutations(AFTER))
        after = [a for a in after if draw(st.booleans())]
        if size <= 2:
            after = [a for a in after if a != "pool"]
        residual = None
        if "pool" not in after:
            choices = [None, "identity" if width == width_in else "projection", "projection"]
            if width >= width_in and size >= 4:
                choices.append("option_a")
            residual = draw(st.sampled_from(choices))
        concat = draw(st.sampled_from([0, 2, 4])) if residual is None and "pool" not in after else 0
        out.append(Stage(f"c{i}", width, groups, after, residual, width_in, concat))
        width_in = width + concat
        size //= 2 if "pool" in after or residual == "option_a" else 1
    return out


def spec_text(stages: list[Stage]) -> str:
    """The network; a stage with a residual is a block of its own (a branch reads its block's input)."""
    lines, blocks = [], []
    for s in stages:
        stride = 2 if s.residual == "option_a" else 1
        chain = [f"{s.name}: conv2d({s.width}, kernel=3, stride={stride}, padding=1, groups={s.groups})"]
        for a in s.after:
            chain.append({"bn": f"{s.name}_bn: batchnorm2d()", "act": f"{s.name}_act: LeakyReLU(0.1)",
                          "pool": f"{s.name}_pool: maxpool2d(2)"}[a])
        if s.residual:
            chain.append("add(short)")
        chain.append("record")
        if s.concat:
            chain.append("concat(side)")
        body = ["    " + " -> ".join(chain)]
        if s.concat:  # a parallel path, declared before the statement that concatenates it
            body.insert(0, f"    branch side = {s.name}_side: conv2d({s.concat}, kernel=1) -> record")
        if s.residual == "projection":
            body.append(f"    branch short = {s.name}_proj: conv2d({s.width}, kernel=1, bias=false)")
        elif s.residual == "identity":
            body.append("    branch short = identity")
        elif s.residual == "option_a":
            pad = f" -> pad_channels(0, {s.width - s.width_in})" if s.width > s.width_in else ""
            body.append(f"    branch short = subsample(2){pad}")
        if s.residual or s.concat:
            blocks += [f"block stage_{s.name}() {{", *body, "}"]
            lines.append(f"    {s.name}_block: stage_{s.name}()")
        else:
            lines += body
    return "\n".join(blocks + ["network Net(output_dim: int = 3) {", "    input image(4, 8, 8)", *lines,
                               "    pool: adaptive_avgpool2d(1) -> flatten", "    fc: linear(output_dim) -> record",
                               "}", "backbone HATNet = Net", 'mask hat(gate="sigmoid")']) + "\n"


def _path(s: Stage, name: str) -> str:
    """The module path of `name` in stage `s` ('/'-separated, as weighted layer names are)."""
    return f"{s.name}_block/{name}" if s.residual or s.concat else name


def _forward(net, x):
    return net(x, "train", s_max=400.0, batch_idx=2, num_batches=2)  # the last batch: s = s_max


@settings(max_examples=int(os.environ.get("SPECC_FUZZ_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(chain=stages(), data=st.data())
def test_a_masked_unit_changes_nothing_downstream(tmp_path_factory, chain, data):
    text = spec_text(chain)
    note(text)
    path = tmp_path_factory.mktemp("prop") / "net.cl"
    path.write_text(text)
    torch.manual_seed(0)
    net = specc.build(path)
    net.setup_task_id(1)
    stage = data.draw(strategies.sampled_from(chain))
    unit = data.draw(strategies.integers(0, stage.width - 1))
    layer = _path(stage, stage.name)
    assert layer in net.weighted_layer_names
    with torch.no_grad():
        for emb in net.task_embedding_t.values():
            emb.weight.fill_(1.0)
        # Residual adds tie units to one mask: the embedding that masks `layer`'s units masks them all.
        net.task_embedding_t[layer].weight[0, unit] = -100.0
    x = torch.randn(3, 4, 8, 8)
    net.train()
    feature, mask, _ = _forward(net, x)
    assert mask[layer][unit].item() == 0.0

    # 2. the channel reaches the next conv / the classifier as exactly 0 where only pools lie between
    seen = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: seen.__setitem__(name, args[0].detach()))
             for name, m in net.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    _forward(net, x)
    for h in hooks:
        h.remove()
    index = chain.index(stage)
    following = chain[index + 1] if index + 1 < len(chain) else None
    consumer = _path(following, following.name).replace("/", ".") if following else "fc"
    assert torch.all(seen[consumer][:, unit] == 0), f"unit {unit} of {layer} reaches {consumer} non-zero"
    if following is not None and following.residual == "projection":
        projection = _path(following, f"{following.name}_proj").replace("/", ".")
        assert torch.all(seen[projection][:, unit] == 0), f"unit {unit} of {layer} reaches {projection} non-zero"

    # 1. changing every parameter of the unit's chain changes nothing (training and eval mode; no
    # training-mode pass between the eval ones, which would move every channel's running statistics)
    net.eval()
    eval_before = _forward(net, x)[0]
    with torch.no_grad():
        conv = net.get_layer_by_name(layer)
        conv.weight[unit] += torch.randn_like(conv.weight[unit]) * 3
        if conv.bias is not None:
            conv.bias[unit] += 5.0
        if "bn" in stage.after:
            bn = net.get_submodule(_path(stage, f"{stage.name}_bn").replace("/", "."))
            bn.weight[unit] += 2.0
            bn.bias[unit] += 7.0
            bn.running_mean[unit] += 1.0
    assert torch.equal(eval_before, _forward(net, x)[0])
    net.train()
    assert torch.equal(feature, _forward(net, x)[0])


def _input_owners(chain: list[Stage]) -> dict[str, list[tuple[str, int] | None]]:
    """For every weighted layer, the (layer, unit) each of its input channels carries, None for the
    network's input: worked out from the generator's own description (a residual add's channels
    are the masked layer's that owns the add; a concatenation's the stream's, then the branch's)."""
    current: list[tuple[str, int] | None] = [None] * 4
    owners = {}
    for s in chain:
        layer = _path(s, s.name)
        owners[layer] = current
        out = [(layer, u) for u in range(s.width)]
        if s.concat:
            side = _path(s, f"{s.name}_side")
            owners[side] = current
            out += [(side, u) for u in range(s.concat)]
        current = out
    owners["fc"] = current  # after a 1x1 adaptive pool and flatten: one input per channel
    return owners


@settings(max_examples=int(os.environ.get("SPECC_FUZZ_EXAMPLES", "25")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(chain=stages(), seed=st.integers(0, 2**16))
def test_measures_equal_a_direct_loop(tmp_path_factory, chain, seed):
    """get_layer_measure_parameter_wise at every (unit i, input j) of every weighted layer equals
    the aggregation of i's measure with the measure of the unit input j carries (grouped convs: the
    channel of i's group; the network's input: i's own measure), for min, max and mean."""
    text = spec_text(chain)
    note(text)
    path = tmp_path_factory.mktemp("measure") / "net.cl"
    path.write_text(text)
    net = specc.build(path)
    measure = random_measure(net, seed)  # multiples of 1/1024: min, max and (a + b) / 2 are exact
    owners = _input_owners(chain)
    assert set(owners) == set(net.weighted_layer_names)
    for layer, inputs in owners.items():
        module = net.get_layer_by_name(layer)
        out_units, per_group = module.weight.shape[:2]
        groups = getattr(module, "groups", 1)
        for mode, agg in AGG.items():
            weight_measure, bias_measure = net.get_layer_measure_parameter_wise(measure, layer, mode)
            assert torch.equal(bias_measure, measure[layer])
            got = weight_measure.reshape(out_units, per_group, -1)
            for i in range(out_units):
                own = measure[layer][i].item()
                for j in range(per_group):
                    source = inputs[(i // (out_units // groups)) * per_group + j]
                    expected = own if source is None else agg(own, measure[source[0]][source[1]].item())
                    assert torch.all(got[i, j] == expected), (layer, mode, i, j, source)
