"""torch.compile without a recompile per batch: the masked backbones' `forward` is a thin eager
frame that turns the per-step Python numbers into tensors, and the network (masks included) is a
function it calls, which torch.compile captures as one graph.

HAT's forward takes `batch_idx`, `num_batches` and `s_max` as Python numbers; a graph that read
them would be specialised to their values (one recompile when `batch_idx` first changes, then
symbolic integers). Instead `forward` computes the gate's scale as a 0-d float64 tensor, with the
same value as the Python float it replaces (bit for bit, see HATMasked.forward), and the compiled
graph receives that tensor: its guards check only its dtype and shape.

`eager_frame(fn)` asks torch.compile (TorchDynamo) to run `fn`'s own frame eagerly and compile the
frames it calls, as `torch.compiler.disable(fn, recursive=False)` does, without importing
torch._dynamo (seconds) when specc is imported: the request is recorded on the code object."""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def _mark(fn: F, recursive: bool) -> F:
    try:
        from torch._C._dynamo.eval_frame import _FrameAction, _FrameExecStrategy, set_code_exec_strategy

        inner = _FrameAction.SKIP if recursive else _FrameAction.DEFAULT
        set_code_exec_strategy(fn.__code__, _FrameExecStrategy(_FrameAction.SKIP, inner))
    except (ImportError, AttributeError, TypeError, RuntimeError):  # pragma: no cover - other torch versions
        pass
    return fn


def eager_frame(fn: F) -> F:
    """Mark `fn`'s frame to be run eagerly by torch.compile; the Python functions it calls are
    compiled, each as a graph of its own: so an eager frame calls one (the network), and does
    its other work inline or in `eager` helpers. Where this torch has no such hook, `fn` is left
    as it is (then traced as usual)."""
    return _mark(fn, recursive=False)


def eager(fn: F) -> F:
    """Mark `fn` to be run eagerly by torch.compile when an eager frame calls it, with all it
    calls (argument checks, Python bookkeeping: nothing worth a graph). Inlined as usual where a
    compiled function calls it."""
    return _mark(fn, recursive=True)
