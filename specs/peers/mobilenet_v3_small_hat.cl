# MobileNetV3-Small (torchvision's layout) with HAT unit masks. Where they sit (the traced graph's
# analysis decides): after each batch norm's activation for the expansion and depthwise convs, after
# the ReLU of a squeeze-excitation's fc1 and after the Hardsigmoid of its fc2 (a masked gate value
# zeroes its channel of the product), after the batch norm of a projection, or after the residual add
# where the block has one (the shortcut then carries the previous block's masked units). The spec
# records a projection's activation inside its Conv2dNormActivation, so in a residual block it is
# the value before the add and the mask. The plain network and its names: mobilenet_v3_small.cl.
include "mobilenet_v3_small.cl"
backbone HATMaskMobileNetV3Small = MobileNetV3Small
mask hat(gate="sigmoid")
