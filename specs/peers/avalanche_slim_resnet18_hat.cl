# Avalanche's SlimResNet18 with HAT unit masks (after each batch norm; for a block's second conv after
# the residual add; before the ReLU). The shortcut projection is not a weighted layer.
include "avalanche_slim_resnet18.cl"
backbone HATMaskSlimResNet18 = SlimResNet18
mask hat(gate = "sigmoid")
