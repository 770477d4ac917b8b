"""`specc export SPEC --task T --checkpoint CKPT`: the network of one task of a trained masked
backbone (specc.runtime.task_network), as a torch-only Python module with its weights beside it
(`-o OUT.py`, weights in OUT.pt) and/or as ONNX (`--onnx OUT.onnx`)."""
from __future__ import annotations

from pathlib import Path

from ..frontend.classdef import NO_DEFAULT, class_def
from ..frontend.errors import SpecError, UsageError
from ..frontend.load import Program


def task_files(program: Program, overrides: dict, task: int, checkpoint: str, input_shape: tuple[int, ...],
               out: str | None, onnx_out: str | None) -> list[tuple[Path, bytes]]:
    """The files to write: `(path, bytes)` for the module and its weights, and for the ONNX model."""
    import torch

    from ..builder import runtime_class
    from ..runtime.task_network import task_network
    from ..runtime.task_network.checkpoint import load
    from ..runtime.task_network.onnx import onnx_bytes
    from ..runtime.task_network.source import module_source, weights_bytes

    cdef = class_def(program, overrides)
    missing = [d.name for d in cdef.params if d.default is NO_DEFAULT]
    if missing:
        raise SpecError(f"export fixes every argument: give {', '.join(missing)} with -D name=value",
                        program.backbone_pos or program.network.pos)
    backbone = runtime_class(program, overrides)()
    files = []
    try:
        parameter_masks = load(backbone, checkpoint)  # {task: (weight_mask, bias_mask)}, of a scheme that has them
        example = torch.zeros((1,) + tuple(input_shape))
        network = task_network(backbone, task, example, parameter_masks.get(task))
        if out is not None:
            weights = Path(out).with_suffix(".pt")
            title = (f"Task {task} of {program.class_name} ({Path(program.path).name}), from "
                     f"{Path(checkpoint).name}; input shape (batch, {', '.join(map(str, input_shape))}).")
            files.append((Path(out), module_source(network, title, weights.name).encode("utf-8")))
            files.append((weights, weights_bytes(network)))
        if onnx_out is not None:
            files.append((Path(onnx_out), onnx_bytes(network, example)))
    except (ValueError, TypeError, ImportError) as e:  # a checkpoint, shape or module that does not fit
        raise UsageError(str(e)) from None
    except RuntimeError as e:  # torch's, e.g. an input shape the network cannot take
        raise UsageError(f"the network does not run on inputs of shape {input_shape}: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return files
