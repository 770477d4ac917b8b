include "lib/resnet.cl"  # CLArena's ResNet18
backbone ResNet18 = ResNet(blocks=[2, 2, 2, 2], block=small)
