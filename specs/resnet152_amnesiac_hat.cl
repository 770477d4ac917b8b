# CLArena's `AmnesiacHATResNet152`: HATMaskResNet152 plus backup backbones (plain ResNet-152) for unlearning.
include "resnet152.cl"
backbone AmnesiacHATResNet152 = ResNet152
mask amnesiac_hat()
