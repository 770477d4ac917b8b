include "resnet152.cl"  # CLArena's AmnesiacHATResNet152: HAT plus backup backbones for unlearning
backbone AmnesiacHATResNet152 = ResNet152
mask amnesiac_hat()
