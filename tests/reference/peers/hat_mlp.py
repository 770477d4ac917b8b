"""The HAT paper's MLP (plain parts only: no task embeddings, no gates), in plain PyTorch.

Source of the facts: joansj/hat, ``src/networks/mlp_hat.py`` (read at commit
6fd0b9d98e089bec1f9da6cc20550916ce196829, 2019-01-23): ``Net(inputsize, taskcla, nlayers=2,
nhid=2000, pdrop1=0.2, pdrop2=0.5)``. Left out, because they belong to the masking scheme: the
embeddings ``efc1``..``efc3`` (nn.Embedding(num_tasks, nhid)), the ``gate`` Sigmoid, and the
multiplication of each hidden layer's output by its gate.

Structure, for ``inputsize = (channels, size, size)``:

* flatten the input to (batch, channels*size*size), then ``drop1`` Dropout(pdrop1) ON THE INPUT.
* hidden layers ``fc1``, ``fc2``, ``fc3`` (plain attributes named fc{i+1}, not a ModuleList;
  ``nlayers`` of them, 1 to 3 in the public code): Linear (bias) -> ``relu`` -> ``drop2``
  Dropout(pdrop2). (In HAT the gate multiplies the output AFTER the dropout.)
* ``relu``, ``drop1``, ``drop2``: single modules shared by every layer (each called once per layer).
* heads: ``last`` nn.ModuleList with one Linear(nhid, n) (bias) per (t, n) in ``taskcla``; forward
  returns the list of every head's output, in ``taskcla`` order.

Registration order (plain parts): relu, drop1, drop2, fc1, fc2, fc3, last (the public file
interleaves efc1 after fc1, efc2 after fc2, ... and registers ``gate`` last; without them the
plain keys keep this relative order).

Spec notes:

* Computed attribute names ``fc{i+1}`` for a loop of layers (1-based, no ModuleList).
* One activation module and one dropout module shared by (called at) several layers.
* Dropout on the input features, before the first linear layer (``drop1``), and a different dropout
  rate after each hidden activation (``drop2``).
* A multi-head output: ModuleList ``last`` of per-task linear heads, forward returning a list.
"""

from __future__ import annotations

from torch import Tensor, nn

SOURCE = {
    "repo": "joansj/hat",
    "path": "src/networks/mlp_hat.py (Net; plain parts)",
    "commit": "6fd0b9d98e089bec1f9da6cc20550916ce196829",
}
SPEC_NOTES = (
    "computed attribute names fc{i+1} (no ModuleList)",
    "one activation / dropout module shared by several layers",
    "dropout on the input before the first layer",
    "multi-head ModuleList output (list of per-task heads)",
)


class HATMLP(nn.Module):
    def __init__(self, inputsize=(1, 28, 28), taskcla=((0, 10),), nlayers: int = 2, nhid: int = 2000,
                 pdrop1: float = 0.2, pdrop2: float = 0.5) -> None:
        super().__init__()
        if not 1 <= nlayers <= 3:
            raise ValueError("the HAT MLP has 1 to 3 hidden layers")
        ncha, size, _ = inputsize
        self.taskcla = [tuple(tc) for tc in taskcla]
        self.nlayers = nlayers
        self.relu = nn.ReLU()
        self.drop1 = nn.Dropout(pdrop1)
        self.drop2 = nn.Dropout(pdrop2)
        fan_in = ncha * size * size
        for i in range(nlayers):
            setattr(self, f"fc{i + 1}", nn.Linear(fan_in, nhid))
            fan_in = nhid
        self.last = nn.ModuleList(nn.Linear(nhid, n) for _, n in self.taskcla)

    def forward_features(self, x: Tensor) -> Tensor:
        h = self.drop1(x.view(x.size(0), -1))
        for i in range(self.nlayers):
            h = self.drop2(self.relu(getattr(self, f"fc{i + 1}")(h)))
        return h

    def forward(self, x: Tensor) -> list[Tensor]:
        h = self.forward_features(x)
        return [self.last[t](h) for t, _ in self.taskcla]


def make(inputsize=(1, 8, 8), taskcla=((0, 3), (1, 3)), nlayers: int = 2, nhid: int = 32) -> HATMLP:
    """Small default; ``HATMLP((1, 28, 28), taskcla, 2, 2000)`` is the public MNIST configuration."""
    return HATMLP(inputsize, taskcla, nlayers, nhid)


# ---------------------------------------------------------------------------------------------
# HAT variants: the masks of the public network (its efc1.. embeddings and gate), placed where
# the paper's code puts them, and where CLArena's HAT backbones put them
# ---------------------------------------------------------------------------------------------


def hat_layers(model: HATMLP) -> dict[str, nn.Linear]:
    """The hidden layers fc1.. in order (the public code's embeddings efc1..)."""
    return {f"fc{i + 1}": getattr(model, f"fc{i + 1}") for i in range(model.nlayers)}


def hat_paper_forward_features(model: HATMLP, x: Tensor, mask: dict[str, Tensor]) -> Tensor:
    """The public code's placement: a layer's mask multiplies its units after ReLU and dropout."""
    h = model.drop1(x.view(x.size(0), -1))
    for i in range(model.nlayers):
        h = model.drop2(model.relu(getattr(model, f"fc{i + 1}")(h))) * mask[f"fc{i + 1}"]
    return h


def hat_forward_features(model: HATMLP, x: Tensor, mask: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """CLArena's placement: the mask before the ReLU (so before the dropout); returns the
    features and the activations after each ReLU. The same function as the paper's placement for
    masks >= 0, bit for bit when dropout is off."""
    acts: dict[str, Tensor] = {}
    h = model.drop1(x.view(x.size(0), -1))
    for i in range(model.nlayers):
        name = f"fc{i + 1}"
        acts[name] = model.relu(getattr(model, name)(h) * mask[name])
        h = model.drop2(acts[name])
    return h, acts


__all__ = ["HATMLP", "make", "hat_layers", "hat_forward_features", "hat_paper_forward_features", "SOURCE",
           "SPEC_NOTES"]
