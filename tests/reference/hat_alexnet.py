"""The AlexNet-like network of the HAT paper (Serra et al., 2018), written independently in plain
PyTorch from the paper's description, in the paper's own style: each unit mask multiplies a layer's
output *after* its activation, dropout and max pooling (specc applies it before the activation;
for masks >= 0 the two are the same function, since ReLU, dropout and max pooling commute with a
non-negative per-channel scale)."""
from __future__ import annotations

import torch
from torch import nn


class HATAlexNet(nn.Module):
    def __init__(self, input_channels: int = 3, input_size: int = 32, output_dim: int = 2048):
        super().__init__()
        s = input_size
        self.c1 = nn.Conv2d(input_channels, 64, kernel_size=s // 8)
        s = (s - s // 8 + 1) // 2
        self.c2 = nn.Conv2d(64, 128, kernel_size=input_size // 10)
        s = (s - input_size // 10 + 1) // 2
        self.c3 = nn.Conv2d(128, 256, kernel_size=2)
        s = (s - 2 + 1) // 2
        self.fc1 = nn.Linear(256 * s * s, 2048)
        self.fc2 = nn.Linear(2048, output_dim)
        self.drop1, self.drop2 = nn.Dropout(0.2), nn.Dropout(0.5)
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()
        units = {"conv1": 64, "conv2": 128, "conv3": 256, "fc1": 2048, "fc2": output_dim}
        self.embeddings = nn.ParameterDict({k.replace("conv", "c"): nn.Parameter(torch.randn(n))
                                            for k, n in units.items()})

    def masks(self, s: float) -> dict[str, torch.Tensor]:
        names = {"c1": "conv1", "c2": "conv2", "c3": "conv3", "fc1": "fc1", "fc2": "fc2"}
        return {names[k]: torch.sigmoid(s * e) for k, e in self.embeddings.items()}

    def forward(self, x: torch.Tensor, masks: dict[str, torch.Tensor]) -> torch.Tensor:
        def conv_gate(h, m):
            return h * m.view(1, -1, 1, 1)

        h = conv_gate(self.pool(self.drop1(self.relu(self.c1(x)))), masks["conv1"])
        h = conv_gate(self.pool(self.drop1(self.relu(self.c2(h)))), masks["conv2"])
        h = conv_gate(self.pool(self.drop2(self.relu(self.c3(h)))), masks["conv3"])
        h = h.view(x.size(0), -1)
        h = self.drop2(self.relu(self.fc1(h))) * masks["fc1"]
        h = self.drop2(self.relu(self.fc2(h))) * masks["fc2"]
        return h
