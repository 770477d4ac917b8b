"""A task network as ONNX, checked against onnxruntime.

torch's TorchScript-based exporter (`dynamo=False`) is used: it needs only the `onnx` package,
where the default exporter of torch >= 2.9 also needs `onnxscript`. The task network is plain
torch (convolutions, batch norms, pad, index_select), which that exporter takes whole; the batch
dimension is left dynamic.
"""
from __future__ import annotations

import io
import warnings

import torch
from torch import nn

OPSET = 17


def onnx_bytes(network: nn.Module, example_input: torch.Tensor) -> bytes:
    """The ONNX model of `network` (in eval mode) for inputs shaped like `example_input`, any batch."""
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise ImportError("ONNX export needs the `onnx` package: pip install onnx") from None
    buffer = io.BytesIO()
    network = network.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter announces its successor
        warnings.filterwarnings("ignore", message="Constant folding")  # pad's slices: folded by onnxruntime
        torch.onnx.export(network, (example_input,), buffer, dynamo=False, opset_version=OPSET,
                          input_names=["input"], output_names=["feature"],
                          dynamic_axes={"input": {0: "batch"}, "feature": {0: "batch"}})
    return buffer.getvalue()


def run_onnx(model: bytes, x: torch.Tensor) -> torch.Tensor:
    """`model` run by onnxruntime (CPU) on `x`."""
    import onnxruntime

    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    (out,) = session.run(["feature"], {"input": x.detach().cpu().numpy()})
    return torch.from_numpy(out)
