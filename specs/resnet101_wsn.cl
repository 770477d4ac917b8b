# WSNMaskResNet101 (beyond CLArena): ResNet-101 with WSN parameter masks on every convolution,
# shortcut projections included; batch norm none / "shared" / "independent" (default).
include "resnet101.cl"
backbone WSNMaskResNet101 = ResNet101
mask wsn(batch_normalization = "independent")
