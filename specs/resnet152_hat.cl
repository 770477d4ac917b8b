include "resnet152.cl"  # CLArena's HATMaskResNet152: unit masks after batch norm and residual add
backbone HATMaskResNet152 = ResNet152
mask hat()
# The masked forward for 3-channel images, made at compile time and kept in the generated file:
# building this structure skips the trace (`specc compile` imports torch for it).
prepare(input_channels=3, output_dim=2048, gate="sigmoid")
