# CLArena's `HATMaskResNet18`: ResNet-18 with HAT unit masks (after batch norm and the residual add).
include "resnet18.cl"
backbone HATMaskResNet18 = ResNet18
mask hat()
