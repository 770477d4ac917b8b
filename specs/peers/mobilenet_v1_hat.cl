# MobileNet (v1) for CIFAR with HAT unit masks: after each batch norm, before the ReLU, for the
# depthwise and the pointwise convs alike (a depthwise conv's output channel c reads input channel c
# only, which HAT's parameter-wise measures follow).
include "mobilenet_v1.cl"
backbone HATMaskMobileNetV1 = MobileNetV1
mask hat(gate = "sigmoid")
