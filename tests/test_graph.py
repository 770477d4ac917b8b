"""`specc graph`: the DOT drawing of the elaborated layer graph, its rendering through Graphviz, and
the README picture (docs/resnet18_hat_block.*).

The DOT checks run everywhere; the SVG/PNG checks need Graphviz's `dot` (Debian package
`graphviz`) and are skipped, with that reason, where it is not installed."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SPECS

from specc.cli import _network, main
from specc.drawing import to_dot

FIXTURES = REPO / "tests" / "fixtures" / "graph"
TINY = FIXTURES / "tiny_res_hat.cl"
TINY_GOLDEN = FIXTURES / "tiny_res_hat.dot"
DOCS = REPO / "docs"
# The command that draws the README picture (README.md, "Pictures: specc graph").
README_ARGS = ["specs/resnet18_hat.cl", "-D", "input_channels=3", "--image-size", "32", "--focus", "conv3x/0"]

# (spec, -D values): plain, HAT and WSN networks, MLPs and ResNets (small and bottleneck blocks).
CASES = [
    ("mlp.cl", {"input_dim": 784, "hidden_dims": [256, 100], "output_dim": 10}),
    ("mlp_hat.cl", {"input_dim": 784, "hidden_dims": [256, 100], "output_dim": 10}),
    ("mlp_wsn.cl", {"input_dim": 784, "hidden_dims": [256, 100], "output_dim": 10}),
    ("resnet18.cl", {"input_channels": 3}),
    ("resnet18_hat.cl", {"input_channels": 3}),
    ("resnet18_wsn.cl", {"input_channels": 3}),
    ("resnet50_hat.cl", {"input_channels": 3}),
]
HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz's `dot` is not installed (apt-get install graphviz)")

_NODE = re.compile(r"^\s*([nm]\d+) \[(.*)\];$")
_EDGE = re.compile(r"^\s*([nm]\d+) -> ([nm]\d+)(?: \[(.*)\])?;$")


def _net(spec: Path, defines: dict, image_size=32):
    net, _ = _network(str(spec), defines, image_size)
    return net


def _parse(dot: str):
    """Node id -> attribute text, and the edges (src, dst, attribute text)."""
    nodes, edges = {}, []
    for line in dot.splitlines():
        if m := _NODE.match(line):
            nodes[m.group(1)] = m.group(2)
        elif m := _EDGE.match(line):
            edges.append((m.group(1), m.group(2), m.group(3) or ""))
    return nodes, edges


def _data_edges(edges):
    return {(a, b) for a, b, attrs in edges if 'label="tied"' not in attrs}


def _check_drawing(net, dot: str) -> None:
    nodes, edges = _parse(dot)
    data = _data_edges(edges)
    # One node per IR node, labelled with its module name and output shape.
    for n in net.nodes:
        assert f"n{n.id}" in nodes, n
        assert str(n.shape) in nodes[f"n{n.id}"]
        if n.module is not None:
            assert f"{n.name}" in nodes[f"n{n.id}"]
    # Every weighted layer, highlighted (bold name, filled).
    for name in net.weighted_layer_names:
        (n,) = [n for n in net.nodes if n.weighted and n.name == name]
        attrs = nodes[f"n{n.id}"]
        assert f"<b>{name}</b>" in attrs and "filled" in attrs, name
        if net.mask_scheme == "wsn":
            assert "weights masked (WSN)" in attrs, name
    # Every IR edge; from a HAT mask point it passes through the mask node.
    mask_points = {n.id: n.meta["mask_point_of"] for n in net.nodes if "mask_point_of" in n.meta}
    hat = net.mask_scheme == "hat"
    for n in net.nodes:
        for i in n.inputs:
            if hat and i in mask_points:
                assert (f"n{i}", f"m{i}") in data and (f"m{i}", f"n{n.id}") in data, (i, n.id)
            else:
                assert (f"n{i}", f"n{n.id}") in data, (i, n.id)
    # Nothing but the IR's edges (and mask nodes in them).
    expected = set()
    for n in net.nodes:
        for i in n.inputs:
            expected.add((f"m{i}" if hat and i in mask_points else f"n{i}", f"n{n.id}"))
    expected |= {(f"n{i}", f"m{i}") for i in mask_points} if hat else set()
    assert data == expected
    # Every mask point (HAT): a mask node naming the layer whose mask gates the tensor there.
    if hat:
        assert sorted(mask_points.values()) == sorted(net.weighted_layer_names)
        for nid, layer in mask_points.items():
            assert f"× mask[{layer}]" in nodes[f"m{nid}"]
    else:
        assert not any(k.startswith("m") for k in nodes)
        assert "× mask[" not in dot
    # Blocks and stages as clusters named by module path.
    for m in net.modules:
        if m.cls in ("Block", "Sequential"):
            assert f'subgraph "cluster_{m.name}" {{' in dot, m.name


@pytest.mark.parametrize("spec,defines", CASES, ids=[c[0] for c in CASES])
def test_dot_has_every_layer_edge_and_mask_point(spec, defines):
    net = _net(SPECS / spec, defines)
    dot = to_dot(net)
    _check_drawing(net, dot)
    assert to_dot(_net(SPECS / spec, defines)) == dot  # deterministic


def test_tied_units_are_shown():
    net = _net(SPECS / "resnet18_hat.cl", {"input_channels": 3})
    nodes, edges = _parse(to_dot(net))
    by_name = {n.name: n for n in net.nodes if n.module is not None}
    for stage in ("conv3x", "conv4x", "conv5x"):
        proj, layer = by_name[f"{stage}/0/identity_downsample"], f"{stage}/0/conv2"
        assert f"units tied to mask[{layer}]" in nodes[f"n{proj.id}"]
        (add,) = [n for n in net.nodes if n.op == "add" and proj.id in n.inputs]
        assert add.meta["mask_point_of"] == layer
        assert f"ties units of {layer}" in nodes[f"n{add.id}"]
        assert f"and {proj.name}" in nodes[f"n{add.id}"]
        assert (f"m{add.id}", f"n{proj.id}", ) in {(a, b) for a, b, attrs in edges if 'label="tied"' in attrs}
    # An identity shortcut ties the block input's units (the previous layer's) to the block's mask.
    add = [n for n in net.nodes if n.op == "add"][0]
    assert "ties units of conv2x/0/conv2" in nodes[f"n{add.id}"] and "and conv1" in nodes[f"n{add.id}"]


def test_golden_dot_of_a_small_spec(capsys):
    assert main(["graph", str(TINY)]) == 0
    out = capsys.readouterr().out
    assert out == TINY_GOLDEN.read_text(encoding="utf-8"), (
        f"`specc graph` output changed; if intended: specc graph {TINY.relative_to(REPO)} -o "
        f"{TINY_GOLDEN.relative_to(REPO)}")
    net = _net(TINY, {}, None)
    _check_drawing(net, out)
    nodes, _ = _parse(out)
    # The projection and its batch norm are tied to the mask of the block's conv2.
    proj_bn = next(n for n in net.nodes if n.name == "stages/1/proj_bn")
    assert "units tied to mask[stages/1/conv2]" in nodes[f"n{proj_bn.id}"]


def test_readme_picture_is_up_to_date(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    out = tmp_path / "block.dot"
    assert main(["graph", *README_ARGS, "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == (DOCS / "resnet18_hat_block.dot").read_text(encoding="utf-8"), (
        "docs/resnet18_hat_block.dot is stale; regenerate it and the SVG with: specc graph "
        + " ".join(README_ARGS) + " -o docs/resnet18_hat_block.dot (and -o docs/resnet18_hat_block.svg)")
    svg = (DOCS / "resnet18_hat_block.svg").read_text(encoding="utf-8")
    for name in ("conv3x/0/conv1", "conv3x/0/conv2", "mask[conv3x/0/conv2]",
                 "units tied to mask[conv3x/0/conv2]"):
        assert name in svg
    assert "docs/resnet18_hat_block.svg" in (REPO / "README.md").read_text(encoding="utf-8")


def test_focus_draws_one_block_and_its_neighbours():
    net = _net(SPECS / "resnet18_hat.cl", {"input_channels": 3})
    from specc.drawing import focus_path

    dot = to_dot(net, focus_path(net, "conv3x/0"))
    nodes, edges = _parse(dot)
    inside = {n.id for n in net.nodes if n.name and n.name.startswith("conv3x/0/")}
    inside |= {n.id for n in net.nodes if n.op == "add" and n.chain_layer == "conv3x/0/conv2"}
    drawn = {int(k[1:]) for k in nodes if k.startswith("n")}
    outside = drawn - inside
    assert inside <= drawn
    names = {net.nodes[i].name for i in outside}
    assert names == {"conv2x/1/conv_activation2", "conv3x/1/conv1", None}  # None: conv3x/1's add
    assert 'subgraph "cluster_conv3x/0"' in dot and 'subgraph "cluster_conv3x"' not in dot
    for i in outside:
        assert "dashed" in nodes[f"n{i}"]
    for a, b, _ in edges:  # every edge touches the block
        ids = {int(x[1:]) for x in (a, b)}
        assert ids & inside


def _run(args, capsys):
    rc = main(["graph", *args])
    return rc, capsys.readouterr()


def test_usage_errors_write_nothing(tmp_path, capsys):
    rc, io = _run([str(TINY), "-o", str(tmp_path / "g.pdf")], capsys)
    assert rc == 2 and ".dot, .svg, .png" in io.err
    rc, io = _run([str(TINY), "--focus", "stages/7", "-o", str(tmp_path / "g.dot")], capsys)
    assert rc == 2 and "stages/1" in io.err
    assert list(tmp_path.iterdir()) == []


def test_svg_without_graphviz_fails_naming_the_package(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    for suffix in (".svg", ".png"):
        rc, io = _run([str(TINY), "-o", str(tmp_path / f"g{suffix}")], capsys)
        assert rc == 1 and "graphviz" in io.err and "apt-get install graphviz" in io.err
    assert list(tmp_path.iterdir()) == []
    rc, io = _run([str(TINY), "-o", str(tmp_path / "g.dot")], capsys)  # .dot needs nothing
    assert rc == 0 and (tmp_path / "g.dot").read_text(encoding="utf-8") == TINY_GOLDEN.read_text(encoding="utf-8")


def test_dot_output_does_not_import_torch(tmp_path):
    code = ("import sys; from specc.cli import main; "
            f"rc = main(['graph', {str(TINY)!r}, '-o', {str(tmp_path / 'g.dot')!r}]); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr


@needs_dot
@pytest.mark.parametrize("spec,defines", [CASES[1], CASES[4], CASES[5]], ids=[CASES[i][0] for i in (1, 4, 5)])
def test_svg_renders_and_names_every_weighted_layer(spec, defines, tmp_path, capsys):
    out = tmp_path / f"{Path(spec).stem}.svg"
    args = [str(SPECS / spec), "--image-size", "32", "-o", str(out)]
    for k, v in defines.items():
        args += ["-D", f"{k}={v}".replace(" ", "")]
    rc, io = _run(args, capsys)
    assert rc == 0, io.err
    svg = out.read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
    net = _net(SPECS / spec, defines)
    for name in net.weighted_layer_names:
        assert f">{name}</text>" in svg, name
    if net.mask_scheme == "hat":
        for name in net.weighted_layer_names:
            assert f"× mask[{name}]" in svg, name


@needs_dot
def test_png_renders(tmp_path, capsys):
    out = tmp_path / "tiny.png"
    rc, io = _run([str(TINY), "-o", str(out)], capsys)
    assert rc == 0, io.err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_amnesiac_backup_routing_is_noted():
    net = _net(SPECS / "resnet18_amnesiac_hat.cl", {"input_channels": 3, "output_dim": 512, "gate": "sigmoid"})
    dot = to_dot(net)
    # Every weighted layer routes backup paths by its own stored mask; shortcut projections by the
    # mask of the layer owning their residual add.
    for name in net.weighted_layer_names:
        assert f"m_b[{name}]·backup + (1−m_b)·main" in dot, name
    assert dot.count("·backup + (1−m_b)·main") == len(net.weighted_layer_names) + 3
    assert "stage train_with_backup" in dot
    plain = to_dot(_net(SPECS / "resnet18_hat.cl", {"input_channels": 3, "output_dim": 512, "gate": "sigmoid"}))
    assert "backup" not in plain
