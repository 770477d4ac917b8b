# CLArena's `AmnesiacHATResNet101`: HATMaskResNet101 plus backup backbones (plain ResNet-101) for unlearning.
include "resnet101.cl"
backbone AmnesiacHATResNet101 = ResNet101
mask amnesiac_hat()
