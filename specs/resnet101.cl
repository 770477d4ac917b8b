include "lib/resnet.cl"  # CLArena's ResNet101
backbone ResNet101 = ResNet(blocks=[3, 4, 23, 3], block=large, pretrained_weights=none)
