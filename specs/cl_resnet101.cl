# CLArena's `CLResNet101`: ResNet-101 as a continual-learning backbone.
include "resnet101.cl"
backbone CLResNet101 = continual ResNet101
