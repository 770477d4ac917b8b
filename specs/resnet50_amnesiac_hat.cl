include "resnet50.cl"  # CLArena's AmnesiacHATResNet50: HAT plus backup backbones for unlearning
backbone AmnesiacHATResNet50 = ResNet50
mask amnesiac_hat()
