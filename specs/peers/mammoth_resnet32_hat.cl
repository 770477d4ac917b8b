# Mammoth's ResNet-32 with HAT unit masks. Its first convs are conv -> ReLU -> batch norm: the mask
# of such a layer multiplies the batch norm's output (the unit's output), so a masked-out unit is 0.
include "mammoth_resnet32.cl"
backbone HATMaskMammothResNet32 = MammothResNet32
mask hat(gate = "sigmoid")
