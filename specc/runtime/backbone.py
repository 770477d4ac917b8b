r"""The base classes of every backbone, with the API of CLArena's `clarena.backbones.base`:
`Backbone` (an output dimension, the weighted layers in order) and `CLBackbone` (a task ID).

Generated and runtime backbones inherit these, so method names, signatures, defaults, attribute
names, error messages and return values follow CLArena's base classes. Departures are marked
"Deviation" in the comments below. Each masking scheme's base lives with its pass, under
specc/runtime/schemes/; `specc.runtime.bases` gathers them all.
`specc export` copies this module's code into an exported module (specc/emit/export.py).
"""

from __future__ import annotations

from torch import Tensor, nn

from specc.runtime import positions

__all__ = ["Backbone", "CLBackbone"]


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
