include "resnet101.cl"  # CLArena's HATMaskResNet101: unit masks after batch norm and residual add
backbone HATMaskResNet101 = ResNet101
mask hat()
