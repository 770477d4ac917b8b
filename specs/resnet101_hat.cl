# CLArena's `HATMaskResNet101`: ResNet-101 with HAT unit masks (after batch norm and the residual add).
include "resnet101.cl"
backbone HATMaskResNet101 = ResNet101
mask hat()
