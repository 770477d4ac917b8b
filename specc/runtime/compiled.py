"""Base classes of compiled backbones: the seed's classes plus a forward that runs the network's
compiled fx graph (installed per instance by specc.assemble)."""
from __future__ import annotations

from copy import deepcopy

from torch import Tensor, nn

from ..core.layers import BATCH_NORMS
from .base import AmnesiacHATBackbone, Backbone, CLBackbone, HATMaskBackbone, WSNMaskBackbone


class _Compiled:
    """What every compiled backbone shares: pickling around its run-time-made forward, and a fast
    layer lookup."""

    # The compiled forward is a function made at run time (not picklable by reference): leave it
    # out of the pickled state and compile it again from the IR (`specc_network`) on load.
    _COMPILED = ("_specc_forward", "_specc_backup_forward")

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in self._COMPILED}

    def __setstate__(self, state):
        super().__setstate__(state)
        from ..assemble import backup_forward, compiled_forward

        self._specc_forward = compiled_forward(self.specc_network)
        if "_specc_backup_ids" in state:
            self._specc_backup_forward = backup_forward(self.specc_network, self._specc_backup_ids)

    def get_layer_by_name(self, layer_name: str | None) -> nn.Module | None:
        # Same result as the seed's scan of named_modules(), in O(depth): HAT's test-stage get_mask
        # looks up every weighted layer on every forward.
        if layer_name is None:
            return None
        try:
            return self.get_submodule(layer_name.replace("/", "."))
        except AttributeError:
            return None


class CompiledBackbone(_Compiled, Backbone):
    """A plain backbone compiled from a spec. forward(input, stage=None) -> (feature, activations)."""

    def forward(self, input: Tensor, stage: str | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        return self._specc_forward(self, input)


class CompiledCLBackbone(_Compiled, CLBackbone):
    """A continual-learning backbone compiled from a spec; `task_id` does not change the forward."""

    def forward(self, input: Tensor, stage: str | None = None,
                task_id: int | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        return self._specc_forward(self, input)


class _IndependentBatchNorm:
    """Per-task batch norm for masked backbones: with `batch_normalization == "independent"`, each
    batch-norm attribute `X` of a module gets a ModuleDict `Xs` of per-task copies in that module,
    keyed by task id strings (CLArena's `fc_bns`, `conv_bn1s`); stages 'test' and
    'unlearning_test' use the copy of `test_task_id` (or of the current task when it is None), the
    other stages the live modules."""

    def _setup_independent_bn(self, net) -> None:
        from ..passes.hat import bn_group

        self._bn_groups: list[tuple[tuple[str, ...], str]] = []
        if getattr(self, "batch_normalization", None) != "independent":
            return
        for decl in net.modules:
            if decl.cls in BATCH_NORMS:
                owner, attr, _ = bn_group(net, decl.path)
                if (owner, attr) not in self._bn_groups:
                    self._bn_groups.append((owner, attr))
        for module, attr in self._independent_bns():
            setattr(module, f"{attr}s", nn.ModuleDict())
            setattr(module, f"original_{attr}_state_dict", deepcopy(getattr(module, attr).state_dict()))

    def _independent_bns(self):
        for owner, attr in self._bn_groups:
            yield (self.get_submodule(".".join(owner)) if owner else self), attr

    def setup_task_id(self, task_id: int) -> None:
        super().setup_task_id(task_id)
        for module, attr in self._independent_bns():
            copies = getattr(module, f"{attr}s")
            if f"{task_id}" not in copies:
                copies[f"{task_id}"] = deepcopy(getattr(module, attr))

    def store_bn(self) -> None:
        """Store a copy of the live batch norms under the current task (independent mode only)."""
        for module, attr in self._independent_bns():
            getattr(module, f"{attr}s")[f"{self.task_id}"] = deepcopy(getattr(module, attr))

    def initialize_independent_bn(self) -> None:
        """Reset the live batch norms to their state at construction (independent mode only)."""
        for module, attr in self._independent_bns():
            getattr(module, attr).load_state_dict(getattr(module, f"original_{attr}_state_dict"))

    def _bn_task(self, stage: str, test_task_id: int | None) -> str | None:
        if not self._bn_groups or stage not in ("test", "unlearning_test"):
            return None
        return f"{test_task_id if test_task_id is not None else self.task_id}"


class _HATMasked:
    """HAT's unit masks on a compiled graph: one `nn.Embedding(1, units)` per weighted layer in
    `task_embedding_t`; `batch_normalization` None, "shared" or "independent"."""

    def specc_setup_scheme(self, net, program) -> None:
        """Called by specc.assemble once the architecture's modules exist."""
        for name in net.weighted_layer_names:
            if name not in net.tied_to:
                units = self.get_layer_by_name(name).weight.size(0)
                self.task_embedding_t[name] = nn.Embedding(num_embeddings=1, embedding_dim=units)
        # A tied layer (a protected shortcut conv) shares the embedding, hence the mask, of the
        # layer owning its residual add, under its own name.
        for name, owner in net.tied_to.items():
            self.task_embedding_t[name] = self.task_embedding_t[owner]
        # CLArena's classes build the architecture before the gate and the task embeddings: keep
        # that order (named_modules, state_dict).
        for name in ("gate_fn", "task_embedding_t"):
            if name in self._modules:
                self._modules[name] = self._modules.pop(name)
        self._setup_independent_bn(net)

    def _measure_preceding_layer(self, layer_name: str) -> str | None:
        # From the graph: the layer whose units this layer's inputs carry. For CLArena's
        # architectures this is the previous list entry; for a protected shortcut conv it is the
        # producer of the block's input. The seed's lookup first, for its error on unknown names.
        self.preceding_layer_name(layer_name)
        owners = self.specc_network.graph_preceding[layer_name]
        return owners[0] if owners else None

    def _preceding_measure(self, neuron_wise_measure, preceding_layer_name, layer_name, weight_size):
        # After a flatten, input feature j of a linear layer belongs to channel j // (h * w) of
        # the preceding conv: spread the per-channel measure over the spatial positions.
        repeat = self.specc_network.input_unit_repeat[layer_name]
        measure = neuron_wise_measure[preceding_layer_name]
        if repeat != 1:
            measure = measure.repeat_interleave(repeat)
        return super()._preceding_measure({preceding_layer_name: measure}, preceding_layer_name, layer_name,
                                          weight_size)

    def forward(self, input: Tensor, stage: str, s_max: float | None = None, batch_idx: int | None = None,
                num_batches: int | None = None, test_task_id: int | None = None):
        mask = self.get_mask(stage=stage, s_max=s_max, batch_idx=batch_idx, num_batches=num_batches,
                             test_task_id=test_task_id)
        feature, activations = self._specc_forward(self, input, mask, self._bn_task(stage, test_task_id))
        return feature, mask, activations


class CompiledHATBackbone(_Compiled, _IndependentBatchNorm, _HATMasked, HATMaskBackbone):
    """A HAT-masked backbone compiled from a spec."""


class CompiledAmnesiacHATBackbone(_Compiled, _IndependentBatchNorm, _HATMasked, AmnesiacHATBackbone):
    """An AmnesiacHAT backbone compiled from a spec: HAT plus backup backbones.

    `original_backbone_class` is the plain class of the same architecture spec (built in memory,
    same constructor as the generated plain class); `backup_backbone_kwargs` are the architecture's
    arguments (`batch_normalization` as the plain class takes it: a bool). In stage
    'train_with_backup' the forward also runs one backup path per backup task (see
    specc/passes/amnesiac.py) and returns `(feature, backup_features, mask, activations)`."""

    class _PlainClass:
        """`original_backbone_class`, on the class as the seed asks: the plain class of the
        compiled class's own spec (`specc_program`), built once."""

        def __get__(self, obj, owner):
            from ..builder import plain_class

            return plain_class(owner.specc_program)

    original_backbone_class = _PlainClass()

    def specc_setup_scheme(self, net, program) -> None:
        super().specc_setup_scheme(net, program)
        self._specc_backup_forward = None
        if not self.disable_unlearning:
            kwargs = {p.name: self.specc_arguments[p.name] for p in program.network.params}
            if "batch_normalization" in kwargs and isinstance(kwargs["batch_normalization"], (str, type(None))):
                kwargs["batch_normalization"] = kwargs["batch_normalization"] is not None
            self.backup_backbone_kwargs = kwargs

    def instantiate_backup_backbones(self, backup_task_ids: list[int]) -> None:
        super().instantiate_backup_backbones(backup_task_ids)
        from ..assemble import backup_forward

        self._specc_backup_ids = [f"{t}" for t in backup_task_ids]
        self._specc_backup_forward = backup_forward(self.specc_network, self._specc_backup_ids)

    def forward(self, input: Tensor, stage: str, s_max: float | None = None, batch_idx: int | None = None,
                num_batches: int | None = None, test_task_id: int | None = None):
        if stage != "train_with_backup":
            return super().forward(input, stage, s_max, batch_idx, num_batches, test_task_id)
        if self._specc_backup_forward is None:
            raise ValueError("stage 'train_with_backup' needs backup backbones: call instantiate_backup_backbones() first")
        mask = self.get_mask(stage="train", s_max=s_max, batch_idx=batch_idx, num_batches=num_batches)
        backup_masks = {f"{t}": self.masks[t] for t in self.backup_task_ids}
        feature, backup_features, activations = self._specc_backup_forward(
            self, input, mask, self._bn_task("train", None), backup_masks)
        return feature, {t: backup_features[f"{t}"] for t in self.backup_task_ids}, mask, activations


class CompiledWSNBackbone(_Compiled, _IndependentBatchNorm, WSNMaskBackbone):
    """A WSN-masked backbone compiled from a spec.

    Scores: `weight_score_t[name] = nn.Embedding(out, in)` for a linear layer and
    `nn.Embedding(out_channels, in_channels // groups * kh * kw)` for a convolution (the weight
    flattened per output channel, in the weight's own memory order); `bias_score_t[name] =
    nn.Embedding(1, out)` for every layer, as CLArena creates it whether or not the layer has a
    bias (a layer without bias ignores its bias mask). The score dicts come before the architecture
    in the state dict, as in CLArena's WSNMaskMLP.

    `test_task_id` (beyond CLArena's signature, optional) picks the per-task batch-norm copy in the
    test stage when `batch_normalization == "independent"`; without it, the current task's."""

    def specc_setup_scheme(self, net, program) -> None:
        for name in net.weighted_layer_names:
            weight = self.get_layer_by_name(name).weight
            self.weight_score_t[name] = nn.Embedding(num_embeddings=weight.size(0),
                                                     embedding_dim=weight[0].numel())
            self.bias_score_t[name] = nn.Embedding(num_embeddings=1, embedding_dim=weight.size(0))
        self._setup_independent_bn(net)

    def forward(self, input: Tensor, stage: str, mask_percentage: float,
                test_mask: tuple[dict[str, Tensor], dict[str, Tensor]] | None = None,
                test_task_id: int | None = None):
        weight_mask, bias_mask = self.get_mask(stage, mask_percentage=mask_percentage, test_mask=test_mask)
        feature, activations = self._specc_forward(self, input, weight_mask, bias_mask,
                                                   self._bn_task(stage, test_task_id))
        return feature, weight_mask, bias_mask, activations
