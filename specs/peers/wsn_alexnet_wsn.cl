# The WSN paper's AlexNet with WSN parameter masks: a score per weight of every conv and linear
# layer, each layer keeping its top-scored fraction (the paper's SubnetConv2d / SubnetLinear). The
# layers have no bias; specc still keeps a bias score per layer (unused), as its WSN backbones do.
include "wsn_alexnet.cl"
backbone WSNMaskWSNAlexNet = WSNAlexNet
mask wsn()
