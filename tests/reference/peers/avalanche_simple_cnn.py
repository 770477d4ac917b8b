"""Avalanche's SimpleCNN, in plain PyTorch (3-channel input; 32x32 in the tests).

Source of the facts: ContinualAI/avalanche, ``avalanche/models/simple_cnn.py`` (read at commit
eb075be393e1f458b2c352514ff6c17b5a2c0f4e, 2025-03-11): ``SimpleCNN(num_classes=10)``.

Structure: ``features`` is ONE nn.Sequential whose children are numbered 0..15:

====  ==============================================  =========================
idx   module                                          32x32 input -> output map
====  ==============================================  =========================
0     Conv2d(3, 32, 3, stride 1, padding 1, bias)      32 x 32 x 32
1     ReLU(inplace=True)
2     Conv2d(32, 32, 3, padding 0, bias)               32 x 30 x 30
3     ReLU(inplace=True)
4     MaxPool2d(kernel 2, stride 2)                    32 x 15 x 15
5     Dropout(0.25)
6     Conv2d(32, 64, 3, padding 1, bias)               64 x 15 x 15
7     ReLU(inplace=True)
8     Conv2d(64, 64, 3, padding 0, bias)               64 x 13 x 13
9     ReLU(inplace=True)
10    MaxPool2d(kernel 2, stride 2)                    64 x 6 x 6
11    Dropout(0.25)
12    Conv2d(64, 64, 1, padding 0, bias)               64 x 6 x 6
13    ReLU(inplace=True)
14    AdaptiveMaxPool2d(1)                             64 x 1 x 1
15    Dropout(0.25)
====  ==============================================  =========================

then ``x.view(batch, -1)`` (64 values) and ``classifier`` = nn.Sequential(Linear(64, num_classes)),
so the head's keys are ``classifier.0.weight`` / ``classifier.0.bias``. Every conv has a bias.
The convolution weights' keys are ``features.0``, ``features.2``, ``features.6``, ``features.8``,
``features.12`` (the numbering counts the activation, pooling and dropout modules too).

Spec notes:

* One flat nn.Sequential holding weighted layers AND activations / pooling / dropout, so that
  state_dict keys carry the positional index of every element (``features.12.weight``); a spec
  chain needs a way to place its elements in one Sequential in this order.
* ``adaptive_maxpool2d(1)`` (global max pooling).
* Dropout after each pooling, including after the global pooling (before the head).
* Mixed paddings (1 and 0; the padding-0 convs shrink the map), a 1x1 conv with bias.
* A head wrapped in a one-element Sequential (``classifier.0``).
* ReLU(inplace=True) modules (one instance per position).
"""

from __future__ import annotations

from torch import Tensor, nn

SOURCE = {
    "repo": "ContinualAI/avalanche",
    "path": "avalanche/models/simple_cnn.py (SimpleCNN)",
    "commit": "eb075be393e1f458b2c352514ff6c17b5a2c0f4e",
}
SPEC_NOTES = (
    "one flat Sequential mixing weighted layers with activation/pool/dropout (positional keys)",
    "adaptive_maxpool2d",
    "dropout after pooling layers",
    "paddings 0 and 1 mixed",
    "head in a one-element Sequential (classifier.0)",
)


class SimpleCNN(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, kernel_size=3, stride=1, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, kernel_size=3, padding=0),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Dropout(p=0.25),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, kernel_size=3, padding=0),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Dropout(p=0.25),
            nn.Conv2d(64, 64, kernel_size=1, padding=0),
            nn.ReLU(inplace=True),
            nn.AdaptiveMaxPool2d(1),
            nn.Dropout(p=0.25),
        )
        self.classifier = nn.Sequential(nn.Linear(64, num_classes))

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x).view(x.size(0), -1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.forward_features(x))


def make(num_classes: int = 10) -> SimpleCNN:
    """The public network is already small; only the head size is a parameter."""
    return SimpleCNN(num_classes)


# ---------------------------------------------------------------------------------------------
# HAT variant (no public counterpart: the HAT scheme applied to this network)
# ---------------------------------------------------------------------------------------------

_CONVS = (0, 2, 6, 8, 12)  # positions of the convolutions in ``features``


def hat_layers(model: SimpleCNN) -> dict[str, nn.Conv2d]:
    """The convs of ``features`` ('/' module paths ``features/<position>``), in order."""
    return {f"features/{k}": model.features[k] for k in _CONVS}


def hat_forward_features(model: SimpleCNN, x: Tensor, mask: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """``features`` run element by element with each conv's unit mask on its output (before its
    ReLU); returns the flattened features and the activations after each masked ReLU."""
    acts: dict[str, Tensor] = {}
    h = x
    for k, module in enumerate(model.features):
        h = module(h)
        if k in _CONVS:
            h = h * mask[f"features/{k}"].view(1, -1, 1, 1)
        if k - 1 in _CONVS:  # the ReLU right after a conv
            acts[f"features/{k - 1}"] = h
    return h.view(x.size(0), -1), acts


__all__ = ["SimpleCNN", "make", "hat_layers", "hat_forward_features", "SOURCE", "SPEC_NOTES"]
