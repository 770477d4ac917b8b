r"""HAT's backbone bases, with the API of CLArena's `clarena.backbones.base`: `HATMaskBackbone` (a
task embedding per weighted layer, its mask, the stored masks) and `AmnesiacHATBackbone` (HAT plus
backup backbones). Departures from CLArena's are marked "Deviation". `specc export` copies this
module's code into an exported module (specc/emit/export.py), as it does specc/runtime/backbone.py's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor, nn

from specc.runtime.backbone import Backbone, CLBackbone, _whole

__all__ = ["HATMaskBackbone", "AmnesiacHATBackbone"]

pylogger = logging.getLogger("specc.runtime.bases")  # its name before the split, which users configure


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
