# CLArena's `CLResNet50`: ResNet-50 as a continual-learning backbone.
include "resnet50.cl"
backbone CLResNet50 = continual ResNet50
