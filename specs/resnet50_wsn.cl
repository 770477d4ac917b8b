include "resnet50.cl"  # beyond CLArena: WSN on every conv, shortcut projections included
backbone WSNMaskResNet50 = ResNet50
mask wsn(batch_normalization = "independent")
