"""Property tests (hypothesis).

1. Random MLP-like and ResNet-like spec texts elaborate, analyse and build; their weighted layers
   are exactly the Linear/Conv2d modules outside branches, in the order the generator declared
   them; names resolve; preceding/next are the list neighbours; the analysis' topological order
   respects the data flow; and the runtime module (specc.build) and the generated module
   (specc.emit) agree: same state_dict, same outputs.
2. Random mutations of the real specs either still compile, or fail with a positioned SpecError,
   which `specc check` prints as file:line:col without a traceback (exit 1). No other exception
   type may escape.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from torch import nn

from conftest import SPECS

import specc
from specc.cli import main as cli_main
from specc.emit import emit
from specc.frontend.elaborate import elaborate
from specc.frontend.errors import SpecError
from specc.frontend.facts import analyse
from specc.frontend.load import load_program

# ---------------------------------------------------------------------------------------------
# random spec texts
# ---------------------------------------------------------------------------------------------

ACTIVATIONS = ["ReLU()", "Tanh()", "LeakyReLU(0.2)", "LeakyReLU(negative_slope=0.1)", "ELU(alpha=0.5)",
               "GELU()", "Sigmoid()", "act()"]  # act(): the network's `act: activation?` parameter


@dataclass
class Generated:
    text: str
    weighted: list[str]  # expected weighted_layer_names
    records: list[str]  # weighted layers with a `record`
    branch_modules: set[str] = field(default_factory=set)  # last path component of branch modules
    input_shape: tuple = ()
    projections: list[str] | None = None  # expected shortcut projection modules ('/' paths)


def _comment(draw) -> str:
    return draw(st.sampled_from(["", "", "  # a comment", "  # record -> add(x) { }"]))


@st.composite
def mlp_specs(draw) -> Generated:
    image = draw(st.booleans())
    n_in = draw(st.integers(1, 5))
    depth = draw(st.integers(1, 4))
    widths = draw(st.lists(st.integers(1, 7), min_size=depth, max_size=depth))
    act_default = draw(st.sampled_from(["ReLU", "Tanh", "none"]))
    params = [f"act: activation? = {act_default}", f"widths: list[int] = [{', '.join(map(str, widths))}]"]
    lines = []
    if image:
        h = draw(st.integers(1, 3))
        lines += [f"    input image({n_in}, {h}, {h})", "    flatten"]
        input_shape = (n_in, h, h)
    else:
        lines.append(f"    input features({n_in})")
        input_shape = (n_in,)
    weighted, records = [], []
    if draw(st.booleans()):  # a loop over the list parameter, options shared by every layer
        bn, bias = draw(st.booleans()), draw(st.booleans())
        act = draw(st.sampled_from(ACTIVATIONS + [None]))
        drop = draw(st.sampled_from([None, 0.0, 0.5]))
        rec = draw(st.booleans())
        chain = [f"fc[i]: linear(w, bias={'true' if bias else 'false'})"]
        if bn:
            chain.append("fc_bn[i]: batchnorm1d()")
        if act:
            chain.append(f"fc_act[i]: {act}")
        if rec:
            chain.append("record")
        if drop is not None:
            chain.append(f"fc_drop[i]: dropout({drop})")
        lines.append("    for i, w in widths {" + _comment(draw))
        lines.append("        " + "\n            -> ".join(chain))
        lines.append("    }")
        weighted = [f"fc/{i}" for i in range(depth)]
        records = weighted if rec else []
    else:
        for i, w in enumerate(widths):
            chain = [f"l{i}: linear({w}" + draw(st.sampled_from([")", ", bias=false)", ", bias=true)"]))]
            if draw(st.booleans()):
                chain.append(f"l{i}_bn: batchnorm1d(" + draw(st.sampled_from(["", "eps=0.001", "momentum=0.2"])) + ")")
            act = draw(st.sampled_from(ACTIVATIONS + [None]))
            if act:
                chain.append(f"l{i}_act: {act}")
            if draw(st.integers(0, 4)):
                chain.append("record")
                records.append(f"l{i}")
            if draw(st.booleans()):
                chain.append(f"l{i}_drop: dropout({draw(st.sampled_from(['0.1', '0.5', '1.0']))})")
            sep = draw(st.sampled_from([" -> ", "\n        -> ", "->"]))
            lines.append("    " + sep.join(chain) + _comment(draw))
            weighted.append(f"l{i}")
    text = f"# generated MLP-like spec\nnetwork Gen({', '.join(params)}) {{\n" + "\n".join(lines) + "\n}\n"
    return Generated(text, weighted, records, set(), input_shape)


@st.composite
def resnet_specs(draw) -> Generated:
    n_convs = draw(st.integers(1, 3))
    expansion = draw(st.sampled_from([1, 2]))
    stride_at = draw(st.integers(0, n_convs - 1))
    bn = draw(st.booleans())
    act = draw(st.sampled_from(["ReLU()", "Tanh()", None]))
    shortcut = draw(st.sampled_from(["conditional", "conditional", "always"]))
    proj_bn = draw(st.booleans())
    branch_first = draw(st.booleans())
    block_records = [draw(st.integers(0, 3)) > 0 for _ in range(n_convs)]

    body = []
    conv_names = [f"c{k}" for k in range(n_convs)]
    for k, name in enumerate(conv_names):
        last = k == n_convs - 1
        out = "width * 2" if (last and expansion == 2) else "width"
        kernel = 3 if (k == stride_at or not last) else 1
        stride = ", stride=stride" if k == stride_at else ""
        pad = ", padding=1" if kernel == 3 else ""
        chain = [f"{name}: conv2d({out}, kernel={kernel}{stride}{pad}, bias=false)"]
        if bn:
            chain.append(f"{name}_bn: batchnorm2d()")
        if last:
            chain.append("add(sc)")
        if act:
            chain.append(f"{name}_act: {act}")
        if block_records[k]:
            chain.append("record")
        body.append("    " + "\n        -> ".join(chain))
    out_ch = "width * 2" if expansion == 2 else "width"
    # A guard on a branch of several elements is written on a group: `(proj -> proj_bn) if cond`.
    cond = f"\n        if in.channels != {out_ch} or stride != 1" if shortcut == "conditional" else ""
    proj = f"proj: conv2d({out_ch}, kernel=1, stride=stride, bias=false)"
    if proj_bn:
        proj = f"({proj} -> proj_bn: batchnorm2d())" if cond else f"{proj}\n        -> proj_bn: batchnorm2d()"
    branch = f"    branch sc = {proj}{cond}"
    body = [branch] + body if branch_first else body + [branch]
    block = "block blk(width: int, stride: int = 1) {\n" + "\n".join(body) + "\n}\n"

    c_in = draw(st.integers(1, 3))
    size = draw(st.sampled_from([8, 16]))
    w0 = draw(st.integers(1, 4))
    lines = [f"    input image(c, {size}, {size})"]
    stem = [f"stem: conv2d({w0}, kernel=3, padding=1, bias={draw(st.sampled_from(['true', 'false']))})"]
    if draw(st.booleans()):
        stem.append("stem_bn: batchnorm2d()")
    if draw(st.booleans()):
        stem.append("stem_act: ReLU()")
    stem_rec = draw(st.booleans())
    if stem_rec:
        stem.append("record")
    lines.append("    " + " -> ".join(stem))
    if draw(st.booleans()):
        lines.append("    pool: maxpool2d(2)")
    weighted = ["stem"]
    records = ["stem"] if stem_rec else []
    projections = []
    channels = w0  # the channel count entering the next block

    def block_layers(prefix):
        return [f"{prefix}/{c}" for c in conv_names], [f"{prefix}/{c}" for c, r in zip(conv_names, block_records) if r]

    n_stages = draw(st.integers(1, 3))
    for s in range(n_stages):
        width = draw(st.integers(1, 4))
        stride = draw(st.sampled_from([1, 2]))
        # A conditional projection is present exactly when the identity would not fit.
        form = draw(st.sampled_from(["single", "sequence", "repeat"]))
        if form == "single":
            lines.append(f"    s{s}: blk({width}, stride={stride})")
            instances = [(f"s{s}", stride)]
        elif form == "sequence":
            reps = draw(st.integers(0, 2))
            lines.append(f"    s{s}: blk({width}, stride={stride}), blk({width}) * {reps}")
            instances = [(f"s{s}/0", stride)] + [(f"s{s}/{k}", 1) for k in range(1, 1 + reps)]
        else:  # `* n` repeats the same arguments, stride included
            reps = draw(st.integers(1, 2))
            lines.append(f"    s{s}: blk(width={width}, stride={stride}) * {reps}")
            instances = [(f"s{s}/{k}", stride) for k in range(reps)]
        for p, st_ in instances:
            wl, rl = block_layers(p)
            weighted += wl
            records += rl
            out = width * expansion
            if shortcut == "always" or channels != out or st_ != 1:
                projections.append(f"{p}/proj")
            channels = out
    lines.append("    head: adaptive_avgpool2d(1) -> flatten")
    if draw(st.booleans()):
        lines.append(f"    fc: linear({draw(st.integers(1, 5))}) -> record")
        weighted.append("fc")
        records.append("fc")
    text = (f"# generated ResNet-like spec\n{block}\nnetwork Gen(c: int = {c_in}) {{\n" + "\n".join(lines) + "\n}\n")
    return Generated(text, weighted, records, {"proj"}, (c_in, size, size), projections)


# ---------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------

def import_source(source: str, folder: Path):
    name = "gen_" + hashlib.sha1(source.encode()).hexdigest()[:16]
    path = folder / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def check_generated_spec(gen: Generated, folder: Path) -> None:
    note(gen.text)
    path = folder / "gen.cl"
    path.write_text(gen.text, encoding="utf-8")

    # elaboration and analysis succeed
    net = analyse(elaborate(load_program(str(path))))
    names = net.weighted_layer_names
    assert names == gen.weighted
    assert sorted(net.records) == sorted(gen.records)

    # preceding / next: the list neighbours, mutually consistent
    for i, n in enumerate(names):
        assert net.preceding[n] == (names[i - 1] if i else None)
        assert net.next[n] == (names[i + 1] if i + 1 < len(names) else None)
        if net.next[n] is not None:
            assert net.preceding[net.next[n]] == n
    assert set(net.preceding) == set(net.next) == set(names)
    # graph neighbours are weighted layers, and graph_next is the inverse of graph_preceding
    for n, preds in net.graph_preceding.items():
        for p in preds:
            assert p in names and n in net.graph_next[p]
            assert names.index(p) < names.index(n)
    # the topological order is a permutation of the nodes that respects every data dependency
    topo = net.topo_order
    assert sorted(topo) == list(range(len(net.nodes)))
    position = {nid: i for i, nid in enumerate(topo)}
    for node in net.nodes:
        for i in node.inputs:
            assert position[i] < position[node.id], f"node {node.id} computed before its input {i}"
    # every weighted layer is masked at exactly one point, after its own layer
    points = [n.meta["mask_point_of"] for n in net.nodes if "mask_point_of" in n.meta]
    assert sorted(points) == sorted(names)

    # the runtime module
    torch.manual_seed(0)
    rt = specc.build(path)
    if gen.projections is not None:  # shortcut projections exist exactly where the condition holds
        assert [n.replace(".", "/") for n, _ in rt.named_modules() if n.endswith(".proj")] == gen.projections
    assert rt.weighted_layer_names == names
    expected = {n.replace(".", "/") for n, m in rt.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))
                and n.rsplit(".", 1)[-1] not in gen.branch_modules}
    assert set(names) == expected and len(names) == len(expected)
    for n in names:
        layer = rt.get_layer_by_name(n)
        assert isinstance(layer, (nn.Linear, nn.Conv2d)), n
        assert rt.preceding_layer_name(n) == net.preceding[n]
        assert rt.next_layer_name(n) == net.next[n]

    # the generated module: same state_dict keys, same outputs for the same weights
    mod = import_source(emit(load_program(str(path))), folder)
    gm = mod.Gen()
    assert list(gm.state_dict()) == list(rt.state_dict())
    assert [n for n, _ in gm.named_modules()] == [n for n, _ in rt.named_modules()]
    gm.load_state_dict(rt.state_dict())
    x = torch.randn(2, *gen.input_shape)
    for train in (False, True):
        rt.train(train), gm.train(train)
        with torch.no_grad():
            torch.manual_seed(1)
            f1, a1 = rt(x)
            torch.manual_seed(1)
            f2, a2 = gm(x)
        assert torch.equal(f1, f2)
        assert list(a1) == list(a2) == [n for n in names if n in gen.records]
        for k in a1:
            assert torch.equal(a1[k], a2[k])
    for (k, b1), (_, b2) in zip(rt.named_buffers(), gm.named_buffers()):
        assert torch.equal(b1, b2), k


@settings(max_examples=int(os.environ.get("SPECC_FUZZ_EXAMPLES", "50")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(gen=mlp_specs())
def test_random_mlp_like_specs(gen, tmp_path_factory):
    check_generated_spec(gen, tmp_path_factory.mktemp("mlp"))


@settings(max_examples=int(os.environ.get("SPECC_FUZZ_EXAMPLES", "40")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(gen=resnet_specs())
def test_random_resnet_like_specs(gen, tmp_path_factory):
    check_generated_spec(gen, tmp_path_factory.mktemp("resnet"))


# ---------------------------------------------------------------------------------------------
# mutations of the real specs
# ---------------------------------------------------------------------------------------------

# Mutated specs: the small ones (ResNet-101/152 only differ in repetition counts; they are slow to
# elaborate in bulk). A library file is checked through a spec that includes it.
MUTATION_TARGETS = [p.relative_to(SPECS).as_posix() for p in sorted(SPECS.glob("*.cl"))
                    if "101" not in p.name and "152" not in p.name] + ["lib/resnet_blocks.cl"]
LIB_USERS = [p.name for p in sorted(SPECS.glob("*resnet18*.cl"))] + ["resnet50.cl"]
TOKEN = re.compile(r'[A-Za-z_][A-Za-z0-9_]*|\d+\.\d*|\d+|"[^"\n]*"|->|==|!=|<=|>=|//|\S')
CHARS = '(){}[],:=-><*+/%?."#\n\t xyzAZ_019'
NEW_NAMES = ["zz", "fc", "conv1", "width", "in", "if", "record", "class", "self", "none", "ReLU", "int", "list"]


@st.composite
def mutations(draw):
    target = draw(st.sampled_from(MUTATION_TARGETS))
    text = (SPECS / target).read_text(encoding="utf-8")
    toks = list(TOKEN.finditer(text))
    kind = draw(st.sampled_from(["delete_char", "insert_char", "replace_char", "delete_token", "insert_token",
                                 "replace_token", "swap_lines", "number", "rename"]))
    if kind in ("delete_char", "replace_char"):
        i = draw(st.integers(0, len(text) - 1))
        c = draw(st.sampled_from(CHARS))
        text = text[:i] + (c if kind == "replace_char" else "") + text[i + 1:]
    elif kind == "insert_char":
        i = draw(st.integers(0, len(text)))
        text = text[:i] + draw(st.sampled_from(CHARS)) + text[i:]
    elif kind in ("delete_token", "insert_token", "replace_token"):
        m = toks[draw(st.integers(0, len(toks) - 1))]
        other = toks[draw(st.integers(0, len(toks) - 1))].group()
        if kind == "delete_token":
            text = text[:m.start()] + text[m.end():]
        elif kind == "insert_token":
            text = text[:m.start()] + other + " " + text[m.start():]
        else:
            text = text[:m.start()] + other + text[m.end():]
    elif kind == "swap_lines":
        lines = text.split("\n")
        i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
        text = "\n".join(lines)
    elif kind == "number":
        nums = [m for m in toks if m.group()[0].isdigit()]
        assume(nums)
        m = nums[draw(st.integers(0, len(nums) - 1))]
        new = draw(st.sampled_from(["0", "-1", "99999999999", "1.5", "00", "1e3", "-0"]))
        text = text[:m.start()] + new + text[m.end():]
    else:
        names = sorted({m.group() for m in toks if m.group()[0].isalpha() or m.group()[0] == "_"})
        old = draw(st.sampled_from(names))
        new = draw(st.sampled_from(names + NEW_NAMES))
        if draw(st.booleans()):
            text = re.sub(rf"\b{re.escape(old)}\b", new, text)
        else:
            occ = [m for m in toks if m.group() == old]
            m = occ[draw(st.integers(0, len(occ) - 1))]
            text = text[:m.start()] + new + text[m.end():]
    top = target if "/" not in target else draw(st.sampled_from(LIB_USERS))
    return target, top, kind, text


def _assert_valid_pos(err: SpecError, folder: Path) -> tuple[str, int, int]:
    assert err.pos is not None, f"SpecError without a position: {err.message}"
    file = Path(err.pos.file)
    assert file.exists(), f"error names a file that does not exist: {err.pos.file}"
    n_lines = len(file.read_text(encoding="utf-8").splitlines())
    assert 1 <= err.pos.line <= max(n_lines, 1), f"line {err.pos.line} outside 1..{n_lines}: {err}"
    assert err.pos.column >= 1
    return err.pos.file, err.pos.line, err.pos.column


# SPECC_FUZZ_EXAMPLES=2000 runs a longer fuzz session (CI keeps the default 150).
@settings(max_examples=int(os.environ.get("SPECC_FUZZ_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(m=mutations())
def test_mutated_specs_compile_or_fail_with_positioned_error(m, capsys):
    target, top, kind, text = m
    note(f"mutated {target} ({kind}), checked through {top}:\n{text}")
    folder = Path(tempfile.mkdtemp(prefix="specc-mut-"))
    try:
        shutil.copytree(SPECS, folder / "specs")
        (folder / "specs" / target).write_text(text, encoding="utf-8")
        top_path = str(folder / "specs" / top)

        load_error = emit_error = None
        try:
            program = load_program(top_path)
        except SpecError as e:
            load_error = e
        except Exception as e:  # noqa: BLE001 - the property: nothing else escapes
            raise AssertionError(f"load_program raised {type(e).__name__}: {e}") from e
        if load_error is None:
            try:
                emit(program)
            except SpecError as e:
                emit_error = e
            except Exception as e:  # noqa: BLE001
                raise AssertionError(f"emit raised {type(e).__name__}: {e}") from e
        for err in (load_error, emit_error):
            if err is not None:
                _assert_valid_pos(err, folder)
                assert "Traceback" not in err.render()

        capsys.readouterr()
        try:
            rc = cli_main(["check", top_path])
        except SystemExit as e:  # argparse only; the arguments are fine
            raise AssertionError(f"specc check exited via SystemExit({e.code})") from e
        except Exception as e:  # noqa: BLE001
            raise AssertionError(f"specc check raised {type(e).__name__}: {e}") from e
        out, err_text = capsys.readouterr()
        assert rc in (0, 1)
        assert "Traceback" not in err_text
        if rc == 1:
            found = re.findall(r"^(\S+):(\d+):(\d+): error: ", err_text, re.M)
            assert found, f"no file:line:col in {err_text!r}"
            file, line, col = found[0][0], int(found[0][1]), int(found[0][2])
            assert Path(file).exists() and 1 <= line <= len(Path(file).read_text().splitlines()) and col >= 1
            assert err_text.splitlines()[2].strip() == "^", "no caret line"
        if load_error is not None:  # a parse / include error: check reports the very same position
            assert rc == 1
            p = load_error.pos
            assert f"{p.file}:{p.line}:{p.column}: error: " in err_text
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_few_mutations_through_the_cli_subprocess(tmp_path):
    """The console script itself: a syntax error and an elaboration error, exit 1, no traceback."""
    import subprocess

    shutil.copytree(SPECS, tmp_path / "specs")
    bad1 = tmp_path / "specs" / "mlp.cl"
    bad1.write_text(bad1.read_text().replace("flatten\n", "flatten ]\n"))
    blocks = tmp_path / "specs" / "lib" / "resnet_blocks.cl"
    blocks.write_text(blocks.read_text().replace("kernel=3, stride=stride", "kernel=0, stride=stride", 1))
    specc_bin = str(Path(sys.executable).with_name("specc"))
    for spec in ("specs/mlp.cl", "specs/resnet18.cl"):
        r = subprocess.run([specc_bin, "check", spec], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, r.stdout
        assert "Traceback" not in r.stderr
        assert re.match(r"^specs/\S+\.cl:\d+:\d+: error: ", r.stderr), r.stderr
        assert r.stderr.splitlines()[2].strip() == "^"
