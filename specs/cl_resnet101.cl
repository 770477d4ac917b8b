include "resnet101.cl"  # CLArena's CLResNet101: ResNet-101 as a continual-learning backbone
backbone CLResNet101 = continual ResNet101
