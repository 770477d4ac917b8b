# WSNMaskAlexNet: the HAT paper's AlexNet-like network with WSN parameter masks.
include "alexnet.cl"
backbone WSNMaskAlexNet = AlexNet
mask wsn()
