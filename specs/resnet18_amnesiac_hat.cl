include "resnet18.cl"  # CLArena's AmnesiacHATResNet18: HAT plus backup backbones for unlearning
backbone AmnesiacHATResNet18 = ResNet18
mask amnesiac_hat()
