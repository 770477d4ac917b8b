# WSNMaskResNet34 (beyond CLArena): ResNet-34 with WSN parameter masks on every convolution,
# shortcut projections included; batch norm none / "shared" / "independent" (default).
include "resnet34.cl"
backbone WSNMaskResNet34 = ResNet34
mask wsn(batch_normalization = "independent")
