# EfficientNet-B0 (torchvision's layout) with HAT unit masks, placed as for MobileNetV3-Small
# (mobilenet_v3_small_hat.cl): after each batch norm (before its SiLU, SiLU(0) = 0), after a
# squeeze-excitation's fc1 and after its Sigmoid, after a projection's batch norm or after its
# residual add (tests/test_efficientnet.py checks them bit for bit against the reference with masks
# hooked there). The plain network and its names: efficientnet_b0.cl.
include "efficientnet_b0.cl"
backbone HATMaskEfficientNetB0 = EfficientNetB0
mask hat(gate="sigmoid")
