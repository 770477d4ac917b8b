# CLArena's `AmnesiacHATResNet34`: HATMaskResNet34 plus backup backbones (plain ResNet-34) for unlearning.
include "resnet34.cl"
backbone AmnesiacHATResNet34 = ResNet34
mask amnesiac_hat()
