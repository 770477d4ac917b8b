# ResNet-34, reproducing CLArena's `ResNet34` (clarena.backbones.ResNet34).
# Blocks: 3-4-6-3 small blocks; each stage's stride sits in its first block only.
include "lib/resnet_blocks.cl"

network ResNet34(
    input_channels: int,
    output_dim: int,
    activation_layer: activation? = ReLU,
    batch_normalization: bool = true,
    bias: bool = false,
) {
    input image(input_channels)
    conv1: conv2d(64, kernel=7, stride=2, padding=3, bias=bias)
        -> conv_bn1: batchnorm2d() if batch_normalization
        -> conv_activation1: activation_layer()
        -> record
    maxpool: maxpool2d(3, stride=2, padding=1)
    conv2x: small(64, stride=1) * 3
    conv3x: small(128, stride=2), small(128) * 3
    conv4x: small(256, stride=2), small(256) * 5
    conv5x: small(512, stride=2), small(512) * 2
    # CLArena records `output_dim` but builds no layer for it: the feature is the pooled map.
    avepool: adaptive_avgpool2d(1) -> flatten
}
