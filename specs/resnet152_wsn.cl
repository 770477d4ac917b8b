include "resnet152.cl"  # beyond CLArena: WSN on every conv, shortcut projections included
backbone WSNMaskResNet152 = ResNet152
mask wsn(batch_normalization = "independent")
