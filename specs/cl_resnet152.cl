# CLArena's `CLResNet152`: ResNet-152 as a continual-learning backbone.
include "resnet152.cl"
backbone CLResNet152 = continual ResNet152
