# HATMaskResNet50Protected (beyond CLArena): HATMaskResNet50 whose shortcut (downsample) convs are
# weighted layers too. Each shares the mask and task embedding of the conv that owns its block's
# residual add, and its preceding layer is the producer of the block's input, so HAT's gradient
# rule protects it; in CLArena's lists it is missing and earlier tasks drift while later ones train.
include "resnet50.cl"
backbone HATMaskResNet50Protected = ResNet50
mask hat(protect_shortcuts = true)
