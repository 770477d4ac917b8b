"""Base classes of compiled backbones: the seed's classes plus a forward that runs the network's
compiled fx graph (installed per instance by specc.assemble)."""
from __future__ import annotations

from copy import deepcopy

from torch import Tensor, nn

from .base import Backbone, CLBackbone, HATMaskBackbone


class _Lookup:
    def get_layer_by_name(self, layer_name: str | None) -> nn.Module | None:
        # Same result as the seed's scan of named_modules(), in O(depth): HAT's test-stage get_mask
        # looks up every weighted layer on every forward.
        if layer_name is None:
            return None
        try:
            return self.get_submodule(layer_name.replace("/", "."))
        except AttributeError:
            return None


class CompiledBackbone(_Lookup, Backbone):
    """A plain backbone compiled from a spec. forward(input, stage=None) -> (feature, activations)."""

    def forward(self, input: Tensor, stage: str | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        return self._specc_forward(self, input)


class CompiledCLBackbone(_Lookup, CLBackbone):
    """A continual-learning backbone compiled from a spec; `task_id` does not change the forward."""

    def forward(self, input: Tensor, stage: str | None = None,
                task_id: int | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        return self._specc_forward(self, input)


class CompiledHATBackbone(_Lookup, HATMaskBackbone):
    """A HAT-masked backbone compiled from a spec.

    `batch_normalization` is None, "shared" or "independent". Independent batch norm keeps per-task
    copies of each batch-norm attribute `X` of a module in a ModuleDict `Xs` of that module, keyed
    by task id strings; stages 'test' and 'unlearning_test' use the copy of `test_task_id` (or of
    the current task when it is None), the other stages the live modules."""

    def specc_setup_scheme(self, net) -> None:
        """Called by specc.assemble once the architecture's modules exist."""
        from ..passes.hat import bn_group

        for name in net.weighted_layer_names:
            units = self.get_layer_by_name(name).weight.size(0)
            self.task_embedding_t[name] = nn.Embedding(num_embeddings=1, embedding_dim=units)
        # CLArena's classes build the architecture before the task embeddings: keep that order.
        self._modules["task_embedding_t"] = self._modules.pop("task_embedding_t")
        self._bn_groups: list[tuple[tuple[str, ...], str]] = []
        if self.batch_normalization == "independent":
            for decl in net.modules:
                if decl.cls in ("BatchNorm1d", "BatchNorm2d"):
                    owner, attr, _ = bn_group(net, decl.path)
                    if (owner, attr) not in self._bn_groups:
                        self._bn_groups.append((owner, attr))
            for owner, attr in self._bn_groups:
                module = self.get_submodule(".".join(owner)) if owner else self
                setattr(module, f"{attr}s", nn.ModuleDict())
                setattr(module, f"original_{attr}_state_dict", deepcopy(getattr(module, attr).state_dict()))

    def _independent_bns(self):
        for owner, attr in self._bn_groups:
            module = self.get_submodule(".".join(owner)) if owner else self
            yield module, attr

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

    def forward(self, input: Tensor, stage: str, s_max: float | None = None, batch_idx: int | None = None,
                num_batches: int | None = None, test_task_id: int | None = None):
        mask = self.get_mask(stage=stage, s_max=s_max, batch_idx=batch_idx, num_batches=num_batches,
                             test_task_id=test_task_id)
        feature, activations = self._specc_forward(self, input, mask, self._bn_task(stage, test_task_id))
        return feature, mask, activations
