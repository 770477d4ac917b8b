"""A masked backbone's test stage for one task as a plain fx graph over its modules.

The graph is the plain network's traced forward (the one the masking schemes rewrite), with:
- HAT / AmnesiacHAT: a `unit_mask` node right after each weighted layer's mask point (the analysis's
  `facts.mask_points`, the same points the masked forward multiplies at), carrying the task's
  stored mask in `node.meta["unit_mask"]`;
- WSN: each weighted layer's parameters multiplied by the task's masks (`node.meta["weight"]`,
  `node.meta["bias"]`), as the test stage computes them (no bias mask or no bias: no bias);
- per-task batch norms (independent mode): the task's stored copy in `node.meta["module"]`.
The output is the feature alone (the activations the backbone records are not part of it).
"""
from __future__ import annotations

from torch import Tensor, fx, nn

from ...analysis import analyse
from .. import batchnorm
from ..fx_graph import analysis_graph, trace
from ..schemes import scheme_of


def unit_mask(x: Tensor, mask: Tensor) -> Tensor:
    """`x` with its units (dim 1) multiplied by `mask`: what the masked forward does at a mask point."""
    return x * mask.view((1, -1) + (1,) * (x.dim() - 2))


def stage_graph(backbone: nn.Module, task_id: int, wsn_masks=None):
    """`(graph, agraph)`: the test-stage graph of `backbone` for `task_id` (see the module's doc)
    and the analysis graph whose nodes' `where` are its traced nodes (roles for the pruning)."""
    plain = getattr(backbone, "_specc_plain", None)
    if plain is None:
        raise TypeError(f"{type(backbone).__name__} is not a masked backbone of specc (a HAT, AmnesiacHAT or "
                        "WSN class from `specc compile`, `specc.build` or `specc.mask`)")
    graph = trace(backbone, plain)
    agraph = analysis_graph(graph, backbone)
    scheme = scheme_of(backbone)  # by its base: specc's or CLArena's (`--base clarena`)
    if scheme is not None and scheme.unit_masks:
        if task_id not in backbone.masks:
            raise ValueError(f"task {task_id} has no stored mask (stored: {sorted(backbone.masks)}); call "
                             "store_mask() at the end of the task's training, or load a checkpoint that has it")
        options = backbone._specc_options
        facts = analyse(agraph, include_shortcuts=options.get("protect_shortcuts", False),
                        point=options.get("point", "earliest"))
        _insert_unit_masks(graph, agraph, facts, backbone.masks[task_id])
    elif scheme is not None and scheme.weight_masks:
        if wsn_masks is None:
            raise ValueError(f"a {scheme.title} backbone keeps no masks of its own: pass task {task_id}'s test masks, "
                             "`masks=(weight_mask, bias_mask)` as given to its test stage (a checkpoint: "
                             "specc.save_checkpoint(..., wsn_masks={task_id: (weight_mask, bias_mask)}))")
        facts = analyse(agraph, include_shortcuts=True, unit_masks=False)
        _fold_parameter_masks(backbone, agraph, facts, *wsn_masks)
    else:
        raise TypeError(f"{type(backbone).__name__} is not the backbone of a scheme with unit or parameter masks")
    if getattr(backbone, "_specc_independent", False) or getattr(backbone, "_specc_bn_groups", None):
        _task_batch_norms(backbone, graph, task_id)
    _feature_only(graph)
    graph.eliminate_dead_code(is_impure_node=lambda n: n.op in ("placeholder", "output"))
    graph.lint()
    return graph, agraph


def _insert_unit_masks(graph: fx.Graph, agraph, facts, masks: dict[str, Tensor]) -> None:
    for layer, point_id in facts.mask_points.items():
        if layer not in masks:
            raise ValueError(f"the stored mask has no entry for the weighted layer '{layer}'")
        point = agraph.nodes[point_id].where
        with graph.inserting_after(point):
            masked = graph.call_function(unit_mask, (point, masks[layer].detach().cpu()))
        point.replace_all_uses_with(masked, delete_user_cb=lambda user: user is not masked)  # noqa: B023 (called here)
        masked.meta["unit_mask"] = masks[layer].detach().cpu()
        masked.meta["unit_mask_of"] = layer


def _fold_parameter_masks(backbone: nn.Module, agraph, facts, weight_mask: dict, bias_mask: dict) -> None:
    for layer in facts.weighted_layer_names:
        node = agraph.nodes[facts.layer_nodes[layer]].where
        module = backbone.get_submodule(node.target)
        if layer not in weight_mask:
            raise ValueError(f"the WSN weight mask has no entry for the weighted layer '{layer}'")
        weight = module.weight.detach() * weight_mask[layer].detach().to(module.weight.device).view_as(module.weight)
        bm = bias_mask.get(layer)
        bias = None if module.bias is None or bm is None else module.bias.detach() * bm.detach().to(module.bias.device)
        node.meta["weight"], node.meta["bias"] = weight, bias


def _task_batch_norms(backbone: nn.Module, graph: fx.Graph, task_id: int) -> None:
    """Each batch norm's call reads the copy stored for `task_id` (the test stage's routing)."""
    key = batchnorm.task_key("test", task_id, None)
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(backbone.get_submodule(node.target), batchnorm.NORMS):
            continue
        g = batchnorm.group_of(backbone, tuple(node.target.split(".")))
        copies = backbone.get_submodule(".".join(g.owner + (g.attr + "s",)))
        if key not in copies:
            raise ValueError(f"task {task_id} has no stored batch norm '{'.'.join(g.owner + (g.attr,))}' "
                             f"(stored: {sorted(copies.keys())}); call store_bn() at the end of the task")
        module = copies[key]
        for part in g.sub:
            module = module[int(part)]
        node.meta["module"] = module


def _feature_only(graph: fx.Graph) -> None:
    output = next(n for n in graph.nodes if n.op == "output")
    value = output.args[0]
    feature = value[0] if isinstance(value, (tuple, list)) else value
    output.args = (feature,)


def node_module(backbone: nn.Module, node: fx.Node) -> nn.Module:
    """The module a call_module node of the test graph runs (a task's batch-norm copy, or its own)."""
    module = node.meta.get("module")
    return backbone.get_submodule(node.target) if module is None else module


