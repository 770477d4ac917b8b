# Beyond CLArena: HATMaskResNet50 whose shortcut convs are weighted layers that share their block's mask.
include "resnet50.cl"
backbone HATMaskResNet50Protected = ResNet50
mask hat(protect_shortcuts = true)
