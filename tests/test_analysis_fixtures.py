"""Analysis fixtures: tests/fixtures/analysis/NAME.cl with the expected facts in NAME.json.

The expected values were worked out by hand from the language's semantics (CONTRACT.md,
DESIGN.md, the docstrings of specc/analysis), not by running the compiler. Each .cl file's
comment header says what it exercises; each .json has a "title".

Nodes are named for comparison as follows: a module call by its module path with '/', the network
input as "input", `flatten` as "flatten(<its input>)" and a residual add as "add(<main>, <branch>)",
where the inner names are the shallow names of the operands (module path, "input", "flatten", "add").

Keys of a .json (all but the first three optional): weighted_layer_names, preceding, next,
graph_preceding, graph_next, mask_points (layer -> node after which its unit mask applies),
records (layer -> node whose value is its activation), tied_units (add -> owners of its operands),
modules (module paths in registration order), layer_sizes (layer -> [in units, out units]),
topo ([node, owner of its units] in the analysis' topological order), unit_maps (node -> how it
carries its owner's units), output (the node whose value is the feature), args (constructor
arguments; defaults otherwise).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TESTS

from specc.frontend.elaborate import elaborate
from specc.frontend.facts import analyse
from specc.frontend.load import load_program

FIXTURES = TESTS / "fixtures" / "analysis"
CASES = sorted(FIXTURES.glob("*.cl"))


def shallow(net, nid: int) -> str:
    n = net.nodes[nid]
    if n.op == "input":
        return "input"
    if n.op == "call_module":
        return n.name
    return n.op


def describe(net, nid: int) -> str:
    n = net.nodes[nid]
    if n.op in ("input", "call_module"):
        return shallow(net, nid)
    return f"{n.op}({', '.join(shallow(net, i) for i in n.inputs)})"


def tree_order(paths: list[str]) -> list[str]:
    """The order named_modules() visits modules registered in the order `paths` lists them."""
    children: dict[str, list[str]] = {"": []}
    for p in paths:
        parent = p.rpartition("/")[0]
        children.setdefault(parent, []).append(p)
        children.setdefault(p, [])
    out: list[str] = []

    def visit(p):
        for c in children[p]:
            out.append(c)
            visit(c)

    visit("")
    return out


def analysed(spec: Path, args: dict | None = None):
    return analyse(elaborate(load_program(spec), args or {}))


def test_fixture_set_is_complete():
    names = {p.stem for p in CASES}
    assert {"mlp3", "conv_pool_linear", "residual", "order", "loop", "repeat"} <= names
    for spec in CASES:
        assert spec.with_suffix(".json").exists(), f"{spec.name} has no expected .json"
        assert spec.read_text().startswith("#"), f"{spec.name} needs a comment header"


@pytest.mark.parametrize("spec", CASES, ids=[p.stem for p in CASES])
def test_analysis_matches_hand_computed_facts(spec):
    expected = json.loads(spec.with_suffix(".json").read_text())
    net = analysed(spec, expected.get("args"))

    assert net.weighted_layer_names == expected["weighted_layer_names"]
    assert net.preceding == expected["preceding"]
    assert net.next == expected["next"]
    assert net.graph_preceding == expected["graph_preceding"]
    if "graph_next" in expected:
        assert net.graph_next == expected["graph_next"]

    mask_points = {}
    for n in net.nodes:
        if "mask_point_of" in n.meta:
            layer = n.meta["mask_point_of"]
            assert layer not in mask_points, f"{layer} has two mask points"
            mask_points[layer] = describe(net, n.id)
    assert mask_points == expected["mask_points"]

    records = {layer: describe(net, nid) for layer, nid in net.records.items()}
    assert records == expected["records"]
    record_of = {n.meta["record_of"]: describe(net, n.id) for n in net.nodes if "record_of" in n.meta}
    assert record_of == expected["records"]

    if "tied_units" in expected:
        tied = {describe(net, n.id): n.meta["tied_units"] for n in net.nodes if n.op == "add"}
        assert tied == expected["tied_units"]
    if "modules" in expected:
        assert [m.name for m in net.modules] == expected["modules"]
    if "layer_sizes" in expected:
        sizes = {}
        for n in net.nodes:
            if n.weighted:
                kw = net.module(n.module).kwargs
                sizes[n.name] = [kw.get("in_features", kw.get("in_channels")),
                                 kw.get("out_features", kw.get("out_channels"))]
        assert sizes == expected["layer_sizes"]
    if "topo" in expected:
        topo = [[describe(net, nid), net.nodes[nid].meta.get("units")] for nid in net.topo_order]
        assert topo == expected["topo"]
    if "unit_maps" in expected:
        maps = {describe(net, n.id): n.meta.get("unit_map") for n in net.nodes}
        for node, how in expected["unit_maps"].items():
            got = maps[node]
            assert (list(got) if isinstance(got, tuple) else got) == how, node
    if "output" in expected:
        assert describe(net, net.output) == expected["output"]


@pytest.mark.parametrize("spec", CASES, ids=[p.stem for p in CASES])
def test_fixture_builds_and_runs(spec):
    """The fixture networks are real networks: they build, and their forward records exactly the
    weighted layers' activations with the shapes the analysis inferred."""
    import torch

    import specc

    expected = json.loads(spec.with_suffix(".json").read_text())
    m = specc.build(spec, **expected.get("args", {})).eval()
    assert m.weighted_layer_names == expected["weighted_layer_names"]
    if "modules" in expected:  # registration order -> the module tree's depth-first order
        assert [n.replace(".", "/") for n, _ in m.named_modules() if n] == tree_order(expected["modules"])
    net = analysed(spec, expected.get("args", {}))
    inp = net.nodes[0].shape.dims
    with torch.no_grad():
        feature, acts = m(torch.randn(2, *inp))
    assert list(acts) == [n for n in expected["weighted_layer_names"] if n in expected["records"]]
    for layer, nid in net.records.items():
        assert tuple(acts[layer].shape[1:]) == net.nodes[nid].shape.dims
    assert tuple(feature.shape[1:]) == net.nodes[net.output].shape.dims


def test_loop_fixture_follows_its_list_argument():
    """The loop fixture with another list: the layer count and sizes follow the argument."""
    net = analysed(FIXTURES / "loop.cl", {"widths": [7], "out": 9})
    assert net.weighted_layer_names == ["layer/0", "layer/1"]
    # the module lists a loop fills are declared when the loop starts, as the generated constructor does
    assert [m.name for m in net.modules] == ["layer", "act", "layer/0", "act/0", "layer/1"]
    assert {layer: shallow(net, nid) for layer, nid in net.records.items()} == {"layer/0": "act/0", "layer/1": "layer/1"}
    net = analysed(FIXTURES / "loop.cl", {"widths": []})
    assert net.weighted_layer_names == ["layer/0"]
    assert net.preceding == {"layer/0": None} and net.next == {"layer/0": None}


def test_residual_fixture_condition_follows_arguments():
    """The identity/projection choice depends on the block's own input (`in.channels`) and
    stride, not on the network input: with a 1-channel input r1 still has no projection."""
    net = analysed(FIXTURES / "residual.cl", {"c": 1})
    names = [m.name for m in net.modules]
    assert "r1/proj" not in names and "r2/proj" in names
    assert net.module(("stem",)).kwargs["in_channels"] == 1
