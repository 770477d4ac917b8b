# WSNMaskResNet18 (beyond CLArena): ResNet-18 with WSN parameter masks on every convolution,
# shortcut projections included; batch norm none / "shared" / "independent" (default).
include "resnet18.cl"
backbone WSNMaskResNet18 = ResNet18
mask wsn(batch_normalization = "independent")
