include "resnet152.cl"  # CLArena's CLResNet152: ResNet-152 as a continual-learning backbone
backbone CLResNet152 = continual ResNet152
