"""WSN: every weighted layer computed on its parameters multiplied by binary masks of the
top-scored fraction (the gate, specc.runtime.gates), the stored parameters untouched.

`install(network, PlainClass)` traces the plain forward, makes every linear/conv a weighted layer
(shortcut projections included: a parameter left out of the masks is a source of forgetting),
creates one score per parameter (`weight_score_t[name] = nn.Embedding(out, in / groups * kh * kw)`,
`bias_score_t[name] = nn.Embedding(1, out)`, as CLArena creates them, whether or not the layer has
a bias) and rewrites each weighted module call into its masked functional (WSN_FORMS: `linear`,
`conv1d`, `conv2d`) on masked parameters. A vision transformer is traced through its attention and
patch embedding modules, so their `qkv`, `proj` and patch convolution are weighted layers like any
other; `mask_layer_norms` scores every affine LayerNorm too (`layer_norm`; its weight score is
(1, features), like a bias's). The class token and position embedding are not scored."""
from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from ...analysis import AnalysisError, analyse, scored_layers
from ...core.layers import BY_CLASS
from ...schemes import BN_MODES, batch_norm_mode  # noqa: F401  (BN_MODES: re-exported)
from .. import batchnorm, distributed, structure
from ..codegen import compile_forward
from ..fx_graph import analysis_graph, trace
from ..gates import GATES_BY_RANKING
from . import ExportedClass
from .hat import (  # noqa: F401  (generated code calls wsn.uses_batch_norm)
    _Masked,
    record_activations,
    route_batch_norms,
    specc_base,
    uses_batch_norm,
)
from .wsn_backbone import WSNMaskBackbone  # noqa: F401  (the scheme's base)


class MaskedWeight(torch.autograd.Function):
    """`weight * mask` (the mask in the weight's shape) with the product's two gradients,
    `grad * mask` for the weight and `grad * weight` for the mask (which the gate passes straight
    through to the scores): the values `weight * mask` and autograd give, bit for bit. Where it is
    safe (a plain backward: not under torch.compile, no graph of the backward being built; an
    incoming gradient of the mask's layout, which the layer's backward made and nothing else
    holds), the weight's gradient is written over the incoming one after the mask's is taken:
    one tensor of the layer's size fewer to allocate and fill per step."""

    @staticmethod
    def forward(ctx, weight: Tensor, mask: Tensor) -> Tensor:
        ctx.save_for_backward(weight if ctx.needs_input_grad[1] else None,
                              mask if ctx.needs_input_grad[0] else None)
        return weight * mask

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        weight, mask = ctx.saved_tensors
        grad_mask = grad * weight if ctx.needs_input_grad[1] else None
        grad_weight = None
        if ctx.needs_input_grad[0]:
            in_place = (not torch.is_grad_enabled() and not torch.compiler.is_compiling()
                        and grad.shape == mask.shape and grad.dtype == mask.dtype and grad.is_contiguous()
                        and not grad._is_view() and grad._base is None)
            grad_weight = grad.mul_(mask) if in_place else grad * mask
        return grad_weight, grad_mask


def _masked(weight: Tensor, mask: Tensor) -> Tensor:
    return MaskedWeight.apply(weight, mask)


def _masked_bias(bias: Tensor | None, mask: Tensor | None) -> Tensor | None:
    # As CLArena's WSNMaskMLP: no bias mask (or no bias) means the layer runs without bias.
    if bias is None or mask is None:
        return None
    return bias * mask


def wsn_linear(x: Tensor, weight: Tensor, bias: Tensor | None, weight_mask: Tensor,
               bias_mask: Tensor | None) -> Tensor:
    return F.linear(x, _masked(weight, weight_mask), _masked_bias(bias, bias_mask))


def wsn_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, weight_mask: Tensor, bias_mask: Tensor | None,
               stride, padding, dilation, groups: int) -> Tensor:
    # The mask comes in its score's layout (out, in / groups * kh * kw): the weight's own memory order.
    return F.conv2d(x, _masked(weight, weight_mask.view_as(weight)), _masked_bias(bias, bias_mask), stride, padding,
                    dilation, groups)


def wsn_conv1d(x: Tensor, weight: Tensor, bias: Tensor | None, weight_mask: Tensor, bias_mask: Tensor | None,
               stride, padding, dilation, groups: int) -> Tensor:
    return F.conv1d(x, _masked(weight, weight_mask.view_as(weight)), _masked_bias(bias, bias_mask), stride, padding,
                    dilation, groups)


def wsn_layer_norm(x: Tensor, weight: Tensor, bias: Tensor | None, weight_mask: Tensor, bias_mask: Tensor | None,
                   normalized_shape, eps: float) -> Tensor:
    # `mask_layer_norms`: the affine parameters masked like a layer's; the normalisation is the same.
    return F.layer_norm(x, normalized_shape, weight * weight_mask.view_as(weight), _masked_bias(bias, bias_mask), eps)


# The masked functional of each weighted layer kind (the catalogue entry's `wsn_form`, specc/core/
# layers.py) and the module attributes it takes after (x, weight, bias, weight_mask, bias_mask).
_CONV = ("stride", "padding", "dilation", "groups")
WSN_FORMS = {"linear": (wsn_linear, ()), "conv2d": (wsn_conv2d, _CONV), "conv1d": (wsn_conv1d, _CONV),
             "layer_norm": (wsn_layer_norm, ("normalized_shape", "eps"))}


class WSNMasked(_Masked):
    """WSN for a traced network. `test_task_id` (beyond CLArena's signature, optional) picks the
    per-task batch-norm copy in the test stage when `batch_normalization == "independent"`;
    without it, the current task's."""

    def forward(self, input: Tensor, stage: str, mask_percentage: float,
                test_mask: tuple[dict[str, Tensor], dict[str, Tensor]] | None = None,
                test_task_id: int | None = None):
        weight_mask, bias_mask = self.get_mask(stage, mask_percentage=mask_percentage, test_mask=test_mask)
        bn_task = batchnorm.task_key(stage, test_task_id, getattr(self, "task_id", None)) \
            if self._specc_bn_groups else None
        feature, activations = self._specc_forward(self, input, weight_mask, bias_mask, bn_task)
        return feature, weight_mask, bias_mask, activations

    def get_mask(self, stage: str, mask_percentage: float,
                 test_mask: tuple[dict[str, Tensor], dict[str, Tensor]] | None = None):
        """As WSNMaskBackbone's, with the weight mask of a layer norm (scored as (1, features), as
        a bias is) in its weight's shape (features,): CLArena's WSN multiplies the weight's gradient
        by the stored masks in place."""
        weight_mask, bias_mask = super().get_mask(stage, mask_percentage=mask_percentage, test_mask=test_mask)
        if stage in ("train", "validation"):
            for name in getattr(self, "_specc_vector_weights", ()):
                weight_mask[name] = weight_mask[name].view(-1)
        return weight_mask, bias_mask

    def setup_task_id(self, task_id: int) -> None:
        super().setup_task_id(task_id)
        batchnorm.copy_for_task(self, self._specc_bn_groups, task_id, freeze=specc_base(self))

    def store_bn(self) -> None:
        """Store a copy of the live batch norms under the current task (independent mode only);
        under torch.distributed (specc's bases), after averaging the live running statistics across
        ranks (as HATMasked.store_bn)."""
        if specc_base(self):
            distributed.average_batch_norm_statistics_of(batchnorm.live_norms(self, self._specc_bn_groups))
        batchnorm.store(self, self._specc_bn_groups, self.task_id, freeze=specc_base(self))

    def initialize_independent_bn(self) -> None:
        """Reset the live batch norms to their state at construction (independent mode only)."""
        batchnorm.reset(self, self._specc_bn_groups)

    def _specc_rewrite(self) -> None:
        _rewrite(self)


def install(network: nn.Module, plain_cls: type, batch_normalization=None, cache: bool = True,
            rank_by: str = "score", mask_layer_norms: bool = False) -> None:
    batch_normalization = batch_norm_mode(batch_normalization)
    network._specc_plain = plain_cls
    network._specc_layer_norms = mask_layer_norms
    network.gate_fn = GATES_BY_RANKING[rank_by]
    network._specc_key = structure.key(network, plain_cls, batch_normalization, mask_layer_norms) if cache else None
    network._specc_bn_groups = batchnorm.groups(network) if batch_normalization == "independent" else []
    _rewrite(network)  # traced, analysed and compiled once per structure
    facts = network._specc_facts
    network.weighted_layer_names = list(facts.weighted_layer_names)
    network._specc_vector_weights = []
    for name in facts.weighted_layer_names:
        layer = network.get_submodule(name.replace("/", "."))
        weight = layer.weight
        if weight.dim() == 1:  # a layer norm's: scored as (1, features), like a bias
            network._specc_vector_weights.append(name)
            network.weight_score_t[name] = nn.Embedding(num_embeddings=1, embedding_dim=weight.size(0))
        else:
            network.weight_score_t[name] = nn.Embedding(num_embeddings=weight.size(0),
                                                        embedding_dim=weight[0].numel())
        network.bias_score_t[name] = nn.Embedding(num_embeddings=1, embedding_dim=weight.size(0))
        if layer.bias is None and specc_base(network):
            # The score of a bias that does not exist never gets a gradient: frozen, so that
            # DistributedDataParallel does not wait for it (CLArena's bases keep it trainable).
            network.bias_score_t[name].weight.requires_grad_(False)
    if batch_normalization is not None:
        network.batch_normalization = batch_normalization
    batchnorm.create_copies(network, network._specc_bn_groups)


# The functionals that take a weight: one fed a parameter directly (not through its module) is refused.
_WEIGHTED_FUNCTIONS = {F.linear: ("linear", "nn.Linear"), F.conv1d: ("conv1d", "nn.Conv1d"),
                       F.conv2d: ("conv2d", "nn.Conv2d"), F.layer_norm: ("layer_norm", "nn.LayerNorm")}


def _check_weights_in_modules(graph: fx.Graph, agraph) -> None:
    """WSN scores the weights of modules (nn.Linear, nn.Conv1d/2d, nn.LayerNorm): a parameter passed to
    the functional itself would train unmasked, unseen (a source of forgetting): refused, at its line."""
    for fxn in graph.nodes:
        if fxn.op != "call_function" or fxn.target not in _WEIGHTED_FUNCTIONS:
            continue
        weight = fxn.args[1] if len(fxn.args) > 1 else fxn.kwargs.get("weight")
        if fxn.target is F.layer_norm:
            weight = fxn.args[2] if len(fxn.args) > 2 else fxn.kwargs.get("weight")
        if isinstance(weight, fx.Node) and weight.op == "get_attr":
            node = next(n for n in agraph.nodes if n.where is fxn)
            function, module = _WEIGHTED_FUNCTIONS[fxn.target]
            error = AnalysisError(f"the parameter '{weight.target}' enters torch.nn.functional.{function} "
                                  "directly, where WSN cannot score it", node)
            error.hint = (f"WSN scores the parameters of modules: make it an {module} submodule and call it "
                          "(its state_dict key gains a '.weight')")
            raise error


def _analyse(network: nn.Module):
    graph = trace(network, network._specc_plain)
    agraph = analysis_graph(graph, network)
    _check_weights_in_modules(graph, agraph)
    facts = analyse(agraph, include_shortcuts=True, unit_masks=False, units_optional=True)  # parameter masks only
    facts = scored_layers(agraph, facts, network._specc_layer_norms)
    network._specc_facts = facts
    return graph, agraph, facts


def _rewrite(network: nn.Module) -> None:
    """The masked forward (made once per structure)."""
    known = structure.recall(network._specc_key)
    if known is not None and known[1] is not None:
        network._specc_facts, network._specc_forward, network._specc_forward_source = known
        return
    graph, agraph, facts = _analyse(network)
    _compile(network, graph, agraph, facts)
    structure.remember(network._specc_key, (facts, network._specc_forward, network._specc_forward_source))


def _compile(network: nn.Module, graph: fx.Graph, agraph, facts) -> None:
    (inp,) = [n for n in graph.nodes if n.op == "placeholder"]
    with graph.inserting_after(inp):
        weight_mask = graph.placeholder("weight_mask")
    with graph.inserting_after(weight_mask):
        bias_mask = graph.placeholder("bias_mask")
    with graph.inserting_after(bias_mask):
        bn_task = graph.placeholder("bn_task")
    rewritten = {}
    for name in facts.weighted_layer_names:
        node = agraph.nodes[facts.layer_nodes[name]].where
        layer = network.get_submodule(node.target)
        with graph.inserting_before(node):
            w = graph.get_attr(f"{node.target}.weight")
            b = graph.get_attr(f"{node.target}.bias") if layer.bias is not None else None
            wm = graph.call_function(operator.getitem, (weight_mask, name))
            bm = graph.call_function(operator.getitem, (bias_mask, name))
            kind = BY_CLASS[type(layer).__name__].wsn_form
            assert kind is not None, f"the weighted layer kind of {type(layer).__name__} has no wsn_form"
            form, attributes = WSN_FORMS[kind]
            new = graph.call_function(form, (node.args[0], w, b, wm, bm) + tuple(getattr(layer, a) for a in attributes))
        new.meta.update(node.meta)
        new.stack_trace = node.stack_trace
        node.replace_all_uses_with(new)
        graph.erase_node(node)
        rewritten[name] = new
    if network._specc_bn_groups:
        route_batch_norms(network, graph, bn_task)
    if getattr(network, "_specc_derive_records", False):
        record_activations(graph, agraph, facts, rewritten)
    graph.lint()
    network._specc_forward, network._specc_forward_source = compile_forward(graph, type(network).__name__)


def adopt(model: nn.Module, plain_cls: type, batch_normalization=None, rank_by: str = "score",
          mask_layer_norms: bool = False) -> None:
    """`specc.mask(model, "wsn")`: the state WSNMaskBackbone's constructor sets (which cannot run on
    a built model: it would re-run the model's own), then `install`."""
    model.weight_score_t = nn.ModuleDict()
    model.bias_score_t = nn.ModuleDict()
    install(model, plain_cls, None if batch_normalization == "off" else batch_normalization, cache=False,
            rank_by=rank_by, mask_layer_norms=mask_layer_norms)


def export_class(model: nn.Module, w) -> ExportedClass:
    """`specc export`'s part of a WSN class: its score embeddings, its gate when not the default
    (`rank_by`), WSNMaskBackbone's forward. `w` writes literals (specc.emit.escape's `literal`,
    `string`, `identifier`)."""
    init = [f"        super().__init__(output_dim={w.literal(model.output_dim)})"]
    for layer, score in model.weight_score_t.items():
        init.append(f"        self.weight_score_t[{w.string(layer)}] = nn.Embedding("
                    f"num_embeddings={score.weight.shape[0]}, embedding_dim={score.weight.shape[1]})")
        init.append(f"        self.bias_score_t[{w.string(layer)}] = nn.Embedding("
                    f"num_embeddings=1, embedding_dim={model.bias_score_t[layer].weight.shape[1]})")
    init.append(f"        self.weighted_layer_names = {w.literal(list(model.weighted_layer_names))}")
    if model.gate_fn.__name__ != GATES_BY_RANKING["score"].__name__:  # `rank_by`: the gate copied in by name
        init.append(f"        self.gate_fn = {w.identifier(model.gate_fn.__name__)}")
    return ExportedClass(
        init,
        ["    def forward(self, input, stage, mask_percentage, test_mask=None, test_task_id=None):",
         "        weight_mask, bias_mask = self.get_mask(stage, mask_percentage=mask_percentage, test_mask=test_mask)"],
        ["        feature, activations = self._masked_forward(input, weight_mask, bias_mask, bn_task)",
         "        return feature, weight_mask, bias_mask, activations"])
