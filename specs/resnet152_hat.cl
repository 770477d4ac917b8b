# CLArena's `HATMaskResNet152`: ResNet-152 with HAT unit masks (after batch norm and the residual add).
include "resnet152.cl"
backbone HATMaskResNet152 = ResNet152
mask hat()
