# CLArena's `CLResNet34`: ResNet-34 as a continual-learning backbone.
include "resnet34.cl"
backbone CLResNet34 = continual ResNet34
