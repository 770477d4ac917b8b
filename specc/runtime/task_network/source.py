"""A task network (prune.py) as a standalone Python module that imports torch only, plus its
weights as a state_dict file beside it (read with `torch.load(..., weights_only=True)`).

The module defines `TaskNetwork(nn.Module)`: every submodule constructed with its sizes as
constants, the index buffers of its reindexing allocated empty (their values, like the weights,
come from the weights file), and the forward written from the network's graph. `load(path)`
builds it and loads the weights (default: the `.pt` file named like the module, beside it).
"""
from __future__ import annotations

import ast
import io

import torch
from torch import fx, nn

from ...core.activations import ACTIVATIONS
from ...core.layers import BY_CLASS
from ...emit import escape
from ..codegen import globals_read

# The torch.nn classes a task network holds: the pruned layers, written here, and the parameter-free
# modules the plain network calls (activations, pooling, dropout, ...), written by _constructor with
# every argument the catalogue gives them (their extra_repr() leaves some out, e.g. AvgPool2d's
# ceil_mode), or from extra_repr() for another torch.nn class; either is checked by rebuilding.
_LAYERS = {
    nn.Linear: lambda m: f"{m.in_features}, {m.out_features}, bias={m.bias is not None}",
    nn.Conv2d: lambda m: (f"{m.in_channels}, {m.out_channels}, kernel_size={m.kernel_size}, stride={m.stride}, "
                          f"padding={m.padding!r}, dilation={m.dilation}, groups={m.groups}, "
                          f"bias={m.bias is not None}, padding_mode={m.padding_mode!r}"),
    nn.BatchNorm1d: lambda m: (f"{m.num_features}, eps={m.eps!r}, momentum={m.momentum!r}, affine={m.affine}, "
                               f"track_running_stats={m.track_running_stats}"),
}
_LAYERS[nn.BatchNorm2d] = _LAYERS[nn.BatchNorm1d]
_FORWARD_GLOBALS = {"torch"}  # what the written forward may read besides its arguments


def _keywords(cls: type) -> tuple[str, ...] | None:
    """The constructor keywords of a parameter-free torch.nn class the catalogue builds (each
    also an attribute of the module), or None for a class it does not."""
    if cls.__name__ in ACTIVATIONS:
        return tuple(name for name, _, _ in ACTIVATIONS[cls.__name__])
    kind = BY_CLASS.get(cls.__name__)
    return None if kind is None else tuple(keyword for keyword, _ in kind.torch_args)


def _public(module: nn.Module) -> dict:
    return {k: v for k, v in vars(module).items() if not k.startswith("_") and k != "training"}


def _constructor(module: nn.Module) -> str:
    cls = type(module)
    if cls in _LAYERS:
        return f"nn.{cls.__name__}({_LAYERS[cls](module)})"
    refused = ValueError(f"a task network holding {cls.__name__} cannot be written as source: only "
                         f"{', '.join(c.__name__ for c in _LAYERS)} and parameter-free torch.nn modules can "
                         "(ONNX, --onnx, writes any)")
    if not (cls.__module__.startswith("torch.nn.modules.") and getattr(nn, cls.__name__, None) is cls
            and not any(True for _ in module.parameters()) and not any(True for _ in module.buffers())):
        raise refused
    keywords = _keywords(cls)
    if keywords is not None:  # every argument, read back from the module: extra_repr() omits some
        args = ", ".join(f"{k}={getattr(module, k)!r}" for k in keywords)
    else:
        args = module.extra_repr()
    try:
        call = ast.parse(f"f({args})", mode="eval").body
        # keyword literals only: anything else could not be written back as a constructor call
        # (nor could an extra_repr that closes the call early, such as "1) + (2": not a Call then)
        if not (isinstance(call, ast.Call) and not call.args and all(k.arg for k in call.keywords)):
            raise refused
        kwargs = {str(k.arg): ast.literal_eval(k.value) for k in call.keywords}
        rebuilt = cls(**kwargs)
    except (ValueError, TypeError, SyntaxError):
        raise refused from None
    # the written call must rebuild the module: an argument the text leaves out would change it
    if _public(rebuilt) != _public(module):
        raise refused
    return f"nn.{cls.__name__}({args})"


def module_source(network: fx.GraphModule, title: str, weights_name: str) -> str:
    """The text of the standalone module of `network` (see the module's doc). `title` is a line
    of the docstring; `weights_name` the default weights file, beside the module."""
    init = ["    def __init__(self) -> None:", "        super().__init__()"]
    for name, module in network.named_children():
        init.append(f"        self.{escape.identifier(name)} = {_constructor(module)}")
    for name, buffer in network.named_buffers(recurse=False):
        dtype = escape.identifier(str(buffer.dtype).removeprefix("torch."))
        init.append(f"        self.register_buffer({escape.literal(name)}, "
                    f"torch.empty({tuple(buffer.shape)}, dtype=torch.{dtype}))")
    code = network.graph.python_code(root_module="self")
    extra = set(globals_read(code.src.strip())) - _FORWARD_GLOBALS
    if extra:
        raise ValueError(f"the task network's forward reads {sorted(extra)}: not writable as torch-only source")
    forward = ["    " + line if line.strip() else "" for line in code.src.strip("\n").splitlines()]
    return "\n".join([
        escape.CODING_LINE,
        "# Written by `specc export --task`: one task's network of a trained masked backbone. Imports torch only.",
        escape.docstring(title),
        "from __future__ import annotations",
        "",
        "from pathlib import Path",
        "",
        "import torch",
        "from torch import nn",
        "",
        "",
        "class TaskNetwork(nn.Module):",
        "    \"\"\"forward(input) -> the backbone's feature for this task (its dropped units are zeros).\"\"\"",
        "",
        *init,
        "",
        *forward,
        "",
        "",
        "def load(path: str | None = None, map_location=\"cpu\") -> TaskNetwork:",
        "    \"\"\"The network with its weights (default: the weights file beside this module), in eval mode.\"\"\"",
        f"    path = Path(__file__).with_name({escape.literal(weights_name)}) if path is None else path",
        "    network = TaskNetwork()",
        "    network.load_state_dict(torch.load(path, map_location=map_location, weights_only=True))",
        "    return network.eval()",
        "",
    ])


def weights_bytes(network: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().clone() for k, v in network.state_dict().items()}, buffer)
    return buffer.getvalue()
