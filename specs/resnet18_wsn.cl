include "resnet18.cl"  # beyond CLArena: WSN on every conv, shortcut projections included
backbone WSNMaskResNet18 = ResNet18
mask wsn(batch_normalization = "independent")
