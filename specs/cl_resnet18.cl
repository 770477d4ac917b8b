# CLArena's `CLResNet18`: ResNet-18 as a continual-learning backbone.
include "resnet18.cl"
backbone CLResNet18 = continual ResNet18
