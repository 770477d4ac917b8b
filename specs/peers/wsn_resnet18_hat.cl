# The WSN paper's reduced ResNet-18 with HAT unit masks (no public counterpart): after each batch
# norm (a block's second conv: after the residual add), before the ReLU; the shortcut is not masked.
include "wsn_resnet18.cl"
backbone HATMaskWSNResNet18 = WSNResNet18
mask hat(gate = "sigmoid")
