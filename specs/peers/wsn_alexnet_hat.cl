# The WSN paper's AlexNet with HAT unit masks (no public counterpart): each layer's mask after its
# (stateless) batch norm, before the ReLU.
include "wsn_alexnet.cl"
backbone HATMaskWSNAlexNet = WSNAlexNet
mask hat(gate = "sigmoid")
