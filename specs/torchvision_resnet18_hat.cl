# torchvision's resnet18 with HAT's unit masks: after each batch norm, and after the residual add
# for a block's second conv; the shortcut projection (downsample) is not a weighted layer.
include "torchvision_resnet18.cl"
backbone HATMaskTorchvisionResNet18 = TorchvisionResNet18
mask hat(gate = "sigmoid")
