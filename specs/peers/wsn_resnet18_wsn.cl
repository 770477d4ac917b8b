# The WSN paper's reduced ResNet-18 with WSN parameter masks: every conv scored, the shortcut conv3
# included (the paper's SubnetConv2d); per block the weighted layers are conv1, conv2, conv3.
include "wsn_resnet18.cl"
backbone WSNMaskWSNResNet18 = WSNResNet18
mask wsn()
