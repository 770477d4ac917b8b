# EfficientNet-B0 (torchvision's layout) with WSN parameter masks: a score per weight and per bias of
# every conv (depthwise and squeeze-excitation convs included). The plain network: efficientnet_b0.cl.
include "efficientnet_b0.cl"
backbone WSNMaskEfficientNetB0 = EfficientNetB0
mask wsn()
