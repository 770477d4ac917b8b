# SE-ResNet-18 (moskomule/senet.pytorch) with WSN parameter masks: every conv and linear scored, the
# downsample projections and the SE linears too (HAT refuses this layout: the gate sits before the
# residual add). The plain network and where each name comes from: se_resnet18.cl.
include "se_resnet18.cl"
backbone WSNSEResNet18 = SEResNet18
mask wsn()
