include "lib/resnet.cl"  # CLArena's ResNet50
backbone ResNet50 = ResNet(blocks=[3, 4, 6, 3], block=large, pretrained_weights=none)
