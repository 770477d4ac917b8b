# WSNMaskResNet50 (beyond CLArena): ResNet-50 with WSN parameter masks on every convolution,
# shortcut projections included; batch norm none / "shared" / "independent" (default).
include "resnet50.cl"
backbone WSNMaskResNet50 = ResNet50
mask wsn(batch_normalization = "independent")
