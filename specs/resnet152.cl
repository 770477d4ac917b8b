include "lib/resnet.cl"  # CLArena's ResNet152
backbone ResNet152 = ResNet(blocks=[3, 8, 36, 3], block=large, pretrained_weights=none)
