# Mammoth's reduced ResNet-18 with HAT unit masks (specc's mask points: after each batch norm, and
# after the residual add for a block's second conv; the projection shortcut is not a weighted
# layer and is not masked). Mammoth has no HAT variant: this is the scheme applied to its network.
include "mammoth_resnet18.cl"
backbone HATMaskMammothResNet18 = MammothResNet18
mask hat(gate = "sigmoid")
