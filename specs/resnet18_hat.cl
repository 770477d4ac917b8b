include "resnet18.cl"  # CLArena's HATMaskResNet18: unit masks after batch norm and residual add
backbone HATMaskResNet18 = ResNet18
mask hat()
