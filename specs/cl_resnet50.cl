include "resnet50.cl"  # CLArena's CLResNet50: ResNet-50 as a continual-learning backbone
backbone CLResNet50 = continual ResNet50
