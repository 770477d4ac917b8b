"""Per-task inference networks: a trained masked backbone's test stage for one task as a plain,
smaller network (`task_network`), written out as source (`source.py`) or ONNX (`onnx.py`).

stage_graph.py makes the test stage a plain graph (the task's masks at the mask points, a WSN
task's masked weights, the task's batch norms); channels.py finds the channels each value needs;
prune.py rebuilds the graph on them; checkpoint.py keeps a backbone with its stored masks.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import fx, nn

from .channels import analyse_channels
from .fuse import fuse_batch_norms
from .prune import build
from .stage_graph import stage_graph

__all__ = ["task_network"]


def task_network(backbone: nn.Module, task_id: int, example_input: torch.Tensor, masks=None,
                 fuse: bool = True) -> fx.GraphModule:
    """The network of task `task_id`: a plain nn.Module (an fx.GraphModule in eval mode, its source
    in `.code`) whose `forward(input)` returns the feature of `backbone(input, "test",
    test_task_id=task_id)` (HAT, AmnesiacHAT; WSN: `backbone(input, "test", p, test_mask=masks,
    test_task_id=task_id)`), computing only the units the task keeps.

    The feature has the backbone's shape: the units the task's mask drops are zeros in it (the
    last layer computes only its kept units; they are put back in place). `example_input`: any
    input of the backbone (a batch of one will do); it sizes every value (flatten's spread of
    channels over features). `masks`: a WSN task's `(weight_mask, bias_mask)` (HAT backbones keep
    theirs: `store_mask()`). `fuse`: fold each batch norm into the projection before it (fuse.py;
    rounding differs, within 1e-5 relative). The backbone is left as it was; the network shares no
    tensor with it.
    """
    from .. import tokens

    if any(isinstance(m, (tokens.PatchEmbed, tokens.SelfAttention)) for m in backbone.modules()):
        # its units cross attention (qkv -> heads -> proj) and its LayerNorms, class token and
        # position embedding are per task: neither is written here
        raise NotImplementedError(f"task_network does not take vision transformers yet ({type(backbone).__name__}); "
                                  "use the backbone's test stage: backbone(x, 'test', test_task_id=...)")
    graph, agraph = stage_graph(backbone, task_id, masks)
    probe = fx.GraphModule(backbone, graph)
    # The shapes only: the live batch norms stand in for the task's copies (same sizes).
    was_training = backbone.training
    try:
        backbone.eval()
        with torch.no_grad():
            # two rows at least: a batch norm on batch statistics refuses a batch of one
            _Shapes(probe).run(example_input if len(example_input) > 1 else example_input.repeat(
                (2,) + (1,) * (example_input.dim() - 1)))
    finally:
        backbone.train(was_training)
    analyse_channels(backbone, graph, agraph)
    network = build(backbone, graph, class_name=f"{type(backbone).__name__}Task{int(task_id)}")
    return fuse_batch_norms(network) if fuse else network


class _Shapes(fx.Interpreter):
    """Runs the graph once, leaving each tensor value's shape in `node.meta["tensor_meta"]` (as
    torch.fx's ShapeProp, which also prints a traceback of its own on an error)."""

    def run_node(self, node):
        result = super().run_node(node)
        if isinstance(result, torch.Tensor):
            node.meta["tensor_meta"] = SimpleNamespace(shape=tuple(result.shape))
        return result
