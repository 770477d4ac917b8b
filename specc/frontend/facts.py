"""The analysis (specc/analysis) applied to the elaborated IR: the IR as an analysis graph, the
facts written back for `check`, `show` and `graph`, analysis errors as positioned spec errors."""
from __future__ import annotations

import heapq
import math

from ..analysis import AnalysisError, Graph, Node, scored_layers
from ..analysis import analyse as analyse_graph
from ..core.layers import BY_CLASS, OPS
from ..core.roles import MODULES
from ..schemes import SCHEMES
from .errors import SpecError
from .ir import Network


def topological_order(net: Network) -> list[int]:
    """Among the nodes whose inputs are computed, the one declared first goes first: a chain stays
    in chain order, loop iterations in iteration order, and a branch declared after the main path
    comes after the main-path nodes declared before it and before the add that uses it (the order
    in which the generated forward computes them)."""
    indeg = {n.id: len(set(n.inputs)) for n in net.nodes}
    users: dict[int, list[int]] = {n.id: [] for n in net.nodes}
    for n in net.nodes:
        for i in set(n.inputs):
            users[i].append(n.id)
    ready = [(n.order, n.id) for n in net.nodes if indeg[n.id] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, nid = heapq.heappop(ready)
        order.append(nid)
        for u in users[nid]:
            indeg[u] -= 1
            if indeg[u] == 0:
                heapq.heappush(ready, (net.nodes[u].order, u))
    if len(order) != len(net.nodes):  # the elaborator builds acyclic graphs; this guards that claim
        raise AssertionError("the data-flow graph has a cycle")
    return order


def _kind_of(net_modules: dict, n) -> str | None:
    """The catalogue kind a module node calls (None: not a catalogue module)."""
    decl = net_modules.get(n.module) if n.op == "call_module" else None
    if decl is None:
        return None
    entry = BY_CLASS.get(decl.cls if isinstance(decl.cls, str) else decl.cls.__name__)
    return entry.name if entry is not None else None


def _parts(n, decl, i: int, inputs: list[int]) -> list[Node]:
    """A patch embedding or an attention as the parts HAT masks, as a traced network shows them
    (specc/runtime/tokens.py): `proj` (a convolution) -> tokens; `qkv` -> heads -> `proj`."""
    kw = decl.kwargs
    if decl.cls == "PatchEmbed":
        proj = Node(i, "projection", inputs, f"{n.name}/proj", module=True, keeps_zero=False,
                    units=kw["embed_dim"], in_units=kw["in_channels"])
        proj.meta["view"] = OPS["conv2d"].hat_view
        return [proj, Node(i + 1, "tokens", [i], f"{n.name} tokens")]
    d = kw["dim"]
    qkv = Node(i, "projection", inputs, f"{n.name}/qkv", module=True, keeps_zero=False, units=3 * d, in_units=d)
    heads = Node(i + 1, "heads", [i], f"{n.name} heads")
    proj = Node(i + 2, "projection", [i + 1], f"{n.name}/proj", module=True, keeps_zero=False, units=d, in_units=d)
    for part in (qkv, proj):
        part.meta["view"] = None
    return [qkv, heads, proj]


def _graph(net: Network, order: list[int], parts: bool = False) -> Graph:
    """`parts`: patch embeddings and attentions as their weighted parts (HAT)."""
    index: dict[int, int] = {}  # IR node -> the analysis node holding its value
    modules = {m.path: m for m in net.modules}
    nodes: list = []
    for nid in order:
        n = net.nodes[nid]
        i = len(nodes)
        inputs = [index[j] for j in n.inputs]
        if parts and _kind_of(modules, n) in ("patch_embed", "attention"):
            for part in _parts(n, modules[n.module], i, inputs):
                part.where = n
                nodes.append(part)
            index[nid] = len(nodes) - 1
            continue
        if n.op == "input":
            node = Node(i, "input", [], "input", units=n.shape.units)
            node.meta["view"] = n.shape.unit_view
        elif n.op == "add":
            node = Node(i, "add", inputs, "add", keeps_zero=False, shortcut_operand=1)
        elif n.op == "mul":  # the stream (operand 0) times a gate: a zero of the stream stays zero
            node = Node(i, "gate", inputs, "mul")
            node.meta["main_operand"] = 0
        elif n.op == "concat":
            node = Node(i, "concat", inputs, "concat")
        elif n.op in OPS:  # a catalogue layer without a module (flatten, subsample, pad_channels)
            entry = OPS[n.op]
            node = Node(i, entry.role, inputs, n.op, keeps_zero=entry.keeps_zero)
            if entry.role == "flatten":
                src = net.nodes[n.inputs[0]].shape.spatial
                node.spatial = math.prod(src) if src and None not in src else None
            elif entry.role == "pad":
                a = n.meta["args"]
                node.pad = (a["before"], a["after"])
        else:
            decl = modules[n.module]
            cls = decl.cls if isinstance(decl.cls, str) else decl.cls.__name__
            kind = MODULES.get(cls)
            node = Node(i, kind.role if kind else "unknown", inputs, n.name, module=True,
                        keeps_zero=kind.keeps_zero if kind else False)
            layer = BY_CLASS.get(cls)
            if layer is not None and layer.weighted:
                kw = decl.kwargs
                node.in_units, node.units = kw[layer.units[0]], kw[layer.units[1]]
                node.groups = kw.get("groups", 1)
                node.meta["view"] = layer.hat_view
            elif layer is not None and layer.parts is not None:  # WSN scores them (analysis.scored_layers)
                node.meta["weighted_parts"] = [(child, c == "LayerNorm") for child, c, _ in layer.parts(decl.kwargs)]
            node.meta["affine_norm"] = cls == "LayerNorm" and bool(decl.kwargs.get("elementwise_affine", True))
        node.where = n
        nodes.append(node)
        index[nid] = i
    records = {layer: index[nid] for layer, nid in net.records.items()}
    return Graph(nodes, records, index[net.output])


def _check_transformer_parts(net: Network) -> None:
    """What HAT cannot mask exactly in a transformer, refused at its position."""
    modules = {m.path: m for m in net.modules}
    for n in net.nodes:
        if _kind_of(modules, n) == "attention":
            kw = modules[n.module].kwargs
            if kw.get("qk_norm"):
                raise SpecError(f"`mask hat()` cannot mask '{n.name}' with qk_norm: the LayerNorm over each head's q "
                                "and k moves a masked q/k unit's zero, so it would not reach the attention scores "
                                "as 0", n.pos, "use qk_norm=false under `mask hat()`")


def _unit_map(graph: Graph, facts, node: Node):
    """How the node carries its owner's units, as `show` and `graph` print it: per channel of an
    image, per feature, or flattened (each channel over `repeat` features); None when unowned."""
    owner = node.meta["units"][0].owner if len(node.meta["units"]) == 1 else None
    if owner is None:
        return None
    if node.meta["view"] is not None:
        return "channel"
    if graph.nodes[facts.layer_nodes[owner]].meta["view"] is not None:
        return ("flatten", node.meta["units"][0].repeat)
    return "feature"


def analyse(net: Network) -> Network:
    """Run the analysis on `net` and record its facts on the IR (fields of `net`, `node.meta`)."""
    order = topological_order(net)
    hat = net.mask_scheme == "hat"
    if hat:
        _check_transformer_parts(net)
    graph = _graph(net, order, parts=hat)
    mixing = next((n for n in graph.nodes if n.role == "mixing"), None)
    if net.mask_scheme is not None and mixing is not None and not SCHEMES[net.mask_scheme].weight_masks:
        raise SpecError(f"`mask {net.mask_scheme}()` cannot mask '{mixing.name}' yet: this scheme does not "
                        "place masks on attention or patch embeddings (transformer layers)", mixing.where.pos,
                        "`mask hat()` masks transformers and `mask wsn(...)` scores the linears inside attention "
                        "and the patch embedding; AmnesiacHAT on them is not written yet")
    try:
        # the zero-mover check of the mask points only where there are unit masks (HAT)
        unit_masks = net.mask_scheme is not None and SCHEMES[net.mask_scheme].unit_masks
        facts = analyse_graph(graph, net.weights_branches, unit_masks=unit_masks,
                              point=net.scheme_options.get("point") or "earliest")
        if net.mask_scheme is not None and SCHEMES[net.mask_scheme].weight_masks:
            facts = scored_layers(graph, facts, bool(net.scheme_options.get("mask_layer_norms")))
    except AnalysisError as e:
        where = e.node.where if e.node is not None else None
        pos = where.pos if where is not None else net.nodes[net.output].pos
        raise SpecError(str(e), pos) from None
    net.topo_order = order
    net.facts = facts
    net.weighted_layer_names = facts.weighted_layer_names
    net.preceding, net.next = facts.preceding, facts.next
    net.graph_preceding, net.graph_next = facts.graph_preceding, facts.graph_next
    net.tied_to = facts.tied_to
    net.input_unit_repeat = {name: segs[0].repeat if len(segs) == 1 else None
                             for name, segs in facts.input_segments.items()}
    for node in graph.nodes:
        ir = node.where
        if node.module and node.name != ir.name:  # a part of a patch embedding or an attention (HAT)
            ir.meta.setdefault("parts", {})[node.name] = node
        ir.weighted = bool(node.meta.get("weighted"))
        if "units" in node.meta:
            segs = node.meta["units"]
            ir.meta["segments"] = segs
            ir.meta["units"] = segs[0].owner if len(segs) == 1 else None
            ir.meta["unit_map"] = _unit_map(graph, facts, node)
        for key in ("tied_units", "mask_point_of", "shortcut_of", "tied_to"):
            if key in node.meta:
                ir.meta[key] = node.meta[key]
    for layer, nid in net.records.items():
        net.nodes[nid].meta["record_of"] = layer
    return net
