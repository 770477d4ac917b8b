#!/usr/bin/env bash
# Compile the ResNet-18 parity spec and show what came out.
source "$(dirname "$0")/venv.sh"
specc compile specs/resnet18.cl
specc show specs/resnet18.cl -D input_channels=3 -D output_dim=512 --image-size 32
python - <<'PY'
import torch
from generated.resnet18 import ResNet18

net = ResNet18(input_channels=3, output_dim=512).eval()
feature, activations = net(torch.randn(2, 3, 32, 32))
print(f"generated.resnet18.ResNet18: feature {tuple(feature.shape)}, {len(activations)} recorded activations")
PY
