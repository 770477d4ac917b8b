"""The language of issue 12 ("Architectures researchers actually use"): unambiguous guards and
groups, `concat`, option-A shortcuts (`subsample`, `pad_channels`), one module at several points
(`use`), layer arguments, `record if`, computed module names, `in` at network level, and backbones
with bound arguments (families, block-typed parameters).

Each feature is checked against an independent hand-written plain-PyTorch module with the same
weights (torch.equal in eval and train mode, and the gradients), through `specc.build` (which runs
the source `specc compile` writes), and each misuse is a SpecError at its position."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from conftest import SPECS

import specc
from specc.emit.source import emit_source
from specc.frontend.elaborate import elaborate
from specc.frontend.errors import SpecError
from specc.frontend.facts import analyse
from specc.frontend.load import load_program
from specc.frontend.parse import parse_file
from specc.frontend.probe import probe
from specc.report import weighted_layer_table

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def write(tmp_path: Path, text: str, name: str = "t.cl") -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return p


def error_of(path: Path, **args) -> SpecError:
    """The SpecError of the `specc check` pipeline (with constructor `args`, if any)."""
    with pytest.raises(SpecError) as info:
        program = load_program(str(path))
        if args:
            analyse(elaborate(program, args))
        else:
            probe(program)
    return info.value


def at(err: SpecError, line: int, column: int) -> None:
    assert err.pos is not None and (err.pos.line, err.pos.column) == (line, column), err.render()


def col_of(path: Path, line: int, needle: str, nth: int = 0) -> int:
    """1-based column of the `nth` occurrence of `needle` on `line` of the file."""
    text = path.read_text().splitlines()[line - 1]
    i = -1
    for _ in range(nth + 1):
        i = text.index(needle, i + 1)
    return i + 1


def source_of(path: Path) -> str:
    return emit_source(load_program(str(path)))


def build(path: Path, **args) -> nn.Module:
    """`specc.build(path, **args)`, checked against what the elaborator makes of the spec for the
    same arguments (what `specc check` and `show` report): the same modules in the same order, the
    same weighted layers, and a forward recording the layers the IR records."""
    module = specc.build(path, **args)
    ir = analyse(elaborate(load_program(str(path)), args))
    containers = ("ModuleList", "Sequential", "Block")
    assert [".".join(m.path) for m in ir.modules] == [n for n, _ in module.named_modules() if n], \
        "the elaborator's modules differ from the built module's"
    assert [m.cls if isinstance(m.cls, str) else m.cls.__name__ for m in ir.modules if m.cls not in containers] == \
        [type(m).__name__ for n, m in module.named_modules() if n and type(m).__name__ not in
         ("ModuleList", "Sequential") and not hasattr(m, "in_shape")]
    assert ir.weighted_layer_names == module.weighted_layer_names
    shape = ir.nodes[next(n.id for n in ir.nodes if n.op == "input")].shape.dims
    if None not in shape:
        was = module.training
        module.eval()
        with torch.no_grad():
            out = module(torch.zeros(2, *shape))
        module.train(was)
        acts = out[-1]
        assert sorted(acts) == sorted(ir.records), "the elaborator records other layers"
        assert tuple(out[0].shape[1:]) == tuple(ir.nodes[ir.output].shape.dims), "the output shapes differ"
    return module


def data(*shape, seed: int = 1) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def copy_into(ours: nn.Module, ref: nn.Module) -> None:
    """The reference's state into ours: the same keys, in the same order."""
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())


def check_parity(ours: nn.Module, ref: nn.Module, x: Tensor, records: bool = True) -> None:
    """Same feature (and recorded activations) in eval and train mode (twice: batch norm statistics),
    same buffers after training forwards, same gradients. `ref(x)` returns (feature, activations)."""
    copy_into(ours, ref)
    for train in (False, True, True, False):
        ours.train(train), ref.train(train)
        for m in (ours, ref):
            m.zero_grad()
        torch.manual_seed(3)
        f1, a1 = ours(x)
        torch.manual_seed(3)
        f2, a2 = ref(x)
        assert torch.equal(f1, f2)
        if records:
            assert list(a1) == list(a2)
            assert all(torch.equal(a1[k], a2[k]) for k in a2)
        if train:
            (f1.square().sum()).backward()
            (f2.square().sum()).backward()
            g1 = {n: p.grad for n, p in ours.named_parameters()}
            g2 = {n: p.grad for n, p in ref.named_parameters()}
            assert list(g1) == list(g2)
            assert all((g1[k] is None) == (g2[k] is None) and (g1[k] is None or torch.equal(g1[k], g2[k]))
                       for k in g2)
    b1, b2 = dict(ours.named_buffers()), dict(ref.named_buffers())
    assert list(b1) == list(b2) and all(torch.equal(b1[k], b2[k]) for k in b2)


def randomize_batch_norms(module: nn.Module) -> None:
    """Non-trivial affine parameters and statistics, so that batch norms are not identities."""
    g = torch.Generator().manual_seed(5)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.affine:
                m.weight.data = torch.rand(m.weight.shape, generator=g) + 0.5
                m.bias.data = torch.randn(m.bias.shape, generator=g)
            if m.track_running_stats:
                m.running_mean.data = torch.randn(m.running_mean.shape, generator=g)
                m.running_var.data = torch.rand(m.running_var.shape, generator=g) + 0.5


# ---------------------------------------------------------------------------------------------
# 1. unambiguous guards
# ---------------------------------------------------------------------------------------------

def net(body: str, params: str = "n: int = 3, c: bool = true", inp: str = "image(3, 8, 8)") -> str:
    return f"network N({params}) {{\n    input {inp}\n{textwrap.dedent(body).strip(chr(10))}\n}}\n"


@pytest.mark.parametrize("body, what, only, whole", [
    ("conv: conv2d(4, kernel=1) -> act: ReLU() -> bn: batchnorm2d() if c",
     "chain", "`-> (bn: batchnorm2d() if c)`", "`(conv: conv2d(4, kernel=1) -> act: ReLU() -> bn: batchnorm2d()) if c`"),
    ("conv: conv2d(4, kernel=1) -> act: ReLU() -> record if c",
     "chain", "`-> (record if c)`", "`(conv: conv2d(4, kernel=1) -> act: ReLU() -> record) if c`"),
    ("conv: conv2d(4, kernel=1) -> (act: ReLU() -> record) if c",
     "chain", "`-> ((act: ReLU() -> record) if c)`", "`(conv: conv2d(4, kernel=1) -> (act: ReLU() -> record)) if c`"),
    ("conv: conv2d(4, kernel=1) -> (act: ReLU() -> bn: batchnorm2d() if c)",
     "group", "`-> (bn: batchnorm2d() if c)`", "`(act: ReLU() -> bn: batchnorm2d()) if c`"),
])
def test_guard_on_the_last_element_of_a_chain_is_refused_at_its_if(tmp_path, body, what, only, whole):
    p = write(tmp_path, net(body))
    err = error_of(p)
    at(err, 3, col_of(p, 3, " if c") + 1)
    assert f"guards only the last element of the {what}" in err.message
    assert only in err.hint and whole in err.hint, err.hint


def test_guard_on_the_last_element_of_a_branch_is_refused(tmp_path):
    p = write(tmp_path, """
        block b(w: int) {
            conv: conv2d(w, kernel=3, padding=1) -> add(s)
            branch s = proj: conv2d(w, kernel=1) -> proj_bn: batchnorm2d() if in.channels != w
        }
        network N() {
            input image(3, 8, 8)
            x: b(4)
        }
        """)
    err = error_of(p)
    at(err, 3, col_of(p, 3, "if in"))
    assert "of the branch" in err.message
    assert "`-> (proj_bn: batchnorm2d() if in.channels != w)`" in err.hint
    assert "`branch ... = (proj: conv2d(w, kernel=1) -> proj_bn: batchnorm2d()) if in.channels != w`" in err.hint


@pytest.mark.parametrize("body", [
    "conv: conv2d(4, kernel=1) -> bn: batchnorm2d() if c -> act: ReLU()",  # a middle element
    "conv: conv2d(4, kernel=1) if c",  # a chain of one element
    "conv: conv2d(4, kernel=1) -> (bn: batchnorm2d() if c)",  # one trailing element, in parentheses
    "(conv: conv2d(4, kernel=1) -> bn: batchnorm2d()) if c",  # the whole chain
    "conv: conv2d(4, kernel=1) -> (bn: batchnorm2d() -> act: ReLU()) if c -> record",  # a middle group
])
def test_unambiguous_guards_are_accepted(tmp_path, body):
    probe(load_program(str(write(tmp_path, net(body)))))


def test_a_group_guards_every_element_in_it(tmp_path):
    p = write(tmp_path, net("""
        conv: conv2d(4, kernel=3, padding=1) -> act: ReLU() -> record
        (extra: conv2d(5, kernel=1) -> extra_bn: batchnorm2d() -> extra_act: ReLU() -> record) if c
        pool: adaptive_avgpool2d(1) -> flatten
        """))

    class Ref(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.c = c
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.act = nn.ReLU()
            if c:
                self.extra = nn.Conv2d(4, 5, 1)
                self.extra_bn = nn.BatchNorm2d(5)
                self.extra_act = nn.ReLU()
            self.pool = nn.AdaptiveAvgPool2d((1, 1))

        def forward(self, x):
            acts = {}
            x = acts["conv"] = self.act(self.conv(x))
            if self.c:
                x = acts["extra"] = self.extra_act(self.extra_bn(self.extra(x)))
            return torch.flatten(self.pool(x), 1), acts

    for c in (True, False):
        ours, ref = build(p, c=c), Ref(c)
        assert ours.weighted_layer_names == (["conv", "extra"] if c else ["conv"])
        randomize_batch_norms(ref)
        check_parity(ours, ref, data(2, 3, 8, 8))


class _ResBlock(nn.Module):
    """A residual block whose projection shortcut (conv and batch norm) exists only when strided."""

    def __init__(self, cin, width, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act = nn.ReLU()
        if stride != 1:
            self.proj = nn.Conv2d(cin, width, 1, stride=stride, bias=False)
            self.proj_bn = nn.BatchNorm2d(width)
        self.stride = stride

    def forward(self, x, path, acts):
        s = self.proj_bn(self.proj(x)) if self.stride != 1 else x
        out = self.act(self.bn1(self.conv1(x)) + s)
        acts[f"{path}/conv1"] = out
        return out


def test_a_guarded_group_as_a_branch(tmp_path):
    p = write(tmp_path, """
        block res(width: int, stride: int = 1) {
            conv1: conv2d(width, kernel=3, stride=stride, padding=1, bias=false) -> bn1: batchnorm2d()
                -> add(s) -> act: ReLU() -> record
            branch s = (proj: conv2d(width, kernel=1, stride=stride, bias=false) -> proj_bn: batchnorm2d())
                if stride != 1
        }
        network R() {
            input image(4, 8, 8)
            stages: res(4), res(6, stride=2)
        }
        """)

    class Ref(nn.Module):
        def __init__(self):
            super().__init__()
            self.stages = nn.Sequential(_ResBlock(4, 4, 1), _ResBlock(4, 6, 2))

        def forward(self, x):
            acts = {}
            for i, block in enumerate(self.stages):
                x = block(x, f"stages/{i}", acts)
            return x, acts

    ours, ref = build(p), Ref()
    assert ours.weighted_layer_names == ["stages/0/conv1", "stages/1/conv1"]
    randomize_batch_norms(ref)
    check_parity(ours, ref, data(2, 4, 8, 8))


def test_a_group_may_start_a_statement_after_one_that_ends_in_a_name(tmp_path):
    # `flatten` and `if c` end in a name: the `(` on the next line is no call of it.
    p = write(tmp_path, net("""
        conv: conv2d(4, kernel=1) -> bn: batchnorm2d() if c -> act: ReLU() -> record
        (conv2: conv2d(4, kernel=1) -> record) if c
        flatten
        (fc: linear(5) -> record) if n > 2
        fc2: linear (3)
        """))
    ours = build(p)
    assert ours.weighted_layer_names == ["conv", "conv2", "fc", "fc2"]
    assert ours.fc2.in_features == 5


def test_the_specs_docs_and_fixtures_use_no_refused_guard():
    """Every spec and fixture loads (a refused guard is a parse error), and the trailing dropout of
    specs/mlp.cl is spelled `-> (fc_dropout[i]: ... if dropout != none)`."""
    for path in sorted(SPECS.rglob("*.cl")) + sorted((SPECS.parent / "tests" / "fixtures").rglob("*.cl")):
        parse_file(path)
    assert "-> (fc_dropout[i]: dropout(dropout) if dropout != none)" in (SPECS / "mlp.cl").read_text()


# ---------------------------------------------------------------------------------------------
# 2. concat
# ---------------------------------------------------------------------------------------------

INCEPTION = """
block incep(w: int) {
    branch b3 = b3_conv: conv2d(w, kernel=3, padding=1) -> b3_bn: batchnorm2d() -> b3_act: ReLU() -> record
    branch pool = pool: maxpool2d(3, stride=1, padding=1) -> pool_conv: conv2d(w, kernel=1)
        -> pool_act: ReLU() -> record
    conv: conv2d(w, kernel=1) -> bn: batchnorm2d() -> act: ReLU() -> record -> concat(b3, pool)
}

network Incep(widths: list[int] = [4, 3]) {
    input image(3, 8, 8)
    for i, w in widths {
        stage{i + 1}: incep(w)
    }
    head: conv2d(5, kernel=1) -> head_bn: batchnorm2d() -> head_act: ReLU() -> record
    pool: adaptive_avgpool2d(1) -> flatten
}
"""


class _Incep(nn.Module):
    def __init__(self, cin, w):
        super().__init__()
        self.b3_conv, self.b3_bn, self.b3_act = nn.Conv2d(cin, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU()
        self.pool, self.pool_conv, self.pool_act = nn.MaxPool2d(3, 1, 1), nn.Conv2d(cin, w, 1), nn.ReLU()
        self.conv, self.bn, self.act = nn.Conv2d(cin, w, 1), nn.BatchNorm2d(w), nn.ReLU()

    def forward(self, x, path, acts, mask=None):
        def m(h, name):
            return h if mask is None else h * mask[f"{path}/{name}"].view(1, -1, 1, 1)
        b3 = acts[f"{path}/b3_conv"] = self.b3_act(m(self.b3_bn(self.b3_conv(x)), "b3_conv"))
        p = acts[f"{path}/pool_conv"] = self.pool_act(m(self.pool_conv(self.pool(x)), "pool_conv"))
        y = acts[f"{path}/conv"] = self.act(m(self.bn(self.conv(x)), "conv"))
        return torch.cat([y, b3, p], dim=1)


class _IncepNet(nn.Module):
    def __init__(self, widths=(4, 3)):
        super().__init__()
        cin = 3
        for i, w in enumerate(widths):
            setattr(self, f"stage{i + 1}", _Incep(cin, w))
            cin = 3 * w
        self.head, self.head_bn, self.head_act = nn.Conv2d(cin, 5, 1), nn.BatchNorm2d(5), nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.n = len(widths)

    def forward(self, x, mask=None):
        acts = {}
        for i in range(self.n):
            x = getattr(self, f"stage{i + 1}")(x, f"stage{i + 1}", acts, mask)
        h = self.head_bn(self.head(x))
        x = acts["head"] = self.head_act(h if mask is None else h * mask["head"].view(1, -1, 1, 1))
        return torch.flatten(self.pool(x), 1), acts


def test_concat_parity_with_a_hand_written_inception_network(tmp_path):
    p = write(tmp_path, INCEPTION)
    ours, ref = build(p), _IncepNet()
    # the stream first, then the branches as named; every branch conv is a weighted layer
    assert ours.weighted_layer_names == ["stage1/b3_conv", "stage1/pool_conv", "stage1/conv", "stage2/b3_conv",
                                         "stage2/pool_conv", "stage2/conv", "head"]
    assert ours.head.in_channels == 9
    randomize_batch_norms(ref)
    check_parity(ours, ref, data(2, 3, 8, 8))
    assert "x = torch.cat([x, b3, pool], dim=1)" in source_of(p)


def test_concat_maps_units_to_the_layers_that_made_them(tmp_path):
    netw = probe(load_program(str(write(tmp_path, INCEPTION))))
    segs = netw.facts.input_segments["stage2/conv"]
    assert [(s.owner, s.size) for s in segs] == [("stage1/conv", 4), ("stage1/b3_conv", 4), ("stage1/pool_conv", 4)]
    assert netw.graph_preceding["head"] == ["stage2/conv", "stage2/b3_conv", "stage2/pool_conv"]
    assert netw.graph_next["stage1/b3_conv"] == ["stage2/b3_conv", "stage2/pool_conv", "stage2/conv"]
    assert netw.preceding["stage2/b3_conv"] == "stage1/conv"
    # `specc show` names every layer whose mask gates a slice of the concatenation
    hat = write(tmp_path, INCEPTION + "backbone H = Incep\nmask hat()\n", "incep_hat.cl")
    table = weighted_layer_table(probe(load_program(str(hat))))
    row = next(line for line in table.splitlines() if line.split()[1:2] == ["stage2/conv"])
    assert row.endswith("masks of stage1/conv, stage1/b3_conv, stage1/pool_conv (concatenated)"), row


def test_a_hat_masked_unit_reaches_every_consumer_of_a_concat_as_zero(tmp_path):
    write(tmp_path, INCEPTION, "incep.cl")
    p = write(tmp_path, 'include "incep.cl"\nbackbone HATIncep = Incep\nmask hat(gate="sigmoid")\n', "hat.cl")
    hat = specc.build(p)
    hat.setup_task_id(1)
    # embeddings of +-100 make masks of exactly 1 and 0 at s = s_max (the last batch)
    g = torch.Generator().manual_seed(0)
    off = {}
    for name in hat.weighted_layer_names:
        emb = hat.task_embedding_t[name].weight
        keep = torch.rand(emb.shape[1], generator=g) > 0.4
        keep[0] = True
        keep[-1] = False
        emb.data = torch.where(keep, 100.0, -100.0).view_as(emb)
        off[name] = (~keep).nonzero().flatten().tolist()
    seen = {}

    def grab(name):
        def hook(module, args):
            seen[name] = args[0].detach().clone()
        return hook

    consumers = ["stage2/b3_conv", "stage2/pool", "stage2/conv", "head"]
    handles = [hat.get_submodule(n.replace("/", ".")).register_forward_pre_hook(grab(n)) for n in consumers]
    x = data(2, 3, 8, 8)
    hat.train()
    feature, mask, acts = hat(x, "train", s_max=400, batch_idx=4, num_batches=4)
    for h in handles:
        h.remove()
    # each consumer's input: the concatenation [conv, b3_conv, pool_conv] of the stage before
    for consumer in consumers:
        stage = "stage1" if consumer.startswith("stage2") else "stage2"
        w = 4 if stage == "stage1" else 3
        for k, layer in enumerate(("conv", "b3_conv", "pool_conv")):
            for unit in off[f"{stage}/{layer}"]:
                assert torch.equal(seen[consumer][:, k * w + unit], torch.zeros_like(seen[consumer][:, 0])), \
                    (consumer, layer, unit)
    # and the whole forward equals the hand-written network with the masks applied by hand
    ref = _IncepNet()
    ref.load_state_dict({k: v for k, v in hat.state_dict().items() if not k.startswith("task_embedding")})
    ref.train()
    f_ref, a_ref = ref(x, mask)
    assert torch.equal(feature, f_ref)
    assert list(acts) == list(a_ref) and all(torch.equal(acts[k], a_ref[k]) for k in a_ref)


def test_concat_parity_with_a_dense_block(tmp_path):
    """DenseNet-BC's pattern: each layer concatenates its output to its input (`concat(new)`);
    the transition halves the channels it gets (`in.channels // 2`)."""
    p = write(tmp_path, """
        block dense(growth: int) {
            branch new = norm1: batchnorm2d() -> relu1: ReLU() -> conv1: conv2d(2 * growth, kernel=1, bias=false)
                -> norm2: batchnorm2d() -> relu2: ReLU() -> conv2: conv2d(growth, kernel=3, padding=1, bias=false)
            concat(new)
        }
        block transition() {
            norm: batchnorm2d() -> relu: ReLU() -> conv: conv2d(in.channels // 2, kernel=1, bias=false)
                -> pool: avgpool2d(2)
        }
        network Dense(growth: int = 3) {
            input image(4, 8, 8)
            for j in range(2) {
                layer{j + 1}: dense(growth)
            }
            trans: transition()
        }
        """)

    class Layer(nn.Module):
        def __init__(self, cin, g):
            super().__init__()
            self.norm1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU()
            self.conv1 = nn.Conv2d(cin, 2 * g, 1, bias=False)
            self.norm2, self.relu2 = nn.BatchNorm2d(2 * g), nn.ReLU()
            self.conv2 = nn.Conv2d(2 * g, g, 3, padding=1, bias=False)

        def forward(self, x):
            new = self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))
            return torch.cat([x, new], 1)

    class Trans(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.norm, self.relu = nn.BatchNorm2d(cin), nn.ReLU()
            self.conv, self.pool = nn.Conv2d(cin, cin // 2, 1, bias=False), nn.AvgPool2d(2)

        def forward(self, x):
            return self.pool(self.conv(self.relu(self.norm(x))))

    class Ref(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer1, self.layer2, self.trans = Layer(4, 3), Layer(7, 3), Trans(10)

        def forward(self, x):
            return self.trans(self.layer2(self.layer1(x))), {}

    ours, ref = build(p), Ref()
    assert ours.trans.conv.in_channels == 10 and ours.trans.conv.out_channels == 5
    randomize_batch_norms(ref)
    check_parity(ours, ref, data(2, 4, 8, 8))


@pytest.mark.parametrize("body, line, needle, message", [
    ("branch b = c2: conv2d(4, kernel=3, stride=2, padding=1)\nc1: conv2d(4, kernel=1) -> concat(b)",
     4, "concat", "spatial sizes differ"),
    ("c1: conv2d(4, kernel=1) -> concat(b)\nbranch b = c2: conv2d(4, kernel=1)", 3, "concat",
     "concatenated before it is declared"),
    ("branch b = c2: conv2d(4, kernel=1)\nc1: conv2d(4, kernel=1) -> concat(b) -> add(b)", 4, "add(b)",
     "joined both by add and by concat"),
    ("c1: conv2d(4, kernel=1) -> concat(nothing)", 3, "concat", "unknown branch 'nothing'"),
    ("branch b = c2: conv2d(4, kernel=1)\nc1: conv2d(4, kernel=1) -> concat(b, b)", 4, "b)", "named twice"),
    ("branch b = c2: conv2d(4, kernel=1)\nc1: conv2d(4, kernel=1) -> x: concat(b)", 4, "x:", "takes no name"),
    ("branch b = c2: conv2d(4, kernel=1)\nc1: conv2d(4, kernel=1) -> concat(b, dim=2)", 4, "concat",
     "names of one or more branches"),
    ("branch b = flatten\nc1: conv2d(4, kernel=1) -> concat(b)", 4, "concat", "kinds differ"),
])
def test_concat_misuse_is_a_positioned_error(tmp_path, body, line, needle, message):
    p = write(tmp_path, net(textwrap.indent(body, "    ")))
    err = error_of(p)
    assert message in err.message, err.message
    at(err, line, col_of(p, line, needle))


# ---------------------------------------------------------------------------------------------
# 3. option-A shortcuts: subsample, pad_channels
# ---------------------------------------------------------------------------------------------

OPTION_A = """
block basic(planes: int, stride: int = 1) {
    conv_a: conv2d(planes, kernel=3, stride=stride, padding=1, bias=false) -> bn_a: batchnorm2d()
        -> relu_a: ReLU() -> record
    conv_b: conv2d(planes, kernel=3, padding=1, bias=false) -> bn_b: batchnorm2d()
        -> add(residual) -> relu_b: ReLU() -> record
    branch residual = (subsample(stride) -> pad_channels(BEFORE, AFTER))
        if stride != 1 or in.channels != planes
}

network CifarResNet(base: int = 4) {
    input image(3, 9, 9)
    conv_1_3x3: conv2d(base, kernel=3, padding=1, bias=false) -> bn_1: batchnorm2d() -> relu: ReLU() -> record
    stage_1: basic(base), basic(base)
    stage_2: basic(2 * base, stride=2), basic(2 * base)
    avgpool: adaptive_avgpool2d(1) -> flatten
}
"""


class _OptionABlock(nn.Module):
    def __init__(self, cin, planes, stride, symmetric):
        super().__init__()
        self.conv_a, self.bn_a = nn.Conv2d(cin, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes)
        self.relu_a = nn.ReLU()
        self.conv_b, self.bn_b = nn.Conv2d(planes, planes, 3, 1, 1, bias=False), nn.BatchNorm2d(planes)
        self.relu_b = nn.ReLU()
        self.down = stride != 1 or cin != planes
        self.stride, self.extra, self.symmetric = stride, planes - cin, symmetric

    def forward(self, x, path, acts):
        if self.down:
            kept = x[:, :, ::self.stride, ::self.stride]
            if self.symmetric:  # mammoth: zeros on both sides
                zeros = torch.zeros_like(kept[:, : self.extra // 2])
                residual = torch.cat([zeros, kept, zeros], 1)
            else:  # PyCIL's DownsampleA: the kept channels, then as many zero channels
                residual = torch.cat([kept, kept.mul(0)], 1)
        else:
            residual = x
        out = acts[f"{path}/conv_a"] = self.relu_a(self.bn_a(self.conv_a(x)))
        out = acts[f"{path}/conv_b"] = self.relu_b(self.bn_b(self.conv_b(out)) + residual)
        return out


class _CifarResNet(nn.Module):
    def __init__(self, base=4, symmetric=False):
        super().__init__()
        self.conv_1_3x3, self.bn_1, self.relu = nn.Conv2d(3, base, 3, 1, 1, bias=False), nn.BatchNorm2d(base), nn.ReLU()
        self.stage_1 = nn.Sequential(_OptionABlock(base, base, 1, symmetric), _OptionABlock(base, base, 1, symmetric))
        self.stage_2 = nn.Sequential(_OptionABlock(base, 2 * base, 2, symmetric),
                                     _OptionABlock(2 * base, 2 * base, 1, symmetric))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))

    def forward(self, x):
        acts = {}
        x = acts["conv_1_3x3"] = self.relu(self.bn_1(self.conv_1_3x3(x)))
        for name in ("stage_1", "stage_2"):
            for i, block in enumerate(getattr(self, name)):
                x = block(x, f"{name}/{i}", acts)
        return torch.flatten(self.avgpool(x), 1), acts


@pytest.mark.parametrize("symmetric, before, after", [
    (False, "0", "planes - in.channels"),  # PyCIL
    (True, "(planes - in.channels) // 2", "(planes - in.channels) // 2"),  # mammoth
])
def test_option_a_shortcuts_equal_hand_written_ones(tmp_path, symmetric, before, after):
    p = write(tmp_path, OPTION_A.replace("BEFORE", before).replace("AFTER", after))
    ours, ref = build(p), _CifarResNet(symmetric=symmetric)
    randomize_batch_norms(ref)
    check_parity(ours, ref, data(2, 3, 9, 9))  # 9x9: the strided subsample keeps rows 0, 2, 4, 6, 8
    src = source_of(p)
    assert "residual = residual[:, :, ::self.stride, ::self.stride]" in src
    assert re.search(r"residual = nn\.functional\.pad\(\s*residual,\s*\(0, 0, 0, 0, ", src)


def test_option_a_shapes_and_facts(tmp_path):
    p = write(tmp_path, OPTION_A.replace("BEFORE", "1").replace("AFTER", "planes - in.channels - 1"))
    netw = probe(load_program(str(p)))
    adds = [n for n in netw.nodes if n.op == "add"]
    pads = [n for n in netw.nodes if n.op == "pad_channels"]
    assert [str(n.shape) for n in pads] == ["(8, 5, 5)"]
    assert [n.meta["segments"] for n in pads][0][0].owner is None  # the zero channel is no layer's
    # the strided block's add ties the conv's units and the shortcut's (zeros, then stage_1's)
    assert adds[2].meta["tied_units"] == ["stage_2/0/conv_b", None, "stage_1/1/conv_b", None]


@pytest.mark.parametrize("body, needle, message", [
    ("subsample(0)", "subsample", "subsample needs stride > 0"),
    ("pad_channels(-1, 2)", "pad_channels", "before and after >= 0"),
    ("flatten -> subsample(2)", "subsample", "expects an image"),
    ("s: subsample(2)", "s:", "takes no name"),
])
def test_option_a_misuse_is_a_positioned_error(tmp_path, body, needle, message):
    p = write(tmp_path, net("    " + body))
    err = error_of(p)
    assert message in err.message
    at(err, 3, col_of(p, 3, needle))


# ---------------------------------------------------------------------------------------------
# 4. one module used at several points: `use`
# ---------------------------------------------------------------------------------------------

USE = """
block basic(planes: int) {
    conv1: conv2d(planes, kernel=3, padding=1, bias=false) -> bn1: batchnorm2d() -> relu: ReLU() -> record
    conv2: conv2d(planes, kernel=3, padding=1, bias=false) -> bn2: batchnorm2d() -> add(identity)
        -> use relu -> record
    branch identity = identity
}

network N(act: activation? = ReLU) {
    input image(3, 8, 8)
    conv: conv2d(4, kernel=3, padding=1) -> a: act() -> record -> pool: maxpool2d(2)
    blocks: basic(4) * 2
    use pool -> use a
}
"""


def test_use_calls_one_module_at_two_points(tmp_path):
    p = write(tmp_path, USE)

    class Basic(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
            self.relu = nn.ReLU()
            self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

        def forward(self, x, path, acts):
            out = acts[f"{path}/conv1"] = self.relu(self.bn1(self.conv1(x)))
            out = acts[f"{path}/conv2"] = self.relu(self.bn2(self.conv2(out)) + x)
            return out

    class Ref(nn.Module):
        def __init__(self, act):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            if act:
                self.a = nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.blocks = nn.Sequential(Basic(4), Basic(4))

        def forward(self, x):
            acts = {}
            x = self.conv(x)
            if hasattr(self, "a"):
                x = self.a(x)
            acts["conv"] = x
            x = self.pool(x)
            for i, b in enumerate(self.blocks):
                x = b(x, f"blocks/{i}", acts)
            x = self.pool(x)
            if hasattr(self, "a"):
                x = self.a(x)
            return x, acts

    for act in (nn.ReLU, None):
        ours, ref = build(p, act=act), Ref(act)
        names = [n for n, _ in ours.named_modules()]
        assert names == [n for n, _ in ref.named_modules()]
        assert names.count("blocks.0.relu") == 1
        randomize_batch_norms(ref)
        check_parity(ours, ref, data(2, 3, 8, 8))
    src = source_of(p)
    assert src.count("x = self.relu(x)") == 2  # the block's forward calls its one relu twice
    assert "        if self.act is not None:  # t.cl:12\n            x = self.a(x)" in src
    assert "shape = shapes.pool2d(shape, 2)" in src  # the second pooling halves the shape again


@pytest.mark.parametrize("body, needle, message", [
    ("cv: conv2d(4, kernel=1) -> use cv", "cv\n", "only activations, dropout and pooling"),
    ("cv: conv2d(4, kernel=1) -> b: batchnorm2d() -> use b", "b\n", "'batchnorm2d'"),
    ("s: ReLU(), ReLU() -> use s", "s\n", "a block or a container"),
    ("cv: conv2d(4, kernel=1) -> use r -> r: ReLU()", "r ->", "no module 'r' declared before this point"),
    ("cv: conv2d(4, kernel=1) -> use nothing", "nothing", "no module 'nothing'"),
])
def test_use_misuse_is_a_positioned_error(tmp_path, body, needle, message):
    p = write(tmp_path, net("    " + body))
    err = error_of(p)
    assert message in err.message, err.message
    line = p.read_text().splitlines()[2] + "\n"
    at(err, 3, line.index(needle) + 1)


# ---------------------------------------------------------------------------------------------
# 5. layer arguments
# ---------------------------------------------------------------------------------------------

ARGS = """
network A(k: int = 3) {
    input image(3, 11, 11)
    conv: conv2d(6, kernel=3)
        -> bn: batchnorm2d(eps=0.001, momentum=none, affine=false, track_running_stats=false)
        -> act: ReLU(inplace=true) -> record
    mp: maxpool2d(k, stride=2, padding=1, dilation=2, ceil_mode=true)
    ap: avgpool2d(2, stride=1, padding=1, ceil_mode=true, count_include_pad=false)
    amp: adaptive_maxpool2d(2) -> leaky: LeakyReLU(0.2, inplace=true) -> drop: dropout(0.25, inplace=false)
    flatten
    fc: linear(5) -> bn1: batchnorm1d(momentum=0.3, affine=false) -> elu: ELU(alpha=0.5, inplace=true) -> record
}
"""


class _Args(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3)
        self.bn = nn.BatchNorm2d(6, eps=0.001, momentum=None, affine=False, track_running_stats=False)
        self.act = nn.ReLU(inplace=True)
        self.mp = nn.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True)
        self.ap = nn.AvgPool2d(2, stride=1, padding=1, ceil_mode=True, count_include_pad=False)
        self.amp = nn.AdaptiveMaxPool2d((2, 2))
        self.leaky = nn.LeakyReLU(0.2, inplace=True)
        self.drop = nn.Dropout(0.25, inplace=False)
        self.fc = nn.Linear(24, 5)
        self.bn1 = nn.BatchNorm1d(5, momentum=0.3, affine=False)
        self.elu = nn.ELU(alpha=0.5, inplace=True)

    def forward(self, x):
        acts = {}
        x = acts["conv"] = self.act(self.bn(self.conv(x)))
        x = self.drop(self.leaky(self.amp(self.ap(self.mp(x)))))
        x = acts["fc"] = self.elu(self.bn1(self.fc(torch.flatten(x, 1))))
        return x, acts


def test_layer_arguments_build_the_same_torch_modules(tmp_path):
    p = write(tmp_path, ARGS)
    ours, ref = build(p), _Args()
    mods, ref_mods = dict(ours.named_modules()), dict(ref.named_modules())
    for name, m in ref_mods.items():
        if name:
            assert type(mods[name]) is type(m) and mods[name].extra_repr() == m.extra_repr(), name
    randomize_batch_norms(ref)
    check_parity(ours, ref, data(3, 3, 11, 11))
    src = source_of(p)
    assert "nn.BatchNorm2d(shape[0], eps=0.001, momentum=None, affine=False, track_running_stats=False)" in src
    assert "nn.MaxPool2d(kernel_size=k, stride=2, padding=1, dilation=2, ceil_mode=True)" in src
    assert "nn.ReLU(inplace=True)" in src and "nn.Dropout(0.25, inplace=False)" in src
    assert "nn.AdaptiveMaxPool2d((2, 2))" in src


@pytest.mark.parametrize("size", range(4, 13))
def test_pooling_shapes_are_torchs(size):
    """The shape inference of pooling (ceil_mode, dilation, padding) against torch's own."""
    from specc.core.layers import OPS, Shape, check, out_shape

    for kernel, stride, padding, dilation, ceil in [(3, 2, 1, 1, True), (2, 2, 0, 1, True), (3, 3, 1, 2, True),
                                                     (3, 2, 1, 2, False), (2, 3, 1, 1, True), (3, 1, 0, 2, True)]:
        args = {"kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation, "ceil_mode": ceil}
        s = Shape((2, size, size))
        if check("maxpool2d", args, s) is not None:
            continue
        x = torch.zeros(1, 2, size, size)
        want = nn.MaxPool2d(kernel, stride, padding, dilation, ceil_mode=ceil)(x).shape[1:]
        assert out_shape("maxpool2d", args, s).dims == tuple(want), args
        if dilation == 1:
            a = {k: v for k, v in args.items() if k != "dilation"} | {"count_include_pad": True}
            want = nn.AvgPool2d(kernel, stride, padding, ceil_mode=ceil)(x).shape[1:]
            assert out_shape("avgpool2d", a, s).dims == tuple(want), args
    assert {n for n, _, _ in OPS["avgpool2d"].params} == {"kernel", "stride", "padding", "ceil_mode",
                                                           "count_include_pad"}


@pytest.mark.parametrize("body, needle, message", [
    ("mp: maxpool2d(2, dilation=0)", "maxpool2d", "needs dilation > 0"),
    ("bn: batchnorm2d(momentum=2.0)", "batchnorm2d", "momentum must be in [0, 1]"),
    ("bn: batchnorm2d(affine=1)", "1)", "argument 'affine' of batchnorm2d"),
    ("mp: maxpool2d(2, ceil_mode=\"yes\")", '"yes"', "argument 'ceil_mode' of maxpool2d"),
    ("ap: avgpool2d(2, count_include_pad=none)", "none", "argument 'count_include_pad' of avgpool2d"),
    ("amp: adaptive_maxpool2d(0)", "adaptive_maxpool2d", "needs size > 0"),
    ("r: ReLU(inplace=2)", "2)", "argument 'inplace' of ReLU"),
    ("t: Tanh(inplace=true)", "true", "Tanh has no argument 'inplace'"),
    ("ap: avgpool2d(2, dilation=2)", "2)", "avgpool2d has no argument 'dilation'"),
])
def test_bad_layer_arguments_are_positioned_errors(tmp_path, body, needle, message):
    p = write(tmp_path, net("    " + body))
    err = error_of(p)
    assert message in err.message, err.message
    at(err, 3, col_of(p, 3, needle))


@pytest.mark.parametrize("body, needle, reason", [
    ("r: ReLU(inplace=true)", "ReLU", "the network's input"),
    ("cv: conv2d(4, kernel=1) -> record -> r: ReLU(inplace=true)", "ReLU", "recorded as an activation"),
    ("cv: conv2d(4, kernel=1) -> d: dropout(0.5, inplace=true)", "dropout", "the network's input"),
])
def test_inplace_where_it_would_change_a_result_is_refused(tmp_path, body, needle, reason):
    if "dropout" in body:
        body = "d: dropout(0.5, inplace=true)"
    p = write(tmp_path, net("    " + body))
    err = error_of(p)
    assert reason in err.message and "inplace=true" in err.message
    at(err, 3, col_of(p, 3, needle))


def test_inplace_on_a_value_a_branch_reads_is_refused(tmp_path):
    p = write(tmp_path, """
        block b() {
            r: ReLU(inplace=true) -> cv: conv2d(in.channels, kernel=1) -> add(s)
            branch s = identity
        }
        network N() {
            input image(3, 4, 4)
            cv: conv2d(3, kernel=1) -> blk: b()
        }
        """)
    err = error_of(p)
    assert "read too" in err.message
    at(err, 2, col_of(p, 2, "ReLU"))


# ---------------------------------------------------------------------------------------------
# 6. record if, groups carrying record
# ---------------------------------------------------------------------------------------------

def test_record_if_and_groups_with_record(tmp_path):
    p = write(tmp_path, net("""
        conv: conv2d(4, kernel=1) -> (record if c) -> act: ReLU()
        (conv2: conv2d(4, kernel=1) -> record) if n > 2
        conv3: conv2d(4, kernel=1) -> record if c -> pool: adaptive_avgpool2d(1)
        """))

    class Ref(nn.Module):
        def __init__(self, c, n):
            super().__init__()
            self.c, self.n = c, n
            self.conv, self.act = nn.Conv2d(3, 4, 1), nn.ReLU()
            if n > 2:
                self.conv2 = nn.Conv2d(4, 4, 1)
            self.conv3, self.pool = nn.Conv2d(4, 4, 1), nn.AdaptiveAvgPool2d((1, 1))

        def forward(self, x):
            acts = {}
            x = self.conv(x)
            if self.c:
                acts["conv"] = x
            x = self.act(x)
            if self.n > 2:
                x = acts["conv2"] = self.conv2(x)
            x = self.conv3(x)
            if self.c:
                acts["conv3"] = x
            return self.pool(x), acts

    for c, n in [(True, 3), (False, 3), (True, 1), (False, 2)]:
        check_parity(build(p, c=c, n=n), Ref(c, n), data(2, 3, 4, 4))


def test_record_after_a_guarded_weighted_layer_is_refused(tmp_path):
    p = write(tmp_path, net("    cv: conv2d(4, kernel=1) -> (cv2: conv2d(4, kernel=1)) if c -> record"))
    err = error_of(p)
    assert "depends on the guard" in err.message
    at(err, 3, col_of(p, 3, "record"))


# ---------------------------------------------------------------------------------------------
# 7. computed module names
# ---------------------------------------------------------------------------------------------

HAT_MLP = """
network PaperMLP(input_dim: int = 6, widths: list[int] = [5, 4], first: int = 1) {
    input features(input_dim)
    for i, w in widths {
        fc{i + first}: linear(w) -> relu{i + first}: ReLU() -> record
    }
}
"""


def test_computed_names_give_the_papers_module_names(tmp_path):
    p = write(tmp_path, HAT_MLP)

    class Ref(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.relu1 = nn.Linear(6, 5), nn.ReLU()
            self.fc2, self.relu2 = nn.Linear(5, 4), nn.ReLU()

        def forward(self, x):
            acts = {}
            x = acts["fc1"] = self.relu1(self.fc1(x))
            x = acts["fc2"] = self.relu2(self.fc2(x))
            return x, acts

    ours = build(p)
    assert list(ours.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert ours.weighted_layer_names == ["fc1", "fc2"]
    check_parity(ours, Ref(), data(3, 6))
    src = source_of(p)
    assert 'self.add_module(module_name("fc", i + first), nn.Linear(shape[-1], w))' in src
    assert 'x = getattr(self, f"fc{i + self.first}")(x)' in src
    write(tmp_path, HAT_MLP, "paper.cl")
    hat = specc.build(write(tmp_path, 'include "paper.cl"\nbackbone H = PaperMLP\nmask hat(gate="sigmoid")\n',
                            "h.cl"))
    assert list(hat.task_embedding_t) == ["fc1", "fc2"]


def test_computed_names_are_checked_by_the_generated_constructor(tmp_path):
    p = write(tmp_path, HAT_MLP)
    assert [n for n, _ in build(p, first=7).named_children()] == ["fc7", "relu7", "fc8", "relu8"]
    with pytest.raises(ValueError, match="ints >= 0"):
        specc.build(p, first=-1)


def test_computed_names_in_a_block_and_for_sequences(tmp_path):
    p = write(tmp_path, """
        block stage(w: int) {
            for j in range(2) {
                conv{j}: conv2d(w, kernel=1) -> record
            }
        }
        network N() {
            input image(2, 4, 4)
            for i in range(2) {
                layer{i + 1}: stage(3), stage(3)
            }
        }
        """)
    ours = build(p)
    assert ours.weighted_layer_names[:3] == ["layer1/0/conv0", "layer1/0/conv1", "layer1/1/conv0"]
    assert "layer2.1.conv1.weight" in ours.state_dict()
    _, acts = ours(data(1, 2, 4, 4))
    assert list(acts) == ours.weighted_layer_names


@pytest.mark.parametrize("name, params, message", [
    ("bfloat{n}", "n: int = 16", "'bfloat16' cannot be a module name: the backbone has a method 'bfloat16'"),
    ("fc{n}", "n: int = -1", "puts ints >= 0 in its braces, got int -1"),
    ("fc{s}", 's: str = "x"', "puts ints >= 0 in its braces, got str"),
    ("__{n}", "n: int = 1", "'__1' cannot be a module name"),
    ("block_a{n}", "n: int = 1", None),
])
def test_bad_computed_names_are_positioned_errors(tmp_path, name, params, message):
    p = write(tmp_path, f"""
        network N({params}) {{
            input features(4)
            {name}: linear(3)
        }}
        """)
    if message is None:  # a fine name
        probe(load_program(str(p)))
        return
    err = error_of(p)
    assert message in err.message, err.message
    at(err, 3, 5 if not message.startswith("puts") else col_of(p, 3, "{") + 1)


@pytest.mark.parametrize("line, message", [
    ("fc {i}: linear(3)", "written without spaces"),
    ("fc{i} x: linear(3)", "written without spaces"),
    ("fc{i}_ bn: linear(3)", "written without spaces"),
    ("fc{i}[0]: linear(3)", "cannot also be indexed"),
])
def test_computed_names_are_written_without_spaces(tmp_path, line, message):
    p = write(tmp_path, f"network N(i: int = 1) {{\n    input features(4)\n    {line}\n}}\n")
    assert message in error_of(p).message


def test_a_computed_name_twice_is_declared_twice(tmp_path):
    p = write(tmp_path, "network N() {\n    input features(4)\n    for i in [1, 1] {\n"
                        "        fc{i}: linear(3)\n    }\n}\n")
    err = error_of(p)
    assert "module 'fc1' is declared twice" in err.message
    at(err, 4, 9)


# ---------------------------------------------------------------------------------------------
# 8. `in` at network level
# ---------------------------------------------------------------------------------------------

def test_in_at_network_level_is_the_shape_coming_in(tmp_path):
    p = write(tmp_path, """
        network N(c: int = 3) {
            input image(c, 6, 8)
            conv: conv2d(in.channels * 2, kernel=1) -> pool: avgpool2d(in.height // 3, stride=in.width // 4)
            flatten
            fc: linear(in.features // 2) -> fc2: linear(in.units + 1)
        }
        """)
    ours = build(p)
    assert ours.conv.out_channels == 6
    assert ours.pool.kernel_size == 2 and ours.pool.stride == 2  # the shape entering the pool: (6, 6, 8)
    assert ours.fc.in_features == 72 and ours.fc.out_features == 36 and ours.fc2.out_features == 37
    assert "in_shape = shape  # `in` below: the shape here" in source_of(p)


@pytest.mark.parametrize("line, what", [
    ("fc: linear(3) if in.features > 2", "a condition"),
    ("for i in range(in.features) {\n        fc[i]: linear(3)\n    }", "a loop's list"),
    ("fc{in.features}: linear(3)", "a computed name"),
])
def test_in_at_network_level_is_refused_where_the_forward_evaluates_it(tmp_path, line, what):
    p = write(tmp_path, f"network N() {{\n    input features(4)\n    {line}\n}}\n")
    err = error_of(p)
    assert f"`in` cannot be used in {what}" in err.message
    at(err, 3, col_of(p, 3, "in."))


def test_in_is_refused_in_a_default(tmp_path):
    p = write(tmp_path, "network N(n: int = in.channels) {\n    input features(4)\n    fc: linear(n)\n}\n")
    err = error_of(p)
    assert "`in`" in err.message and "not available here" in err.message
    at(err, 1, 20)


# ---------------------------------------------------------------------------------------------
# 9. backbones with bound arguments; block-typed parameters
# ---------------------------------------------------------------------------------------------

FAMILY = """
block one(w: int, stride: int = 1) {
    conv: conv2d(w, kernel=3, stride=stride, padding=1) -> act: ReLU() -> record
}

block two(w: int, stride: int = 1) {
    conv_a: conv2d(w, kernel=1) -> act_a: ReLU() -> record
    conv_b: conv2d(w, kernel=3, stride=stride, padding=1) -> act_b: ReLU() -> record
}

network Fam(input_channels: int, bias: bool = false, blocks: list[int] = [1, 1], block: block = one) {
    input image(input_channels, 8, 8)
    stem: conv2d(4, kernel=1, bias=bias) -> record
    for i, width in [4, 6] {
        stage{i + 1}: block(width, stride=1 if i == 0 else 2), block(width) * (blocks[i] - 1)
    }
}
"""


def test_a_backbone_binds_arguments_and_blocks(tmp_path):
    write(tmp_path, FAMILY, "lib/fam.cl")
    small = write(tmp_path, 'include "lib/fam.cl"\nbackbone Small = Fam(blocks=[1, 2])\n', "small.cl")
    big = write(tmp_path, 'include "lib/fam.cl"\nbackbone Big = Fam(blocks=[2, 1], block=two)\n', "big.cl")
    import inspect

    for path, cls, n in [(small, "Small", 4), (big, "Big", 7)]:
        net_ = build(path, input_channels=3)
        assert type(net_).__name__ == cls
        params = list(inspect.signature(type(net_)).parameters)
        assert params == ["input_channels", "bias", "output_dim", "disable_unlearning"]  # blocks, block: fixed
        assert len(net_.weighted_layer_names) == n
    assert build(big, input_channels=3).weighted_layer_names[:3] == ["stem", "stage1/0/conv_a",
                                                                           "stage1/0/conv_b"]
    with pytest.raises(TypeError):
        specc.build(small, input_channels=3, blocks=[3, 3])
    src = source_of(big)
    assert "blocks = [2, 1]  # big.cl:2" in src and "self.block_two(" in src and "block_one" not in src
    # A file including a bound backbone uses it as a network, and may mask it.
    hat = write(tmp_path, 'include "big.cl"\nbackbone HATBig = Big\nmask hat(gate="sigmoid")\n', "hat.cl")
    masked = specc.build(hat, input_channels=3)
    assert type(masked).__mro__[1:3] != () and "Big" in [c.__name__ for c in type(masked).__mro__]
    assert masked.weighted_layer_names == specc.build(big, input_channels=3).weighted_layer_names
    # and bind more of its arguments
    more = write(tmp_path, 'include "big.cl"\nbackbone Biased = Big(bias=true)\n', "more.cl")
    assert build(more, input_channels=3).stem.bias is not None


def test_the_resnet_family_is_one_network_and_two_line_specs():
    """CLArena's ResNets: one network in specs/lib/resnet.cl; the CLArena-equivalent specs (MLP,
    ResNet-18 to 152 and their CL, HAT and AmnesiacHAT variants, with the library) are well under
    150 lines together."""
    from specc.frontend.load import load_program as load

    for depth, block in [(18, "small"), (34, "small"), (50, "large"), (101, "large"), (152, "large")]:
        program = load(SPECS / f"resnet{depth}.cl")
        assert program.network.origin.name == "ResNet" and program.class_name == f"ResNet{depth}"
        assert len((SPECS / f"resnet{depth}.cl").read_text().splitlines()) <= 5
        assert dict((p.name, getattr(e, "id", None)) for p, e, _ in program.network.fixed)["block"] == block
    clarena = [p for p in SPECS.glob("*.cl") if p.stem.startswith(("mlp", "cl_"))
               or re.fullmatch(r"resnet\d+(_hat|_amnesiac_hat)?", p.stem)] + list((SPECS / "lib").glob("resnet*.cl"))
    assert len(clarena) == 4 + 6 + 15 + 2  # mlp*, cl_*, resnet{N}[_hat|_amnesiac_hat], lib
    assert sum(len(p.read_text().splitlines()) for p in clarena) < 150


@pytest.mark.parametrize("decl, needle, message", [
    ("Fam(blocks=[1, 1], nope=1)", "1)", "Fam has no parameter 'nope'"),
    ("Fam([1, 1])", "[1", "binds arguments by name"),
    ("Fam(block=three)", "three", "takes a block defined in the spec"),
    ("Fam(block=3)", "3", "takes a block defined in the spec"),
    ("Fam(blocks=[1, true])", "[1", "the value bound to 'blocks'"),
    ("Fam(blocks=in.channels)", "in", "not available here"),
])
def test_bad_bindings_are_positioned_errors(tmp_path, decl, needle, message):
    write(tmp_path, FAMILY, "fam.cl")
    p = write(tmp_path, f'include "fam.cl"\nbackbone B = {decl}\n')
    err = error_of(p, input_channels=3)
    assert message in err.message, err.message
    at(err, 2, col_of(p, 2, needle))


def test_more_binding_misuse(tmp_path):
    write(tmp_path, FAMILY, "fam.cl")
    p = write(tmp_path, 'include "fam.cl"\nbackbone B = Fam(output_dim=3)\n', "a.cl")
    err = error_of(p, input_channels=3)
    assert "output_dim cannot be bound" in err.message
    write(tmp_path, 'include "fam.cl"\nbackbone H = Fam\nmask hat()\n', "h.cl")
    p = write(tmp_path, 'include "h.cl"\nbackbone B = H(blocks=[1, 1])\n', "b.cl")
    err = error_of(p, input_channels=3)
    assert "'H' is a masked backbone" in err.message
    at(err, 2, 1)
    p = write(tmp_path, FAMILY.replace("block: block = one", "linear: block = one"), "c.cl")
    assert "has the name of a layer or block" in error_of(p, input_channels=3).message
    p = write(tmp_path, FAMILY.replace("block: block = one", "block: block"), "d.cl")
    err = error_of(p, input_channels=3)
    assert "block parameter 'block' needs a value" in err.message
    p = write(tmp_path, 'include "lib/resnet.cl"\nbackbone R = ResNet(pretrained_weights="X")\n', "e.cl")
    (tmp_path / "lib").mkdir(exist_ok=True)
    for f in ("resnet.cl", "resnet_blocks.cl"):
        (tmp_path / "lib" / f).write_text((SPECS / "lib" / f).read_text())
    err = error_of(p, input_channels=3, output_dim=4)
    assert "bind it to none or leave it a constructor parameter" in err.message


def test_a_block_parameter_cannot_make_a_block_recursive(tmp_path):
    p = write(tmp_path, """
        block loop(w: int) {
            c: conv2d(w, kernel=1) -> inner: block(w)
        }
        network N(block: block = loop) {
            input image(2, 4, 4)
            x: block(2)
        }
        """)
    err = error_of(p)
    assert "recursive block: loop -> loop" in err.message
    at(err, 2, col_of(p, 2, "block(w)"))


# ---------------------------------------------------------------------------------------------
# blocks in blocks, guarded `use`, and check agreeing with compile
# ---------------------------------------------------------------------------------------------

NESTED = """
block unit(out: int) { conv: conv2d(out, kernel=3, padding=1) -> relu: ReLU() -> record }
block pair(a: int, last: bool = false) {
    first: unit(a) -> relu: ReLU()
    second: unit(a) -> (use relu if not last)
}
network NB() {
    input image(3, 8, 8)
    stem: unit(4)
    p: pair(4) -> q: pair(4, last=true)
}
"""


def test_a_block_instantiating_blocks_builds_plain_and_with_hat(tmp_path):
    p = write(tmp_path, NESTED)

    class Unit(nn.Module):
        def __init__(self, c_in, c):
            super().__init__()
            self.conv, self.relu = nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU()

        def forward(self, x, path, acts):
            x = acts[f"{path}/conv"] = self.relu(self.conv(x))
            return x

    class Pair(nn.Module):
        def __init__(self, c_in, c, last):
            super().__init__()
            self.first, self.second, self.last = Unit(c_in, c), Unit(c, c), last
            self.relu = nn.ReLU()

        def forward(self, x, path, acts):
            x = self.relu(self.first(x, f"{path}/first", acts))
            x = self.second(x, f"{path}/second", acts)
            return x if self.last else self.relu(x)

    class Ref(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.p, self.q = Unit(3, 4), Pair(4, 4, False), Pair(4, 4, True)

        def forward(self, x):
            acts = {}
            x = self.stem(x, "stem", acts)
            return self.q(self.p(x, "p", acts), "q", acts), acts

    ours = build(p)
    names = ["stem/conv", "p/first/conv", "p/second/conv", "q/first/conv", "q/second/conv"]
    assert ours.weighted_layer_names == names
    check_parity(ours, Ref(), data(2, 3, 8, 8))
    p.write_text(p.read_text() + "backbone H = NB\nmask hat()\n")
    hat = specc.build(p, gate="sigmoid")
    assert hat.weighted_layer_names == names
    assert hat.next_layer_name("p/second/conv") == "q/first/conv"


def test_check_refuses_a_plain_name_in_a_loop_as_compile_does(tmp_path):
    p = write(tmp_path, """
        network L(n: int = 2) {
            input features(8)
            for i in range(n) {
                fc{i + 1}: linear(8) -> (relu: ReLU() if i == 0) -> (use relu if i > 0) -> record
            }
        }
        """)
    err = error_of(p)
    assert "module 'relu' is declared in a loop without an index" in err.message
    at(err, 4, col_of(p, 4, "relu:"))


PRE_ACTIVATION = """
block pre(width: int) {
    bn1: batchnorm2d() -> relu1: ReLU() -> conv1: conv2d(width, kernel=3, padding=1, bias=false) -> record
        -> bn2: batchnorm2d() -> relu2: ReLU() -> conv2: conv2d(width, kernel=3, padding=1, bias=false)
        -> add(short) -> record
    branch short = identity
}
network PreAct() {
    input image(3, 8, 8)
    conv1: conv2d(4, kernel=3, padding=1, bias=false) -> record
    blocks: pre(4) * 2
    bn: batchnorm2d() -> relu: ReLU() -> pool: adaptive_avgpool2d(1) -> flatten
}
"""


@pytest.mark.parametrize("scheme, refused", [("", False), ("mask wsn()", False),
                                             ('mask hat(gate="sigmoid")', True),
                                             ('mask amnesiac_hat(gate="sigmoid")', True)])
def test_hat_on_a_pre_activation_network_is_refused_at_the_batch_norm(tmp_path, scheme, refused):
    """A batch norm opening a residual block moves the zero of a masked unit of the layer before
    the block: HAT (unit masks) is refused there, with the position of that batch norm and what to
    do; the plain network and WSN (parameter masks) are built."""
    backbone = f"backbone B = PreAct\n{scheme}\n" if scheme else ""
    p = write(tmp_path, PRE_ACTIVATION + backbone)
    if not refused:
        net = specc.build(p)
        assert "blocks/0/conv1" in net.weighted_layer_names
        return
    err = error_of(p)
    assert "'blocks/0/bn1' follows the unit mask of 'conv1' and does not keep a zero unit zero" in err.message
    assert "Pre-activation layouts" in err.message and "`mask wsn()`" in err.message
    at(err, 2, col_of(p, 2, "batchnorm2d()"))


def test_check_refuses_a_plain_name_in_a_loop_of_a_block_the_arguments_leave_out(tmp_path):
    """The rule is checked on the spec text: a block its probe values do not instantiate is checked
    too, so `check` and `compile` agree."""
    p = write(tmp_path, """
        block b() {
            for i in range(2) {
                fc: linear(3)
            }
        }
        network N(use_b: bool = false) {
            input features(4)
            x: b() if use_b
        }
        """)
    err = error_of(p)
    assert "module 'fc' is declared in a loop without an index" in err.message
    at(err, 3, col_of(p, 3, "fc:"))
