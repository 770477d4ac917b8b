include "resnet34.cl"  # CLArena's CLResNet34: ResNet-34 as a continual-learning backbone
backbone CLResNet34 = continual ResNet34
