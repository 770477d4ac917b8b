include "resnet101.cl"  # beyond CLArena: WSN on every conv, shortcut projections included
backbone WSNMaskResNet101 = ResNet101
mask wsn(batch_normalization = "independent")
