# MobileNetV3-Small (torchvision's layout) with HAT unit masks. Where they sit (the traced graph's
# analysis decides; print_readable() shows it; tests/test_mobilenet_v3.py checks them bit for bit
# against the reference with masks hooked there): after each batch norm, before its ReLU or Hardswish
# (both keep a 0 at 0), after a squeeze-excitation's fc1 (before its ReLU) and after its Hardsigmoid
# (which makes 0.5 of a 0; a masked gate value then zeroes its channel of the product), after a
# projection's batch norm, or after the residual add where the block has one (the shortcut carries
# the previous block's masked units). The spec records a projection's activation inside its
# Conv2dNormActivation, so in a residual block it is the value before the add and the mask. The
# plain network and its names: mobilenet_v3_small.cl.
include "mobilenet_v3_small.cl"
backbone HATMaskMobileNetV3Small = MobileNetV3Small
mask hat(gate="sigmoid")
