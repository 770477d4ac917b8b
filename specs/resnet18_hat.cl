include "resnet18.cl"  # CLArena's HATMaskResNet18: unit masks after batch norm and residual add
backbone HATMaskResNet18 = ResNet18
mask hat()
# The masked forward for 3-channel images, made at compile time and kept in the generated file:
# building this structure skips the trace (`specc compile` imports torch for it).
prepare(input_channels=3, output_dim=512, gate="sigmoid")
