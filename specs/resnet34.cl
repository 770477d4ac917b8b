include "lib/resnet.cl"  # CLArena's ResNet34
backbone ResNet34 = ResNet(blocks=[3, 4, 6, 3], block=small, pretrained_weights=none)
