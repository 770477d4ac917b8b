# Beyond CLArena: HATMaskResNet18 whose shortcut convs are weighted layers that share their block's mask.
include "resnet18.cl"
backbone HATMaskResNet18Protected = ResNet18
mask hat(protect_shortcuts = true)
