# CLArena's `AmnesiacHATResNet18`: HATMaskResNet18 plus backup backbones (plain ResNet-18) for unlearning.
include "resnet18.cl"
backbone AmnesiacHATResNet18 = ResNet18
mask amnesiac_hat()
