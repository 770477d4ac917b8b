# CLArena's `HATMaskResNet34`: ResNet-34 with HAT unit masks (after batch norm and the residual add).
include "resnet34.cl"
backbone HATMaskResNet34 = ResNet34
mask hat()
