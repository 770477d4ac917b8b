"""The HAT paper's AlexNet-like network (plain parts only), in plain PyTorch.

Source of the facts: joansj/hat, ``src/networks/alexnet_hat.py`` (read at commit
6fd0b9d98e089bec1f9da6cc20550916ce196829, 2019-01-23): ``Net(inputsize, taskcla)`` and
``utils.compute_conv_output_size``. Left out (masking scheme): ``ec1``..``ec3``, ``efc1``, ``efc2``
(nn.Embedding), ``gate`` (Sigmoid) and the gate multiplications. (The unmasked baseline
``src/networks/alexnet.py`` is the same network with convs named conv1..conv3; this follows the HAT
file's names c1, c2, c3.)

Structure, for ``inputsize = (channels, size, size)``; channel widths 64, 128, 256 and hidden width
2048 in the paper (parameters here):

* ``c1`` Conv2d(channels, 64, kernel size // 8), ``c2`` Conv2d(64, 128, kernel size // 10),
  ``c3`` Conv2d(128, 256, kernel 2): stride 1, NO padding, with bias. Kernel sizes are computed
  from the input size (32 -> 4 and 3; 28 -> 3 and 2).
* each conv: conv -> ``relu`` -> dropout -> ``maxpool`` (MaxPool2d(2)), with ``drop1`` (p=0.2) after
  c1 and c2 and ``drop2`` (p=0.5) after c3. Dropout sits BEFORE the pooling.
* flatten (256 * smid * smid; smid from the size: 32 -> 29 -> 14 -> 12 -> 6 -> 5 -> 2, so
  smid = 2 for 32x32), ``fc1`` Linear(256*smid^2, 2048) -> ``relu`` -> ``drop2``, ``fc2``
  Linear(2048, 2048) -> ``relu`` -> ``drop2`` (bias everywhere).
* ``relu``, ``maxpool``, ``drop1``, ``drop2`` are single modules called at several points.
* heads: ``last`` nn.ModuleList of Linear(2048, n) per (t, n) in ``taskcla``; forward returns the
  list of every head's output.

Registration order (plain parts): c1, c2, c3, maxpool, relu, drop1, drop2, fc1, fc2, last.

Spec notes:

* Kernel sizes and the flattened width computed from the input size (size // 8, size // 10,
  floor((L - k) / 1 + 1) // 2 three times).
* Module names c1..c3, fc1, fc2 (computed names or explicit ones; no ModuleList).
* Shared relu / maxpool / dropout modules, each called at several points.
* Dropout BEFORE max pooling (conv -> relu -> dropout -> maxpool), two dropout rates.
* Multi-head ModuleList ``last``.
"""

from __future__ import annotations

from torch import Tensor, nn

SOURCE = {
    "repo": "joansj/hat",
    "path": "src/networks/alexnet_hat.py (Net; plain parts), src/utils.py (compute_conv_output_size)",
    "commit": "6fd0b9d98e089bec1f9da6cc20550916ce196829",
}
SPEC_NOTES = (
    "kernel sizes / flattened width computed from the input size",
    "shared relu / maxpool / dropout modules called at several points",
    "dropout before max pooling",
    "multi-head ModuleList output",
)


def conv_output_size(length: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    return (length + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


class HATAlexNet(nn.Module):
    def __init__(self, inputsize=(3, 32, 32), taskcla=((0, 10),), channels=(64, 128, 256), hidden: int = 2048):
        super().__init__()
        ncha, size, _ = inputsize
        c1, c2, c3 = channels
        self.taskcla = [tuple(tc) for tc in taskcla]
        k1, k2 = size // 8, size // 10
        self.c1 = nn.Conv2d(ncha, c1, kernel_size=k1)
        s = conv_output_size(size, k1) // 2
        self.c2 = nn.Conv2d(c1, c2, kernel_size=k2)
        s = conv_output_size(s, k2) // 2
        self.c3 = nn.Conv2d(c2, c3, kernel_size=2)
        s = conv_output_size(s, 2) // 2
        self.smid = s
        self.maxpool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()
        self.drop1 = nn.Dropout(0.2)
        self.drop2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(c3 * s * s, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.last = nn.ModuleList(nn.Linear(hidden, n) for _, n in self.taskcla)

    def forward_features(self, x: Tensor) -> Tensor:
        h = self.maxpool(self.drop1(self.relu(self.c1(x))))
        h = self.maxpool(self.drop1(self.relu(self.c2(h))))
        h = self.maxpool(self.drop2(self.relu(self.c3(h))))
        h = h.view(x.size(0), -1)
        h = self.drop2(self.relu(self.fc1(h)))
        return self.drop2(self.relu(self.fc2(h)))

    def forward(self, x: Tensor) -> list[Tensor]:
        h = self.forward_features(x)
        return [self.last[t](h) for t, _ in self.taskcla]


def make(inputsize=(3, 32, 32), taskcla=((0, 5), (1, 5)), channels=(16, 32, 64), hidden: int = 64) -> HATAlexNet:
    """Small default widths; ``HATAlexNet((3, 32, 32), taskcla)`` has the paper's widths."""
    return HATAlexNet(inputsize, taskcla, channels, hidden)


# ---------------------------------------------------------------------------------------------
# HAT variants: the masks of the public network (its ec1..ec3, efc1, efc2 embeddings and gate),
# placed where the paper's code puts them, and where CLArena's HAT backbones put them
# ---------------------------------------------------------------------------------------------


def hat_layers(model: HATAlexNet) -> dict[str, nn.Module]:
    """The masked layers in data-flow order (the public code's embeddings ec1..ec3, efc1, efc2)."""
    return {"c1": model.c1, "c2": model.c2, "c3": model.c3, "fc1": model.fc1, "fc2": model.fc2}


def hat_paper_forward_features(model: HATAlexNet, x: Tensor, mask: dict[str, Tensor]) -> Tensor:
    """The public code's placement: a conv's mask multiplies its channels after ReLU, dropout and max
    pooling; a linear layer's mask its units after ReLU and dropout."""
    h = model.maxpool(model.drop1(model.relu(model.c1(x)))) * mask["c1"].view(1, -1, 1, 1)
    h = model.maxpool(model.drop1(model.relu(model.c2(h)))) * mask["c2"].view(1, -1, 1, 1)
    h = model.maxpool(model.drop2(model.relu(model.c3(h)))) * mask["c3"].view(1, -1, 1, 1)
    h = h.view(x.size(0), -1)
    h = model.drop2(model.relu(model.fc1(h))) * mask["fc1"]
    return model.drop2(model.relu(model.fc2(h))) * mask["fc2"]


def hat_forward_features(model: HATAlexNet, x: Tensor, mask: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """CLArena's placement: each mask multiplies its layer's output before the ReLU (so
    before dropout and pooling); returns the features and the activations after each ReLU. For
    masks >= 0 the same function as the paper's placement (ReLU, dropout scaling and max pooling
    commute with a non-negative per-unit factor), bit for bit when dropout is off."""
    acts: dict[str, Tensor] = {}

    def gate(h: Tensor, name: str) -> Tensor:
        m = mask[name]
        acts[name] = model.relu(h * (m.view(1, -1, 1, 1) if h.dim() == 4 else m))
        return acts[name]

    h = model.maxpool(model.drop1(gate(model.c1(x), "c1")))
    h = model.maxpool(model.drop1(gate(model.c2(h), "c2")))
    h = model.maxpool(model.drop2(gate(model.c3(h), "c3")))
    h = h.view(x.size(0), -1)
    h = model.drop2(gate(model.fc1(h), "fc1"))
    return model.drop2(gate(model.fc2(h), "fc2")), acts


__all__ = ["HATAlexNet", "conv_output_size", "make", "hat_layers", "hat_forward_features",
           "hat_paper_forward_features", "SOURCE", "SPEC_NOTES"]
