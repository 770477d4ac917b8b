include "resnet18.cl"  # CLArena's CLResNet18: ResNet-18 as a continual-learning backbone
backbone CLResNet18 = continual ResNet18
