# WSNMaskResNet152 (beyond CLArena): ResNet-152 with WSN parameter masks on every convolution,
# shortcut projections included; batch norm none / "shared" / "independent" (default).
include "resnet152.cl"
backbone WSNMaskResNet152 = ResNet152
mask wsn(batch_normalization = "independent")
