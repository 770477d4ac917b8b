include "resnet101.cl"  # CLArena's AmnesiacHATResNet101: HAT plus backup backbones for unlearning
backbone AmnesiacHATResNet101 = ResNet101
mask amnesiac_hat()
