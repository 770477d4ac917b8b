"""AmnesiacHAT: HAT plus backup backbones, trained alongside for later unlearning.

A backup backbone is a plain network of the same architecture (`original_backbone_class`, built
from `backup_backbone_kwargs` by `instantiate_backup_backbones`). In stage 'train_with_backup' the
forward also runs one backup path per backup task b, from the same input, along the main path,
except that:
- each weighted layer, with the batch norm that follows it, is the routed mix
  `m_b * backup(x_b) + (1 - m_b) * main(x_b)`, `m_b` being task b's stored mask of the layer;
- a shortcut projection is routed the same way with the mask of the layer owning its add (CLArena's
  ResNets also route an identity shortcut, `m_b * x + (1 - m_b) * x`: with binary masks that is
  the identity, to the bit, gradients included; tests/test_clarena_client.py compares);
- the current mask multiplies every layer's units at its mask point, as on the main path;
- every other module (activation, pooling, dropout) is the main network's own.
The backup ops of a layer are computed after the main path's ops of that layer, as CLArena's
AmnesiacHATMLP orders them (dropout draws random numbers in that order).

Two forwards compute that stage, with the same ops in the same order, except that the batched one
(specc's bases) calls a main convolution once for the main path and every backup path, on their
inputs stacked along the batch, where the layer's cost is in its weights
(amnesiac_batching.shared_layer); the sequential one calls it once per path, as CLArena does: it
runs with `--base clarena` (CLArena's arithmetic, bit for bit) and where `_specc_sequential_backups`
is set (the tests' reference).
"""
from __future__ import annotations

import inspect
import operator

from torch import Tensor, fx, nn

from ...core.layers import BY_CLASS
from .. import batchnorm, structure
from ..codegen import compile_forward
from ..compiling import eager, eager_frame
from ..denormals import scoped_flush
from ..distributed import check_backups_synchronised, check_not_sharded
from . import amnesiac_batching, hat
from .hat import BN_MODES, HATMasked, uses_batch_norm  # noqa: F401  (used by generated code)
from .hat_backbone import AmnesiacHATBackbone, stored_mask  # noqa: F401  (the scheme's base)

__all__ = ["AmnesiacHATMasked", "install", "uses_batch_norm", "BN_MODES"]


class AmnesiacHATMasked(HATMasked):
    """HATMasked plus the backup paths of stage 'train_with_backup'."""

    _specc_block_masks = False  # CLArena's AmnesiacHAT ResNets mask block layers with the network's masks
    _specc_sequential_backups = False  # True: the sequential forward always (a reference for tests)
    backup_backbone_kwargs: dict  # set by `install` (the plain class's arguments, or CLArena's)

    @scoped_flush  # as HATMasked.forward
    @eager_frame
    def forward(self, input: Tensor, stage: str, s_max: float | None = None, batch_idx: int | None = None,
                num_batches: int | None = None, test_task_id: int | None = None):
        if stage != "train_with_backup":
            return super().forward(input, stage, s_max, batch_idx, num_batches, test_task_id)
        if getattr(self, "_specc_backup_forward", None) is None:
            raise ValueError("stage 'train_with_backup' needs backup backbones: call "
                             "instantiate_backup_backbones() first")
        own, _, scale, mask, backup_masks, paths = backup_forward_inputs(self, s_max, batch_idx, num_batches,
                                                                         test_task_id)
        if own:
            feature, backup_features, mask, activations = run_with_backup(self, paths, input, scale, backup_masks)
        else:  # CLArena's base (or an overridden get_mask): its masks
            feature, backup_features, activations = paths(
                self, input, mask, None, "train", s_max, batch_idx, num_batches, test_task_id, backup_masks)
        return feature, by_task_id(self, backup_features), mask, activations

    def instantiate_backup_backbones(self, backup_task_ids: list[int]) -> None:
        if hat.specc_base(self):
            check_not_sharded(self)
            super().instantiate_backup_backbones(backup_task_ids)
        else:
            # CLArena's base builds `original_backbone_class(**backup_backbone_kwargs)`; with that base
            # the kwargs are CLArena's (the HAT mode), which the plain class's bool parameter refuses.
            kept = self.backup_backbone_kwargs
            self.backup_backbone_kwargs = plain_arguments(kept)
            try:
                super().instantiate_backup_backbones(backup_task_ids)
            finally:
                self.backup_backbone_kwargs = kept
        self._specc_backup_ids = [f"{t}" for t in backup_task_ids]
        _compile_backups(self)

    def _specc_rewrite(self) -> None:
        super()._specc_rewrite()
        if getattr(self, "_specc_backup_ids", None):
            _compile_backups(self)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_specc_backup_sequential", None)  # a compiled function, made again on load
        return state


@eager
def backup_forward_inputs(network: nn.Module, s_max, batch_idx, num_batches, test_task_id):
    """hat.forward_inputs for stage 'train_with_backup' (masks as in 'train'), plus the stored masks of
    the backup tasks keyed as the backup paths are and the forward that runs the paths (sequential
    or batched, see the module's docstring), after checking that a data-parallel wrapper knows
    the backups."""
    if hat.specc_base(network):
        check_backups_synchronised(network)
    prepared = hat.forward_inputs(network, "train", s_max, batch_idx, num_batches, test_task_id)
    backup_masks = {f"{t}": stored_mask(network, t, "training its backup") for t in network.backup_task_ids}
    paths = network._specc_backup_sequential[0] if network._specc_sequential_backups \
        else network._specc_backup_forward
    return prepared + (backup_masks, paths)


@eager
def by_task_id(network: nn.Module, backup_features: dict) -> dict:
    return {t: backup_features[f"{t}"] for t in network.backup_task_ids}


def run_with_backup(network: nn.Module, paths, input: Tensor, scale: Tensor, backup_masks: dict):
    """Stage 'train_with_backup' with the masks made from the gate scale `scale` (hat.gate_scale),
    the backup paths run by the forward `paths`: the frame torch.compile captures
    (AmnesiacHATMasked.forward runs eagerly)."""
    mask = hat.masks_from_scale(network, scale)
    feature, backup_features, activations = paths(
        network, input, mask, None, "train", None, None, None, None, backup_masks)
    return feature, backup_features, mask, activations


def install(network: nn.Module, plain_cls: type, batch_normalization=None, protect_shortcuts: bool = False,
            fold_batch_norm: bool = False, point: str = "earliest") -> None:
    hat.install(network, plain_cls, batch_normalization, protect_shortcuts, fold_batch_norm, point=point)
    network._specc_backup_forward = None
    if not network.disable_unlearning:
        network.backup_backbone_kwargs = backup_arguments(network, plain_cls, batch_normalization)


def backup_arguments(network: nn.Module, plain_cls: type, batch_normalization) -> dict:
    """The backups' constructor arguments: the plain constructor's, as this network was built with
    them, less `disable_unlearning` (a pipeline's flag) and, with `--base clarena`, the keywords it
    ignores. `batch_normalization`: with specc's base the plain class's bool; with CLArena's, as the
    masked class was given it (what CLArena's AmnesiacHATMLP keeps: None, False, 'shared', ...)."""
    params = list(inspect.signature(plain_cls.__init__).parameters.values())[1:]
    kwargs = {p.name: getattr(network, p.name) for p in params
              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "disable_unlearning"}
    if "batch_normalization" in kwargs:
        kwargs["batch_normalization"] = (uses_batch_norm(batch_normalization) if hat.specc_base(network)
                                         else batch_normalization)
    return kwargs


def plain_arguments(backup_kwargs: dict) -> dict:
    """`backup_arguments` as the plain class takes them (batch_normalization a bool)."""
    bn = backup_kwargs.get("batch_normalization")
    if "batch_normalization" not in backup_kwargs or isinstance(bn, bool):
        return backup_kwargs
    return {**backup_kwargs, "batch_normalization": uses_batch_norm(bn)}


def _compile_backups(network: nn.Module) -> None:
    """The forwards of stage 'train_with_backup' (always a training stage: batch norms are the live
    ones, so no per-task routing; no folding, so that each batch norm can be routed): the batched
    one (specc's bases; the sequential one with CLArena's) as `_specc_backup_forward` and
    `_specc_backup_source`, and the sequential one as `_specc_backup_sequential`."""
    batched = hat.specc_base(network)
    key = None if network._specc_key is None else \
        network._specc_key + (tuple(network._specc_backup_ids), batched)
    known = structure.recall(key)
    if known is None:
        sequential = _backup_forward(network, batched=False)
        known = (_backup_forward(network, batched=True) if batched else sequential, sequential)
        structure.remember(key, known)
    (network._specc_backup_forward, network._specc_backup_source), network._specc_backup_sequential = known


def _backup_forward(network: nn.Module, batched: bool) -> tuple:
    """(forward, source) of stage 'train_with_backup'; `batched`: main convolutions shared by
    the paths (amnesiac_batching)."""
    graph, agraph, facts = hat._analyse(network)
    ph = hat.mask_graph(network, graph, agraph, facts, block_masks=False, route=False, fold=False)
    with graph.inserting_after(ph["test_task_id"]):
        backup_masks = graph.placeholder("backup_masks")
    output = next(n for n in graph.nodes if n.op == "output")
    feature, activations = output.args[0]
    main_calls: dict[fx.Node, list[fx.Node]] = {}
    features = _backup_paths(network, graph, agraph, facts, backup_masks, network._specc_backup_ids, main_calls)
    if batched:
        _share_main_layers(network, graph, main_calls)
    output.args = ((feature, features, activations),)
    graph.lint()
    return compile_forward(graph, f"{type(network).__name__}.train_with_backup")


def _backup_paths(network, graph: fx.Graph, agraph, facts, backup_masks: fx.Node, ids: list[str],
                  main_calls: dict) -> dict:
    """Insert the backup paths; returns {task id string: backup feature node}. `main_calls` gets,
    for each main layer node the paths route, the backup paths' calls of that main layer."""
    inp = agraph.nodes[0].where
    output = next(n for n in graph.nodes if n.op == "output")
    feature = output.args[0][0]
    # Nodes computed from the input, in order (the HAT masks' multiplications included).
    data: list[fx.Node] = []
    depends = {inp}
    for node in graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        if any(a in depends for a in node.all_input_nodes):
            depends.add(node)
            data.append(node)
    layers = {agraph.nodes[i].where: name for name, i in facts.layer_nodes.items()}
    shortcut_owner = {n.where: n.meta["shortcut_of"] for n in agraph.nodes
                      if "shortcut_of" in n.meta and n.where not in layers}
    # Segments: the ops from one weighted layer's call up to the next one's; a segment's backup
    # ops go right before the next segment starts.
    segment_of = _segments(data, layers)
    values = {b: {inp: inp} for b in ids}
    consumed: set[fx.Node] = set()
    for seg in sorted(set(segment_of.values())):
        nodes = [n for n in data if segment_of[n] == seg]
        anchor = _next_anchor(data, layers, nodes[-1], output)
        for b in ids:
            masks_b = None
            val = values[b]
            for node in nodes:
                if node in consumed:
                    continue
                with graph.inserting_before(anchor):
                    if masks_b is None:
                        masks_b = graph.call_function(operator.getitem, (backup_masks, b))
                    layer = layers.get(node) or shortcut_owner.get(node)
                    if node.op == "call_module" and layer is not None:
                        run = [node]
                        bn = _following_batch_norm(network, node)
                        if bn is not None:
                            run.append(bn)
                            consumed.add(bn)
                        view = BY_CLASS[type(network.get_submodule(node.target)).__name__].hat_view
                        v = _routed(graph, b, run, val[node.args[0]], masks_b, layer, view)
                        main_calls.setdefault(node, []).append(v.meta["main_call"])
                        val[node] = v
                        if bn is not None:
                            val[bn] = v
                        continue
                    val[node] = graph.node_copy(node, lambda a: val.get(a, a))  # noqa: B023 (called here)
    return {b: values[b][feature] for b in ids}


def _segments(data: list[fx.Node], layers: dict) -> dict:
    segment_of, k = {}, -1
    for node in data:
        if node in layers:
            k += 1
        segment_of[node] = k
    return segment_of


def _next_anchor(data: list[fx.Node], layers: dict, last: fx.Node, output: fx.Node) -> fx.Node:
    after = data[data.index(last) + 1:]
    return next((n for n in after if n in layers), output)


def _following_batch_norm(network: nn.Module, node: fx.Node) -> fx.Node | None:
    users = list(node.users)
    if len(users) == 1 and users[0].op == "call_module" and \
            isinstance(network.get_submodule(users[0].target), batchnorm.NORMS):
        return users[0]
    return None


def _routed(graph: fx.Graph, b: str, run: list[fx.Node], x: fx.Node, masks_b: fx.Node, layer: str,
            view: tuple | None) -> fx.Node:
    """`m_b * backup(x) + (1 - m_b) * main(x)` over the modules of `run` (a layer and its batch
    norm), in CLArena's order: main layer, backup layer, main batch norm, backup batch norm."""
    main, backup = x, x
    for node in run:
        main = graph.call_module(node.target, (main,))
        if node is run[0]:
            first = main
        backup = graph.call_module(f"backup_backbones.{b}.{node.target}", (backup,))
    m = graph.call_function(operator.getitem, (masks_b, layer))
    if view is not None:  # the layer's catalogue entry's hat_view
        m = graph.call_method("view", (m,) + tuple(view))
    keep = graph.call_function(operator.mul, (m, backup))
    rest = graph.call_function(operator.mul, (graph.call_function(operator.sub, (1, m)), main))
    mixed = graph.call_function(operator.add, (keep, rest))
    mixed.meta["main_call"] = first  # the main layer's call on this path (see _share_main_layers)
    return mixed


def _share_main_layers(network: nn.Module, graph: fx.Graph, main_calls: dict) -> None:
    """Replace each main convolution's call on the main path, and its calls on the backup paths, by
    one amnesiac_batching.shared_layer at the main path's call, where every path's input is
    computed before it (always so in specc's ResNets: a segment's backup ops come right before the
    next weighted layer's call)."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    for node, calls in main_calls.items():
        if not amnesiac_batching.stackable(network.get_submodule(node.target)):
            continue
        inputs = [node.args[0]] + [c.args[0] for c in calls]
        if any(order[x] > order[node] for x in inputs):
            continue
        # Paths that share their input (the network's input, at the first layer) share the call.
        distinct = list(dict.fromkeys(inputs))
        with graph.inserting_before(node):
            module = graph.get_attr(node.target)
            shared = graph.call_function(amnesiac_batching.shared_layer, (module, distinct))
            outputs = [graph.call_function(operator.getitem, (shared, i)) for i in range(len(distinct))]
        for n in (module, shared, *outputs):
            n.meta.update(node.meta)
        for call, x in zip([node] + calls, inputs):
            call.replace_all_uses_with(outputs[distinct.index(x)])
            graph.erase_node(call)

