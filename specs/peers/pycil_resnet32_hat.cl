# PyCIL's CIFAR ResNet-32 with HAT unit masks: after each batch norm (a block's second conv: after
# the residual add), before the ReLU. The option-A shortcut has no layer: its kept channels carry
# the previous block's (masked) units, its zero channels none.
include "pycil_resnet32.cl"
backbone HATMaskCifarResNet = CifarResNet
mask hat(gate = "sigmoid")
