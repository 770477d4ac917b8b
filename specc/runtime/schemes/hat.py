"""HAT: each weighted layer's units multiplied by a task mask, gate(s * embedding).

`install(network, PlainClass, ...)` is called at the end of a masked class's constructor: it
traces the plain network's forward, finds the weighted layers and their mask points with the
shared analysis (specc.analysis), creates one task embedding per weighted layer, and rewrites the
traced graph so that the unit mask of each layer multiplies its units right after the last
operation of its chain that could move a zero (its batch norm, its residual add). The rewritten
forward is compiled into visible source (`print_readable()`), and HATMasked.forward runs it.

With CLArena's base classes (`--base clarena`) the blocks of a ResNet are HAT backbones of their
own, as in CLArena: each holds the embeddings of its layers (shared with the network's
`task_embedding_t`) and its per-task batch norms, and (for HAT) the network's forward computes the
masks of a block's layers from the block's `get_mask`, as CLArena's blocks do.
"""
from __future__ import annotations

import inspect
import operator

import torch
from torch import Tensor, fx, nn

from ...analysis import analyse
from ...schemes import BN_MODES, batch_norm_mode  # noqa: F401  (BN_MODES: re-exported)
from .. import batchnorm, distributed, structure, task_parameters, tokens
from ..backbone import CLBackbone
from ..codegen import compile_forward, forward_source
from ..compiling import eager, eager_frame
from ..denormals import scoped_flush
from ..fx_graph import analysis_graph, trace
from . import ExportedClass
from .hat_backbone import HATMaskBackbone, anneal_scalar, check_mask_arguments
from .hat_measure import _graph_measure


def uses_batch_norm(mode) -> bool:
    """The plain network's `batch_normalization` for HAT's mode (None or False / "shared" / "independent")."""
    return batch_norm_mode(mode) is not None


def _hat_bases():
    """The HAT base classes a network may derive from: specc's own and, when importable, CLArena's."""
    bases = [HATMaskBackbone]
    try:
        import sys

        clarena = sys.modules.get("clarena.backbones.base")
        if clarena is not None:
            bases.append(clarena.HATMaskBackbone)
    except Exception:  # pragma: no cover - a broken clarena import is not ours to report
        pass
    return tuple(bases)


def _hat_blocks(network: nn.Module) -> list[tuple[str, nn.Module]]:
    """Submodules that are HAT backbones themselves (CLArena's HAT ResNet blocks)."""
    bases = _hat_bases()
    return [(name, m) for name, m in network.named_modules() if name and isinstance(m, bases)]


class _Masked:
    """What every masked backbone of specc shares: its forward is compiled from a rewritten graph,
    which is left out of the pickled state and made again on load."""

    def get_layer_by_name(self, layer_name: str | None) -> nn.Module | None:
        # The base class scans named_modules() (CLArena's does, with a suffix-match fallback); a
        # weighted layer's name is its module path, found directly. HAT's test stage looks up every
        # layer on every forward.
        if layer_name is not None:
            try:
                return self.get_submodule(layer_name.replace("/", "."))
            except AttributeError:
                pass
        return super().get_layer_by_name(layer_name)

    def print_readable(self, print_output: bool = True) -> str:
        """The source of the rewritten forward (as torch.fx's GraphModule.print_readable)."""
        src = forward_source(self)
        if print_output:
            print(src)
        return src

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_specc_forward", "_specc_backup_forward")}

    def __setstate__(self, state):
        super().__setstate__(state)
        self._specc_rewrite()


class HATMasked(_Masked):
    """HAT for a traced network: forward, per-task batch norms, parameter-wise measures that
    follow the graph (through flatten, grouped convolutions, concatenations)."""

    _specc_block_masks = True  # HAT: a HAT block's masks come from the block (CLArena's HAT ResNets)

    @scoped_flush  # on specc's bases: subnormals flushed in the forward and its backward (README)
    @eager_frame
    def forward(self, input: Tensor, stage: str, s_max: float | None = None, batch_idx: int | None = None,
                num_batches: int | None = None, test_task_id: int | None = None):
        own, bn_task, scale, mask = forward_inputs(self, stage, s_max, batch_idx, num_batches, test_task_id)
        if own:  # specc's get_mask: in 'train'/'validation' the masks are made from `scale` in `run`
            return run(self, input, scale, mask, bn_task, stage)
        # CLArena's base (or an overridden get_mask): its masks; its blocks' get_mask reads the numbers
        feature, activations = self._specc_forward(self, input, mask, bn_task, stage, s_max, batch_idx,
                                                   num_batches, test_task_id)
        return feature, mask, activations

    # -- per-task batch norm ------------------------------------------------------------------
    def setup_task_id(self, task_id: int) -> None:
        super().setup_task_id(task_id)
        task_parameters.copy_for_task(self, self._specc_task_parameters, task_id, freeze=specc_base(self))
        if self._specc_bn_groups:
            batchnorm.copy_for_task(self, self._specc_bn_groups, task_id, freeze=specc_base(self))
            for _, block in _hat_blocks(self):
                block.setup_task_id(task_id)

    def store_bn(self) -> None:
        """Store a copy of the live batch norms under the current task (independent mode only).
        Under torch.distributed (specc's bases), first average the running statistics of the live
        batch norms across ranks (every mode), so that every rank stores and tests with the same."""
        if specc_base(self):
            distributed.average_batch_norm_statistics_of(batchnorm.live_norms(self, self._specc_bn_groups))
        task_parameters.copy_for_task(self, self._specc_task_parameters, self.task_id, always=True,
                                      freeze=specc_base(self))
        if self._specc_bn_groups:
            batchnorm.store(self, self._specc_bn_groups, self.task_id, freeze=specc_base(self))
            for _, block in _hat_blocks(self):
                block.store_bn()

    def initialize_independent_bn(self) -> None:
        """Reset the live batch norms (and a transformer's per-task class token and position
        embedding) to their state at construction (independent mode only)."""
        task_parameters.reset(self, self._specc_task_parameters)
        if self._specc_bn_groups:
            batchnorm.reset(self, self._specc_bn_groups)
            for _, block in _hat_blocks(self):
                block.initialize_independent_bn()

    # -- measures -----------------------------------------------------------------------------
    def get_layer_measure_parameter_wise(self, neuron_wise_measure: dict[str, Tensor], layer_name: str,
                                         aggregation_mode: str):
        """Unit-wise measures spread onto `layer_name`'s parameters. Where each input of the layer
        is unit j of the layer before it in `weighted_layer_names` (CLArena's assumption, true of
        its networks) this is the base class's method; otherwise the inputs follow the graph: a
        linear after a flatten reads each channel at height * width inputs, a grouped
        convolution's output channel only its group's input channels, a layer after a concat the
        units of every layer concatenated, an attention's proj the v units of its qkv (units
        2D..3D-1: specc/runtime/tokens.py), and inputs that carry no layer's units (network input,
        zero padding, a LayerNorm of a transformer's residual stream) only the layer's own measure."""
        segments = self._specc_facts.input_segments.get(layer_name)
        layer = self.get_layer_by_name(layer_name)
        if segments is None or self._measure_is_by_list(layer_name, segments, layer):
            return super().get_layer_measure_parameter_wise(neuron_wise_measure, layer_name, aggregation_mode)
        return _graph_measure(neuron_wise_measure, layer_name, layer, segments, aggregation_mode)

    def _measure_is_by_list(self, layer_name: str, segments, layer) -> bool:
        preceding = self.preceding_layer_name(layer_name)
        owned = [s for s in segments if s.owner is not None]
        if not owned:  # inputs that are data: the layer's own measure, grouped or not
            return preceding is None
        if getattr(layer, "groups", 1) != 1:
            return False
        return len(segments) == 1 and segments[0].owner == preceding and segments[0].repeat == 1 \
            and segments[0].start == 0 and segments[0].size == layer.weight.shape[1]

    # -- the forward --------------------------------------------------------------------------
    def _specc_rewrite(self) -> None:
        _rewrite(self)


def specc_base(network: nn.Module) -> bool:
    """Whether `network` derives from specc's base classes (not CLArena's: `--base clarena`)."""
    return isinstance(network, CLBackbone)


def _own_get_mask(network: nn.Module) -> bool:
    """Whether `network` masks with specc's HATMaskBackbone.get_mask (not CLArena's, not an override)."""
    return type(network).get_mask is HATMaskBackbone.get_mask


@eager
def forward_inputs(network: nn.Module, stage: str, s_max, batch_idx, num_batches, test_task_id):
    """What HATMasked.forward computes before the network runs: `(own, bn_task, scale, mask)`:
    whether get_mask is specc's, the per-task batch-norm key, and either the gate scale
    (gate_scale) or the masks from get_mask."""
    own = _own_get_mask(network)
    bn_task = batchnorm.task_key(stage, test_task_id, getattr(network, "task_id", None)) \
        if network._specc_independent else None
    scale = gate_scale(network, stage, s_max, batch_idx, num_batches, test_task_id) if own else None
    mask = None if scale is not None else network.get_mask(stage=stage, s_max=s_max, batch_idx=batch_idx,
                                                            num_batches=num_batches, test_task_id=test_task_id)
    return own, bn_task, scale, mask


def gate_scale(network: nn.Module, stage: str, s_max, batch_idx, num_batches, test_task_id) -> Tensor | None:
    """The scale the task embeddings are multiplied by before the gate in 'train' (HAT's annealed
    s) and 'validation' (s_max), as a 0-d float64 CPU tensor holding the Python float that
    get_mask multiplies by; None in other stages and for networks whose get_mask is not specc's.

    `embedding * tensor(v, float64)` equals `embedding * v` bit for bit for every floating dtype:
    a 0-d CPU operand is read at its own precision and converted to the kernel's compute type,
    exactly as the Python number is (tests/test_compile.py checks float32, float64, bfloat16).
    Being a tensor, it reaches a compiled graph as an input, not as a constant to recompile for."""
    if stage not in ("train", "validation") or not _own_get_mask(network):
        return None
    check_mask_arguments(stage, s_max, batch_idx, num_batches, test_task_id)
    value = anneal_scalar(s_max, batch_idx, num_batches) if stage == "train" else s_max
    return torch.tensor(value, dtype=torch.float64)


def masks_from_scale(network: nn.Module, scale: Tensor) -> dict[str, Tensor]:
    """get_mask's 'train'/'validation' masks for the gate scale `scale` (see gate_scale)."""
    return {name: network.gate_fn(network.task_embedding_t[name].weight * scale).squeeze()
            for name in network.weighted_layer_names}


def run(network: nn.Module, input: Tensor, scale: Tensor | None, mask: dict | None, bn_task: str | None,
        stage: str):
    """The masked network on `input`: masks from `scale` (or the given `mask`), the rewritten
    forward. This is the frame torch.compile captures (HATMasked.forward itself runs eagerly)."""
    if scale is not None:
        mask = masks_from_scale(network, scale)
    feature, activations = network._specc_forward(network, input, mask, bn_task, stage, None, None, None, None)
    return feature, mask, activations


class HATBlock:
    """A block that is a HAT backbone of its own (CLArena's HAT ResNet blocks): its embeddings are
    the network's, its per-task batch norms its own."""

    def setup_task_id(self, task_id: int) -> None:
        super().setup_task_id(task_id)
        if self._specc_bn_groups:
            batchnorm.copy_for_task(self, self._specc_bn_groups, task_id)

    def store_bn(self) -> None:
        if self._specc_bn_groups:
            batchnorm.store(self, self._specc_bn_groups, self.task_id)

    def initialize_independent_bn(self) -> None:
        if self._specc_bn_groups:
            batchnorm.reset(self, self._specc_bn_groups)


def nested(block_cls: type):
    """A network's block factory that builds the block as a HAT backbone (`block_cls`), with the
    network's gate and batch-norm mode (set before the plain constructor runs)."""

    def make(self, path, in_shape, *args, **kwargs):
        mode = getattr(self, "batch_normalization_mode", None)
        if "batch_normalization" in kwargs:
            kwargs["batch_normalization"] = mode if kwargs["batch_normalization"] else None
        return block_cls(path, in_shape, *args, gate=self.gate, **kwargs)

    return make


def install_block(block: nn.Module, batch_normalization) -> None:
    """At the end of a HAT block's constructor: its embeddings (right after its layers, as
    CLArena's blocks draw them) and its per-task batch norms."""
    batch_normalization = batch_norm_mode(batch_normalization)
    transformer = _is_transformer(block)  # a transformer's LayerNorms are per task (install)
    if transformer and batch_normalization is None:
        batch_normalization = "independent"
    for name in block.weighted_layer_names:
        units = block.get_submodule(name[len(block.path) + 1:].replace("/", ".")).weight.shape[0]
        block.task_embedding_t[name] = nn.Embedding(num_embeddings=1, embedding_dim=units)
    block.batch_normalization = batch_normalization
    norms = batchnorm.NORMS + ((nn.LayerNorm,) if transformer else ())
    block._specc_bn_groups = batchnorm.groups(block, norms) if batch_normalization == "independent" else []
    batchnorm.create_copies(block, block._specc_bn_groups)


def install(network: nn.Module, plain_cls: type, batch_normalization=None, protect_shortcuts: bool = False,
            fold_batch_norm: bool = False, cache: bool = True, point: str = "earliest") -> None:
    """At the end of a HAT class's constructor: analyse the plain forward, create the task
    embeddings, the per-task batch norms, and the masked forward. `cache`: the plain class's
    constructor arguments, kept as attributes, determine its structure (generated classes)."""
    batch_normalization = batch_norm_mode(batch_normalization)
    # HAT on a transformer (HAT-CL's placement): its LayerNorms, class token and position embedding,
    # which no unit mask can protect, are kept per task as independent batch norms are.
    transformer = _is_transformer(network)
    if transformer and batch_normalization is None:
        batch_normalization = "independent"
    network._specc_norms = batchnorm.NORMS + ((nn.LayerNorm,) if transformer else ())
    network._specc_plain = plain_cls
    network._specc_options = {"protect_shortcuts": protect_shortcuts, "fold_batch_norm": fold_batch_norm,
                              "point": point}
    # Keyed before this set-up changes attributes the plain constructor set (batch_normalization).
    network._specc_key = structure.key(network, plain_cls, sorted(network._specc_options.items()),
                                       batch_normalization, type(network)._specc_block_masks) if cache else None
    network._specc_independent = batch_normalization == "independent"
    # Saturated sigmoid masks make subnormal floats, which x86 CPUs compute tens of times slower:
    # specc's bases flush them in the network's own forward and backward (denormals.scoped_flush);
    # CLArena's (`--base clarena`) keep CLArena's arithmetic bit for bit.
    network.flush_subnormals = specc_base(network)
    _rewrite(network)  # traced, analysed and compiled once per structure
    facts = network._specc_facts
    blocks = _hat_blocks(network)
    block_layers = {name for _, b in blocks for name in b.weighted_layer_names}
    names = facts.weighted_layer_names
    # The analysis of the traced graph is the authority; generated constructors list the same.
    network.weighted_layer_names = list(names)
    # CLArena's HAT ResNets collect their blocks' embeddings first, then create their own.
    for _, block in blocks:
        network.task_embedding_t.update(block.task_embedding_t)
    for name in names:
        if name in block_layers or name in facts.tied_to:
            continue
        units = network.get_submodule(name.replace("/", ".")).weight.shape[0]
        network.task_embedding_t[name] = nn.Embedding(num_embeddings=1, embedding_dim=units)
    for name, owner in facts.tied_to.items():
        network.task_embedding_t[name] = network.task_embedding_t[owner]
    network.batch_normalization = batch_normalization
    in_blocks = {path for path, _ in blocks}
    network._specc_bn_groups = [g for g in batchnorm.groups(network, network._specc_norms)
                                if not _inside(g.owner, in_blocks)] if batch_normalization == "independent" else []
    batchnorm.create_copies(network, network._specc_bn_groups)
    network._specc_task_parameters = list(facts.task_parameters) if network._specc_independent else []
    task_parameters.create_copies(network, network._specc_task_parameters)


def _is_transformer(network: nn.Module) -> bool:
    # attention or a patch embedding, not a LayerNorm alone: a convolutional net with a LayerNorm keeps
    # the batch-norm mode it was given and its LayerNorm shared (as before HAT on transformers)
    return any(isinstance(m, (tokens.PatchEmbed, tokens.SelfAttention)) for m in network.modules())


def _inside(owner: tuple[str, ...], block_paths: set[str]) -> bool:
    return any(".".join(owner[:k]) in block_paths for k in range(1, len(owner) + 1))


def _analyse(network: nn.Module):
    graph = trace(network, network._specc_plain)
    agraph = analysis_graph(graph, network)
    facts = analyse(agraph, include_shortcuts=network._specc_options.get("protect_shortcuts", False),
                    point=network._specc_options.get("point", "earliest"))
    network._specc_facts = facts
    return graph, agraph, facts


def _rewrite(network: nn.Module) -> None:
    """The masked forward (made once per structure)."""
    known = structure.recall(network._specc_key)
    if known is not None and known[1] is not None:
        network._specc_facts, network._specc_forward, network._specc_forward_source = known
        return
    graph, agraph, facts = _analyse(network)
    mask_graph(network, graph, agraph, facts, block_masks=type(network)._specc_block_masks)
    if getattr(network, "_specc_derive_records", False):
        record_activations(graph, agraph, facts, {n.meta["hat_mask"]: n for n in graph.nodes if "hat_mask" in n.meta})
    network._specc_forward, network._specc_forward_source = compile_forward(graph, type(network).__name__)
    structure.remember(network._specc_key, (facts, network._specc_forward, network._specc_forward_source))


PLACEHOLDERS = ("mask", "bn_task", "stage", "s_max", "batch_idx", "num_batches", "test_task_id")


def mask_graph(network: nn.Module, graph: fx.Graph, agraph, facts, block_masks: bool, route: bool = True,
               fold: bool | None = None) -> dict[str, fx.Node]:
    """Rewrite `graph` in place: the forward `(input, mask, bn_task, stage, s_max, batch_idx,
    num_batches, test_task_id) -> (feature, activations)` with every weighted layer's units
    masked at its mask point (and batch norms routed per task in independent mode). Returns the
    placeholders."""
    (inp,) = [n for n in graph.nodes if n.op == "placeholder"]
    ph = {}
    last = inp
    for name in PLACEHOLDERS:
        with graph.inserting_after(last):
            ph[name] = last = graph.placeholder(name)
    blocks = dict(_hat_blocks(network)) if block_masks else {}
    layer_block = {layer: path for path, b in blocks.items() for layer in b.weighted_layer_names}
    block_mask: dict[str, fx.Node] = {}
    if fold is None:
        fold = network._specc_options.get("fold_batch_norm", False)
    for layer, point_id in facts.mask_points.items():
        point = agraph.nodes[point_id].where
        source = ph["mask"]
        path = layer_block.get(layer)
        if path is not None:
            if path not in block_mask:
                block_mask[path] = _block_get_mask(graph, path, ph)
            source = block_mask[path]
        view = agraph.nodes[point_id].meta.get("view")  # the layer's catalogue entry's hat_view
        if fold and _foldable(network, point):
            _fold(graph, network, point, source, layer)
            continue
        with graph.inserting_after(point):
            m = graph.call_function(operator.getitem, (source, layer))
        if view is not None:
            with graph.inserting_after(m):
                m = graph.call_method("view", (m,) + tuple(view))
        with graph.inserting_after(m):
            masked = graph.call_function(operator.mul, (point, m))
        point.replace_all_uses_with(masked, delete_user_cb=lambda user: user is not masked)  # noqa: B023 (called here)
        masked.meta["hat_mask"] = layer
        masked.meta["spec_position"] = point.meta.get("spec_position")
        masked.stack_trace = point.stack_trace
    facts.task_parameters = ()
    if route and network._specc_independent:
        route_batch_norms(network, graph, ph["bn_task"])
        facts.task_parameters = route_task_parameters(graph, ph["bn_task"])
    graph.lint()
    return ph


def record_activations(graph: fx.Graph, agraph, facts, points: dict[str, fx.Node]) -> None:
    """A model that records no activations (a hand-written one) returns, per weighted layer, its
    units after the activation that follows its mask point (`points`: the rewritten layer, or its
    masking; the point itself when no activation follows): the graph's output becomes
    `(feature, activations)`."""
    output = next(n for n in graph.nodes if n.op == "output")
    value = output.args[0]
    if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[1], dict) \
            and list(value[1]) == list(facts.weighted_layer_names):
        return  # the model records its weighted layers' activations itself (CLArena's layout)
    feature = value[0] if isinstance(value, (tuple, list)) else value
    records = {}
    for layer in facts.weighted_layer_names:
        point = points.get(layer, agraph.nodes[facts.layer_nodes[layer]].where)
        after = [n for n in agraph.nodes if n.meta.get("chain_of") == layer and n.role == "activation"]
        records[layer] = after[-1].where if after else point
    output.args = ((feature, records),)


def _block_get_mask(graph: fx.Graph, path: str, ph: dict) -> fx.Node:
    """`block.get_mask(...)` at the block's first node, as CLArena's block forward starts."""
    first = next((n for n in graph.nodes if any(v[0] == path for v in n.meta.get("nn_module_stack", {}).values())),
                 None)
    with graph.inserting_before(first) if first is not None else graph.inserting_after(ph["test_task_id"]):
        block = graph.get_attr(path)
        return graph.call_method("get_mask", (block,), {k: ph[k] for k in PLACEHOLDERS[2:]})


def route_batch_norms(network: nn.Module, graph: fx.Graph, bn_task: fx.Node) -> None:
    """Every batch-norm call routed through `independent_bn`: the live module, or the copy of the
    task `bn_task` names."""
    norms = getattr(network, "_specc_norms", batchnorm.NORMS)
    for node in list(graph.nodes):
        if node.op != "call_module" or not isinstance(network.get_submodule(node.target), norms):
            continue
        g = batchnorm.group_of(network, tuple(node.target.split(".")))
        with graph.inserting_before(node):
            live = graph.get_attr(node.target)
            copies = graph.get_attr(".".join(g.owner + (g.attr + "s",)))
            routed = graph.call_function(batchnorm.independent_bn, (node.args[0], live, copies, bn_task, g.sub))
        routed.meta.update(node.meta)
        routed.stack_trace = node.stack_trace
        node.replace_all_uses_with(routed)
        graph.erase_node(node)


_TOKEN_PARAMETERS = (tokens.prepend_token, tokens.add_embedding)


def route_task_parameters(graph: fx.Graph, bn_task: fx.Node) -> tuple[str, ...]:
    """Every class token and position embedding read through `task_parameter`: the live parameter,
    or the copy of the task `bn_task` names. Returns their targets."""
    targets = []
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in _TOKEN_PARAMETERS:
            continue
        param = node.args[1]
        if not isinstance(param, fx.Node) or param.op != "get_attr":
            continue
        owner, _, attr = param.target.rpartition(".")
        with graph.inserting_before(node):
            copies = graph.get_attr(f"{owner}.{attr}s" if owner else f"{attr}s")
            routed = graph.call_function(task_parameters.task_parameter, (param, copies, bn_task))
        node.replace_input_with(param, routed)
        targets.append(param.target)
    return tuple(dict.fromkeys(targets))


def _foldable(network: nn.Module, point: fx.Node) -> bool:
    """With `fold_batch_norm`, a mask right after an affine batch norm is folded into its weight
    and bias. After a residual add it is not: the add's other operand must be masked too."""
    return point.op == "call_module" and isinstance(network.get_submodule(point.target), batchnorm.NORMS) \
        and getattr(network.get_submodule(point.target), "affine", False)


def _fold(graph: fx.Graph, network: nn.Module, point: fx.Node, source: fx.Node, layer: str) -> None:
    with graph.inserting_before(point):
        m = graph.call_function(operator.getitem, (source, layer))
        bn = graph.get_attr(point.target)
        folded = graph.call_function(batchnorm.batch_norm_masked, (bn, point.args[0], m))
    folded.meta.update(point.meta)
    folded.meta["hat_mask"] = layer
    folded.stack_trace = point.stack_trace
    point.replace_all_uses_with(folded)
    graph.erase_node(point)


def adopt(model: nn.Module, plain_cls: type, gate: str = "sigmoid", batch_normalization=None,
          protect_shortcuts: bool = False, fold_batch_norm: bool = False, point: str = "earliest") -> None:
    """`specc.mask(model, "hat")`: the state HATMaskBackbone's constructor sets (which cannot run on
    a built model: it would re-run the model's own), then `install`."""
    model.gate = gate
    model.gate_fn = nn.Sigmoid()
    model.task_embedding_t = nn.ModuleDict()
    model.masks = {}
    HATMaskBackbone.sanity_check(model)
    install(model, plain_cls, batch_normalization, protect_shortcuts=protect_shortcuts,
            fold_batch_norm=fold_batch_norm, cache=False, point=point)


def export_class(model: nn.Module, w) -> ExportedClass:
    """`specc export`'s part of a HAT class: its task embeddings (shared ones written as shared),
    HATMaskBackbone's forward, and, where a layer's inputs follow the graph, the segments and the
    measure that reads them. `w` writes literals (specc.emit.escape's `literal`, `string`, and `wrap`)."""
    init = [f"        super().__init__(output_dim={w.literal(model.output_dim)}, gate={w.literal(model.gate)})"]
    for layer, te in model.task_embedding_t.items():
        shared = next((k for k, v in model.task_embedding_t.items() if v is te), layer)
        init.append(f"        self.task_embedding_t[{w.string(layer)}] = " + (
            f"self.task_embedding_t[{w.string(shared)}]" if shared != layer else
            f"nn.Embedding(num_embeddings=1, embedding_dim={te.weight.shape[1]})"))
    head = ["    def forward(self, input, stage, s_max=None, batch_idx=None, num_batches=None, test_task_id=None):",
            "        mask = self.get_mask(stage=stage, s_max=s_max, batch_idx=batch_idx, num_batches=num_batches,",
            "                             test_task_id=test_task_id)"]
    tail = ["        feature, activations = self._masked_forward(input, mask, bn_task, stage, s_max, batch_idx,",
            "                                                    num_batches, test_task_id)",
            "        return feature, mask, activations"]
    inputs = {}  # layers whose inputs are not the previous layer's units one to one
    for name, segments in model._specc_facts.input_segments.items():
        if not model._measure_is_by_list(name, segments, model.get_layer_by_name(name)):
            inputs[name] = tuple(tuple(s) for s in segments)
    if not inputs:
        return ExportedClass(init, head, tail)
    table = ", ".join(f"{w.string(k)}: {w.literal([list(s) for s in v])}" for k, v in inputs.items())
    method = [
        "", "    def get_layer_measure_parameter_wise(self, neuron_wise_measure, layer_name, aggregation_mode):",
        "        # where a layer's inputs are not the previous layer's units one to one (a flatten, a grouped",
        "        # convolution, a concat), its inputs' units as the graph gives them",
        "        segments = self._MEASURE_INPUTS.get(layer_name)",
        "        if segments is None:",
        "            return super().get_layer_measure_parameter_wise(neuron_wise_measure, layer_name, aggregation_mode)",
        "        return _graph_measure(neuron_wise_measure, layer_name, self.get_layer_by_name(layer_name),",
        "                              [Segment(*s) for s in segments], aggregation_mode)"]
    return ExportedClass(
        init, head, tail, members=[*w.wrap("    ", f"_MEASURE_INPUTS = {{{table}}}"), ""], methods=method,
        sources=["class Segment(NamedTuple):\n    owner: str | None\n    size: int | None\n    repeat: int | None = 1"
                 "\n    start: int = 0",
                 inspect.getsource(_graph_measure).rstrip()])
