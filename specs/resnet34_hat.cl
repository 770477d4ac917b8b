include "resnet34.cl"  # CLArena's HATMaskResNet34: unit masks after batch norm and residual add
backbone HATMaskResNet34 = ResNet34
mask hat()
