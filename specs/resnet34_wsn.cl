include "resnet34.cl"  # beyond CLArena: WSN on every conv, shortcut projections included
backbone WSNMaskResNet34 = ResNet34
mask wsn(batch_normalization = "independent")
