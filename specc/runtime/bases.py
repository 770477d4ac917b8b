r"""Base classes of the generated backbones, with the API of CLArena's `clarena.backbones.base`.

Generated and runtime backbones inherit these, so method names, signatures, defaults, attribute
names, error messages and return values follow CLArena's base classes. Departures are marked
"Deviation" in the comments below.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from specc.runtime import positions
from specc.runtime.gates import PercentileLayerParameterMaskingByScore

__all__ = [
    "Backbone",
    "CLBackbone",
    "HATMaskBackbone",
    "AmnesiacHATBackbone",
    "WSNMaskBackbone",
]

pylogger = logging.getLogger(__name__)


class Backbone(nn.Module):
    r"""Base of all backbones: an output dimension and the ordered list of weighted layers."""

    def __init_subclass__(cls, **kwargs) -> None:
        # A generated constructor's errors name the spec line they come from (positions.positioned).
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__ and not hasattr(cls.__init__, "__wrapped__"):
            cls.__init__ = positions.positioned(cls.__dict__["__init__"])

    def __init__(self, output_dim: int | None, **kwargs) -> None:
        r"""`output_dim` is the feature size handed to the output heads (`None` for a block
        without one); `kwargs` are passed along for multiple inheritance."""
        super().__init__()

        self.output_dim: int = output_dim
        # Filled by subclasses, input to output; names use '/' for '.' so they can key ModuleDicts.
        self.weighted_layer_names: list[str] = []

    # A generated constructor registers each module name once: a computed name (`fc{i}`) that a
    # second loop, a repeated list value or a plain name also writes is the spec's "module 'X' is
    # declared twice", which `check` refuses for those arguments. torch's add_module and
    # __setattr__ would replace the first module silently; refused here, only for a generated
    # statement (a caller line carrying its spec position), so that the runtime's own passes
    # (the masking schemes' per-task copies) replace modules as before.
    def add_module(self, name: str, module: nn.Module | None) -> None:
        if name in self._modules:
            _refuse_generated_redeclaration(name)
        super().add_module(name, module)

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, nn.Module) and name in self.__dict__.get("_modules", ()):
            _refuse_generated_redeclaration(name)
        super().__setattr__(name, value)

    def get_layer_by_name(self, layer_name: str | None) -> nn.Module | None:
        r"""The submodule called `layer_name` ('/'-separated path), or `None` for `None` (and for a
        name that matches no submodule)."""
        if layer_name is None:
            return None

        dotted = layer_name.replace("/", ".")
        for name, layer in self.named_modules():
            if name == dotted:
                return layer
        return None

    def preceding_layer_name(self, layer_name: str | None) -> str | None:
        r"""The weighted layer listed before `layer_name`; `None` for the first layer or a `None`
        name."""
        if layer_name is None:
            return None

        if layer_name not in self.weighted_layer_names:
            raise ValueError(
                f"The layer name {layer_name} doesn't exist in weighted layer names."
            )

        idx = self.weighted_layer_names.index(layer_name)
        if idx == 0:
            return None
        return self.weighted_layer_names[idx - 1]

    def next_layer_name(self, layer_name: str) -> str:
        r"""The weighted layer listed after `layer_name`; `None` for the last layer."""
        if layer_name not in self.weighted_layer_names:
            raise ValueError(f"The layer name {layer_name} doesn't exist.")

        idx = self.weighted_layer_names.index(layer_name)
        if idx == len(self.weighted_layer_names) - 1:
            return None
        return self.weighted_layer_names[idx + 1]

    def forward(self, input: Tensor, stage: str) -> tuple[Tensor, dict[str, Tensor]]:
        r"""Returns `(output_feature, activations)`, activations keyed by weighted layer name.
        Subclasses implement it."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement forward()."
        )


class CLBackbone(Backbone):
    r"""Base of continual-learning backbones: tracks the current and the processed task IDs."""

    def __init__(self, output_dim: int | None, **kwargs) -> None:
        r"""See `Backbone`."""
        super().__init__(output_dim=output_dim, **kwargs)

        # Declared only: it exists once `setup_task_id` has run (task IDs start at 1).
        self.task_id: int
        self.processed_task_ids: list[int] = []

    def setup_task_id(self, task_id: int) -> None:
        r"""Make `task_id` the current task; call before `forward()`."""
        self.task_id = task_id
        self.processed_task_ids.append(task_id)

    def forward(
        self,
        input: Tensor,
        stage: str,
        task_id: int | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        r"""Returns `(output_feature, activations)` for data of task `task_id` (a placeholder where
        task IDs are unknown, e.g. class-incremental testing). Subclasses implement it."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement forward()."
        )


def _refuse_generated_redeclaration(name: str) -> None:
    """Refuse a module name registered a second time by a generated statement (the caller of the
    caller of this function); the constructor's wrapper (positions.positioned) adds the spec line."""
    if positions.of_caller(depth=3, lookback=1) is not None:
        raise ValueError(f"module '{name}' is declared twice")


def _whole(t: Tensor) -> Tensor:
    r"""`t`, or the whole tensor that a sharded parameter (FSDP2's DTensor, outside its module's
    forward) stands for, gathered from the ranks."""
    full_tensor = getattr(t, "full_tensor", None)
    return t if full_tensor is None else full_tensor()


# Deviation: CLArena's messages name `batch_num` and `task_mask`, which are not the arguments' names
# (`num_batches`, `test_task_id`): each message keeps CLArena's sentence (code matching it still
# matches) and adds the call that these backbones (and CLArena's) take.
MISSING_TRAIN = (
    "The `s_max`, `batch_idx` and `batch_num` should be provided at training stage, instead of the default "
    "value `None`. Pass s_max=..., batch_idx=... (1 for the first batch of the epoch) and num_batches=... "
    "(the batches in the epoch)."
)
MISSING_VALIDATION = (
    "The `s_max` should be provided at validation stage, instead of the default value `None`. "
    "Pass s_max=... (the s_max of training)."
)
MISSING_TEST = (
    "The `task_mask` should be provided at testing stage, instead of the default value `None`. "
    "Pass test_task_id=T: the task whose mask `store_mask()` stored when its training ended."
)


class MaskNotStored(KeyError):
    r"""No mask is stored for the task asked for at test time (a KeyError, as CLArena's lookup
    raises, with a message that says what to do)."""

    def __str__(self) -> str:
        return str(self.args[0])


def stored_mask(network: nn.Module, task_id, use: str = "testing it") -> dict[str, Tensor]:
    r"""The mask `store_mask()` stored for `task_id` on `network` (a HAT backbone); `use` says what
    needs it, for the message."""
    try:
        return network.masks[task_id]
    except KeyError:
        stored = ", ".join(str(t) for t in network.masks) or "none yet"
        raise MaskNotStored(
            f"No mask is stored for task {task_id!r} (stored: {stored}). Call `store_mask()` when the "
            f"training of task {task_id!r} ends, before {use}."
        ) from None


def check_mask_arguments(stage: str, s_max, batch_idx, num_batches, test_task_id) -> None:
    r"""The argument checks of `HATMaskBackbone.get_mask` for `stage`."""
    if stage == "train" and (
        s_max is None or batch_idx is None or num_batches is None
    ):
        raise ValueError(MISSING_TRAIN)
    if stage == "validation" and (s_max is None):
        raise ValueError(MISSING_VALIDATION)
    if stage == "test" and (test_task_id is None):
        raise ValueError(MISSING_TEST)


def anneal_scalar(s_max: float, batch_idx: int, num_batches: int) -> float:
    r"""HAT's Eq. (3): the gate's scale at training batch `batch_idx` (1-based) of `num_batches`,
    from 1/s_max to s_max, in CLArena's operation order (so the float is bit-identical)."""
    return 1 / s_max + (s_max - 1 / s_max) * (batch_idx - 1) / (num_batches - 1)


class HATMaskBackbone(CLBackbone):
    r"""Backbone for HAT-style algorithms (HAT, AdaHAT, FG-AdaHAT): every weighted layer's units are
    gated by a mask derived from a learnable task embedding."""

    def __init__(self, output_dim: int | None, gate: str, **kwargs) -> None:
        r"""`gate` names the function from embeddings to masks; only 'sigmoid' exists."""
        super().__init__(output_dim=output_dim, **kwargs)

        self.gate: str = gate
        self.gate_fn: Callable
        if gate == "sigmoid":
            self.gate_fn = nn.Sigmoid()

        # One nn.Embedding(1, units) per weighted layer, for the current task. A ModuleDict (not a
        # dict) so the embeddings are registered parameters that follow .to() and show in state_dict.
        self.task_embedding_t: nn.ModuleDict = nn.ModuleDict()

        # Binary unit masks of finished tasks: {task_id: {layer_name: Tensor(units,)}}.
        self.masks: dict[int, dict[str, Tensor]] = {}

        # Called on this class explicitly so that a subclass's own sanity_check (which may rely on
        # attributes set later in its __init__) does not run here.
        HATMaskBackbone.sanity_check(self)

    def initialize_task_embedding(self, mode: str) -> None:
        r"""Re-initialise every layer's task embedding: 'N01', 'U-11', 'U01', 'U-10', or 'last'
        (keep the previous task's values). Other modes leave the embeddings untouched."""
        for te in self.task_embedding_t.values():
            if mode == "N01":
                nn.init.normal_(te.weight, 0, 1)
            elif mode == "U-11":
                nn.init.uniform_(te.weight, -1, 1)
            elif mode == "U01":
                nn.init.uniform_(te.weight, 0, 1)
            elif mode == "U-10":
                nn.init.uniform_(te.weight, -1, 0)
            elif mode == "last":
                pass

    def sanity_check(self) -> None:
        r"""Reject unknown gates."""
        if self.gate not in ["sigmoid"]:
            raise ValueError("The gate should be one of: 'sigmoid'.")

    def get_mask(
        self,
        stage: str,
        s_max: float | None = None,
        batch_idx: int | None = None,
        num_batches: int | None = None,
        test_task_id: int | None = None,
    ) -> dict[str, Tensor]:
        r"""The unit mask of each weighted layer for a forward pass in `stage`:

        - 'train': gate(embedding * s), s annealed from 1/s_max (batch 1) to s_max (last batch);
        - 'validation': gate(embedding * s_max);
        - 'test': the stored mask of `test_task_id`, moved to each layer's device;
        - 'unlearning_test': all ones.

        Any other stage gives an empty dict. Sharded embeddings (FSDP2 parameters outside their
        forward, DTensors) are gathered first: masks are always whole tensors.
        """
        check_mask_arguments(stage, s_max, batch_idx, num_batches, test_task_id)

        mask = {}
        if stage == "train":
            for layer_name in self.weighted_layer_names:
                # Computed per layer, where CLArena computes it (so num_batches == 1 divides by
                # zero exactly when CLArena's does).
                mask[layer_name] = self.gate_fn(
                    _whole(self.task_embedding_t[layer_name].weight) * anneal_scalar(s_max, batch_idx, num_batches)
                ).squeeze()
        elif stage == "validation":
            for layer_name in self.weighted_layer_names:
                mask[layer_name] = self.gate_fn(
                    _whole(self.task_embedding_t[layer_name].weight) * s_max
                ).squeeze()
        elif stage == "test":
            # As in CLArena, the stored dict itself is returned and updated in place, so the device
            # move happens once and is shared with every submodule holding the same dict.
            mask = stored_mask(self, test_task_id)
            for layer_name, layer_mask in mask.items():
                target_device = self.get_layer_by_name(layer_name).weight.device
                if layer_mask.device != target_device:
                    mask[layer_name] = layer_mask.to(target_device)
        elif stage == "unlearning_test":
            for layer_name in self.weighted_layer_names:
                layer = self.get_layer_by_name(layer_name)
                mask[layer_name] = torch.ones(
                    layer.weight.size(0), device=layer.weight.device
                )

        return mask

    def te_to_binary_mask(self) -> dict[str, Tensor]:
        r"""The current task's binary unit masks: 1 where the embedding is positive (the limit of
        the sigmoid gate as the scale grows)."""
        return {
            layer_name: (_whole(self.task_embedding_t[layer_name].weight) > 0)
            .float()
            .squeeze()
            .detach()
            for layer_name in self.weighted_layer_names
        }

    def combine_masks(
        self, masks: list[dict[str, Tensor]], mode: str
    ) -> dict[str, Tensor]:
        r"""Layer-wise elementwise min ('intersection') or max ('union') of several masks, over the
        layers of the first mask."""
        combined_mask = {}
        for layer_name in masks[0].keys():
            stacked = torch.stack([mask[layer_name] for mask in masks], dim=0)
            if mode == "intersection":
                combined_mask[layer_name] = torch.min(stacked, dim=0).values
            elif mode == "union":
                combined_mask[layer_name] = torch.max(stacked, dim=0).values
            else:
                raise ValueError(
                    f"Unsupported mode: {mode}. Use 'intersection' or 'union'."
                )

        return combined_mask

    def store_mask(self) -> dict[str, Tensor]:
        r"""Binarise the current task's embeddings and record the result as task `self.task_id`'s
        mask in this module and every nested HATMaskBackbone; returns it."""
        mask_t = self.te_to_binary_mask()

        # Nested HAT blocks consult their own `masks` at test time, so they all receive the same
        # dict object (self.modules() includes self).
        for submodule in self.modules():
            if isinstance(submodule, HATMaskBackbone):
                submodule.masks[self.task_id] = mask_t

        return mask_t

    def _preceding_measure(
        self,
        neuron_wise_measure: dict[str, Tensor],
        preceding_layer_name: str,
        layer_name: str,
        weight_size: torch.Size,
    ) -> Tensor:
        r"""The preceding layer's unit measure laid out along the input axis (dim 1) of
        `layer_name`'s weight and expanded to `weight_size`.

        The default assumes input unit j of the layer is unit j of the preceding layer (CLArena's
        rule). Subclasses override it where that is not so, e.g. a linear layer after a flatten,
        where each preceding channel feeds several inputs."""
        preceding_measure = neuron_wise_measure[preceding_layer_name]
        broadcast_size = (1, -1) + tuple(1 for _ in range(len(weight_size) - 2))
        return preceding_measure.view(*broadcast_size).expand(weight_size)

    def _measure_preceding_layer(self, layer_name: str) -> str | None:
        r"""The layer whose units feed `layer_name`'s inputs, for parameter-wise measures. The
        default is the seed's: the previous entry of `weighted_layer_names`. Subclasses that know
        the data-flow graph override it (a shortcut conv's inputs come from the block's input)."""
        return self.preceding_layer_name(layer_name)

    def get_layer_measure_parameter_wise(
        self,
        neuron_wise_measure: dict[str, Tensor],
        layer_name: str,
        aggregation_mode: str,
    ) -> tuple[Tensor, Tensor]:
        r"""Spread unit-wise measures onto the parameters of `layer_name`.

        Weight entry (i, j, ...) gets Agg(measure of unit i of this layer, measure of unit j of the
        preceding layer), Agg being 'min', 'max' or 'mean'; for the first layer it is just the
        layer's own measure broadcast. The bias gets the layer's own measure.

        Returns `(weight_measure, bias_measure)` (CLArena annotates a single Tensor but returns this
        pair).
        """
        # Deviation: CLArena calls torch.min / torch.max / torch.mean on the two tensors. The first
        # two are the elementwise minimum / maximum; torch.mean(a, b) is not an elementwise mean (it
        # would read b as a dimension and fail), so 'mean' is the elementwise (a + b) / 2, which is
        # what the documentation describes.
        if aggregation_mode == "min":
            aggregation_func = torch.minimum
        elif aggregation_mode == "max":
            aggregation_func = torch.maximum
        elif aggregation_mode == "mean":
            aggregation_func = _elementwise_mean
        else:
            raise ValueError(
                f"The aggregation method {aggregation_mode} is not supported."
            )

        preceding_layer_name = self._measure_preceding_layer(layer_name)

        weight_size = self.get_layer_by_name(layer_name).weight.size()

        # Unit i of this layer is output channel i: dim 0 of the weight.
        layer_measure = neuron_wise_measure[layer_name]
        broadcast_size = (-1, 1) + tuple(1 for _ in range(len(weight_size) - 2))
        layer_measure_broadcasted = layer_measure.view(*broadcast_size).expand(
            weight_size
        )

        if preceding_layer_name:
            preceding_measure_broadcasted = self._preceding_measure(
                neuron_wise_measure, preceding_layer_name, layer_name, weight_size
            )
            weight_measure = aggregation_func(
                layer_measure_broadcasted, preceding_measure_broadcasted
            )
        else:
            # The first layer's inputs are data, which carry no measure.
            weight_measure = layer_measure_broadcasted

        bias_measure = layer_measure

        return weight_measure, bias_measure

    def forward(
        self,
        input: Tensor,
        stage: str,
        s_max: float | None = None,
        batch_idx: int | None = None,
        num_batches: int | None = None,
        test_task_id: int | None = None,
    ) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        r"""Returns `(output_feature, mask, activations)`, the units of each layer multiplied by
        `self.get_mask(...)`. Subclasses implement it."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement forward()."
        )


def _elementwise_mean(a: Tensor, b: Tensor) -> Tensor:
    return (a + b) / 2


class AmnesiacHATBackbone(HATMaskBackbone):
    r"""HAT backbone with backup backbones, trained in parallel, that take over the units of tasks
    that are later unlearned (AmnesiacHAT)."""

    # Set by subclasses: the plain (unmasked) backbone class the backups are built from.
    original_backbone_class: type[Backbone]

    def __init__(
        self,
        output_dim: int | None,
        gate: str,
        disable_unlearning: bool = False,
        **kwargs,
    ) -> None:
        r"""`disable_unlearning` turns the model into a plain HAT reference run."""
        super().__init__(output_dim=output_dim, gate=gate, **kwargs)

        self.disable_unlearning: bool = disable_unlearning

        if not disable_unlearning:
            # Declared only; `instantiate_backup_backbones` creates them. Keys of the ModuleDict
            # are task IDs as strings (ModuleDict keys must be strings).
            self.backup_backbones: nn.ModuleDict
            self.backup_task_ids: list[int]

        # {(backup task ID, task ID the backup was trained for): state_dict}.
        self.backup_state_dicts: dict[tuple[int, int], dict[str, Tensor]] = {}

    def instantiate_backup_backbones(
        self,
        backup_task_ids: list[int],
    ) -> None:
        r"""Build one fresh backup backbone per task in `backup_task_ids` for the current task,
        from `self.original_backbone_class(**self.backup_backbone_kwargs)` (both set by
        subclasses)."""
        self.backup_task_ids = backup_task_ids

        self.backup_backbones = nn.ModuleDict(
            {
                f"{task_id_to_backup}": self.original_backbone_class(
                    **self.backup_backbone_kwargs,
                )
                for task_id_to_backup in backup_task_ids
            }
        )

        pylogger.debug(
            "Backup backbones (backing up task IDs %s) for current task ID %d have been instantiated.",
            backup_task_ids,
            self.task_id,
        )


class WSNMaskBackbone(CLBackbone):
    r"""Backbone for WSN: learnable scores per parameter; each task uses the top-scored fraction of
    every layer's weights and biases."""

    def __init__(self, output_dim: int | None, **kwargs) -> None:
        r"""See `CLBackbone`."""
        super().__init__(output_dim=output_dim, **kwargs)

        self.gate_fn: torch.autograd.Function = PercentileLayerParameterMaskingByScore

        # nn.Embedding(out_features, in_features) per weighted layer: one score per weight entry.
        self.weight_score_t: nn.ModuleDict = nn.ModuleDict()

        # nn.Embedding(1, out_features) per weighted layer that has a bias. A layer without bias
        # may either be absent from this ModuleDict or map to None (a ModuleDict accepts None
        # values, which CLArena's subclasses rely on); both read as "no bias score".
        self.bias_score_t: nn.ModuleDict = nn.ModuleDict()

        WSNMaskBackbone.sanity_check(self)

    def sanity_check(self) -> None:
        r"""Nothing to check (kept for API symmetry)."""

    def _bias_score(self, layer_name: str) -> nn.Embedding | None:
        return self.bias_score_t[layer_name] if layer_name in self.bias_score_t else None

    def initialize_parameter_score(self, mode: str) -> None:
        r"""Re-initialise every layer's weight and bias scores: 'default' (WSN's: Kaiming uniform
        with a=sqrt(5) on weight scores, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) on bias scores),
        'N01' or 'U01'. Other modes leave the scores untouched."""
        # Deviation: CLArena nests its loop over all bias scores inside the loop over the layers,
        # so every bias score is re-drawn once per layer. The distribution is the same; the intent
        # is one draw per score, which is what happens here (layer by layer: weight, then bias).
        # The random stream therefore differs from CLArena's under the same seed.
        for layer_name, weight_score in self.weight_score_t.items():
            bias_score = self._bias_score(layer_name)
            if mode == "default":
                nn.init.kaiming_uniform_(weight_score.weight, a=math.sqrt(5))
                if bias_score is not None:
                    # nn.Linear's own bias rule, with fan_in taken from the weight score.
                    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight_score.weight)
                    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                    nn.init.uniform_(bias_score.weight, -bound, bound)
            elif mode == "N01":
                nn.init.normal_(weight_score.weight, 0, 1)
                if bias_score is not None:
                    nn.init.normal_(bias_score.weight, 0, 1)
            elif mode == "U01":
                nn.init.uniform_(weight_score.weight, 0, 1)
                if bias_score is not None:
                    nn.init.uniform_(bias_score.weight, 0, 1)

    def get_mask(
        self,
        stage: str,
        mask_percentage: float,
        test_mask: tuple[dict[str, Tensor], dict[str, Tensor]] | None = None,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor | None]]:
        r"""`(weight_mask, bias_mask)` for a forward pass in `stage`: in 'train' and 'validation'
        the top `mask_percentage` of each layer's scores through the gate (bias mask `None` for a
        layer without bias score); in 'test' the given `test_mask` pair. Any other stage gives two
        empty dicts."""
        weight_mask = {}
        bias_mask = {}
        if stage == "train" or stage == "validation":
            for layer_name in self.weighted_layer_names:
                weight_mask[layer_name] = self.gate_fn.apply(
                    self.weight_score_t[layer_name].weight, mask_percentage
                )
                bias_score = self._bias_score(layer_name)
                if bias_score is not None:
                    # The score is stored as (1, out_features); the bias is (out_features,).
                    bias_mask[layer_name] = self.gate_fn.apply(
                        _whole(bias_score.weight).squeeze(0), mask_percentage
                    )
                else:
                    bias_mask[layer_name] = None
        elif stage == "test":
            if test_mask is None:
                # Deviation: CLArena fails here unpacking None ("cannot unpack non-iterable NoneType").
                raise TypeError(
                    "stage 'test' needs test_mask=(weight_mask, bias_mask): the masks of the task being "
                    "tested, as `get_mask('train', mask_percentage=...)` gave them when its training ended."
                )
            weight_mask, bias_mask = test_mask

        return weight_mask, bias_mask

    def forward(
        self,
        input: Tensor,
        stage: str,
        mask_percentage: float,
        test_mask: tuple[dict[str, Tensor], dict[str, Tensor]] | None = None,
    ) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
        r"""Returns `(output_feature, weight_mask, bias_mask, activations)`, each layer computed
        with its parameters multiplied by `self.get_mask(...)`. Subclasses implement it."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement forward()."
        )
