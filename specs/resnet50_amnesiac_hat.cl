# CLArena's `AmnesiacHATResNet50`: HATMaskResNet50 plus backup backbones (plain ResNet-50) for unlearning.
include "resnet50.cl"
backbone AmnesiacHATResNet50 = ResNet50
mask amnesiac_hat()
