include "resnet152.cl"  # CLArena's HATMaskResNet152: unit masks after batch norm and residual add
backbone HATMaskResNet152 = ResNet152
mask hat()
