# MobileNet (v1, CIFAR) with WSN parameter masks: a score per weight of every conv, the depthwise
# convs' (channels, 1, 3, 3) weights included; each layer keeps its top-scored fraction.
include "mobilenet_v1.cl"
backbone WSNMaskMobileNetV1 = MobileNetV1
mask wsn()
