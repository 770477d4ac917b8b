# CLArena's `HATMaskResNet50`: ResNet-50 with HAT unit masks (after batch norm and the residual add).
include "resnet50.cl"
backbone HATMaskResNet50 = ResNet50
mask hat()
