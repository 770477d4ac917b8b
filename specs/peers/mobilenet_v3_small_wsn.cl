# MobileNetV3-Small (torchvision's layout) with WSN parameter masks: a score per weight and per bias
# of every conv (the depthwise convs' and the squeeze-excitations' 1x1 convs included) and of the
# classifier's linear; each layer keeps its top-scored fraction. The plain network and where each
# name comes from: mobilenet_v3_small.cl.
include "mobilenet_v3_small.cl"
backbone WSNMaskMobileNetV3Small = MobileNetV3Small
mask wsn()
