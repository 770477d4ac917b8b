# HATMaskAlexNet: the HAT paper's own network with HAT unit masks. The first linear layer's inputs
# are the flattened channels of conv3: HAT's parameter-wise measures spread each channel's mask
# over its spatial positions (specc's unit map through flatten).
include "alexnet.cl"
backbone HATMaskAlexNet = AlexNet
mask hat(gate = "sigmoid")
