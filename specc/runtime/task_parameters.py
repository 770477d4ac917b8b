"""Per-task parameters: a transformer's class token and position embedding under HAT (HAT-CL's
placement keeps one per task, as independent batch norm keeps a batch norm per task).

Each such parameter `X` of a module gets a ParameterDict `Xs` of per-task copies in the same module,
keyed by task id strings, and its value at construction (`original_X`), as specc/runtime/batchnorm.py
does for batch norms. Training uses the live parameter; stages 'test' and 'unlearning_test' use the
copy of `test_task_id` (batchnorm.task_key)."""
from __future__ import annotations

import torch
from torch import Tensor, nn


def _split(target: str) -> tuple[str, str]:
    owner, _, attr = target.rpartition(".")
    return owner, attr


def _owner(root: nn.Module, owner: str) -> nn.Module:
    return root.get_submodule(owner) if owner else root


def create_copies(root: nn.Module, targets: list[str]) -> None:
    for target in targets:
        owner, attr = _split(target)
        module = _owner(root, owner)
        setattr(module, f"{attr}s", nn.ParameterDict())
        setattr(module, f"original_{attr}", getattr(module, attr).detach().clone())


def copy_for_task(root: nn.Module, targets: list[str], task_id: int, always: bool = False,
                  freeze: bool = False) -> None:
    """The copy of task `task_id` (if missing, or `always`); `freeze`: not trainable (specc's bases,
    as their batch-norm copies: a copy is never trained)."""
    for target in targets:
        owner, attr = _split(target)
        module = _owner(root, owner)
        copies = getattr(module, f"{attr}s")
        if always or f"{task_id}" not in copies:
            copies[f"{task_id}"] = nn.Parameter(getattr(module, attr).detach().clone(), requires_grad=not freeze)


def reset(root: nn.Module, targets: list[str]) -> None:
    """The live parameters back to their values at construction."""
    with torch.no_grad():
        for target in targets:
            owner, attr = _split(target)
            module = _owner(root, owner)
            live = getattr(module, attr)
            live.copy_(getattr(module, f"original_{attr}").to(live.device))


def task_parameter(live: Tensor, copies: nn.ParameterDict, task: str | None) -> Tensor:
    """The live parameter, or the copy stored for `task`."""
    return live if task is None else copies[task]
