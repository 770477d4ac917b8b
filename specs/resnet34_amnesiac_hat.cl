include "resnet34.cl"  # CLArena's AmnesiacHATResNet34: HAT plus backup backbones for unlearning
backbone AmnesiacHATResNet34 = ResNet34
mask amnesiac_hat()
