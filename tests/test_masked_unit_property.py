"""A HAT-masked unit contributes nothing, for every spec (hypothesis).

HAT's promise is that a unit whose mask is 0 cannot affect the network: whatever sits in the unit's
chain (batch norm before or after the activation, pooling, a residual add), the next layers see it
as exactly 0. The check here does not use specc's analysis: random conv chains (layers in any order
after the conv: batch norm, activation, max pool; grouped convs; residual blocks with identity or
projection shortcuts) are masked with one unit of one layer driven to exactly 0 (its embedding very
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
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies
from hypothesis import strategies as st

import specc

AFTER = ["bn", "act", "pool"]


@dataclass
class Stage:
    name: str
    width: int
    groups: int
    after: list[str]  # what follows the conv, in order
    residual: str | None  # None, "identity" or "projection"


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
            residual = draw(st.sampled_from([None, "identity" if width == width_in else "projection",
                                             "projection"]))
        out.append(Stage(f"c{i}", width, groups, after, residual))
        width_in = width
        size //= 2 if "pool" in after else 1
    return out


def spec_text(stages: list[Stage]) -> str:
    """The network; a stage with a residual is a block of its own (a branch reads its block's input)."""
    lines, blocks = [], []
    for s in stages:
        chain = [f"{s.name}: conv2d({s.width}, kernel=3, padding=1, groups={s.groups})"]
        for a in s.after:
            chain.append({"bn": f"{s.name}_bn: batchnorm2d()", "act": f"{s.name}_act: LeakyReLU(0.1)",
                          "pool": f"{s.name}_pool: maxpool2d(2)"}[a])
        if s.residual:
            chain.append("add(short)")
        chain.append("record")
        body = ["    " + " -> ".join(chain)]
        if s.residual == "projection":
            body.append(f"    branch short = {s.name}_proj: conv2d({s.width}, kernel=1, bias=false)")
        elif s.residual == "identity":
            body.append("    branch short = identity")
        if s.residual:
            blocks += [f"block stage_{s.name}() {{", *body, "}"]
            lines.append(f"    {s.name}_block: stage_{s.name}()")
        else:
            lines += body
    return "\n".join(blocks + ["network Net(output_dim: int = 3) {", "    input image(4, 8, 8)", *lines,
                               "    pool: adaptive_avgpool2d(1) -> flatten", "    fc: linear(output_dim) -> record",
                               "}", "backbone HATNet = Net", 'mask hat(gate="sigmoid")']) + "\n"


def _path(s: Stage, name: str) -> str:
    """The module path of `name` in stage `s` ('/'-separated, as weighted layer names are)."""
    return f"{s.name}_block/{name}" if s.residual else name


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
