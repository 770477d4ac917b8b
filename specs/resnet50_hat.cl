include "resnet50.cl"  # CLArena's HATMaskResNet50: unit masks after batch norm and residual add
backbone HATMaskResNet50 = ResNet50
mask hat()
