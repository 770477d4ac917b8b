# ResNet-18, reproducing CLArena's `ResNet18` (clarena.backbones.ResNet18).
# Blocks: 2-2-2-2 small blocks; each stage's stride sits in its first block only.
include "lib/resnet_blocks.cl"

network ResNet18(
    input_channels: int,
    output_dim: int,
    activation_layer: activation? = ReLU,
    batch_normalization: bool = true,
    bias: bool = false,
    pretrained_weights: str? = none,  # torchvision's resnet18 weights, e.g. "IMAGENET1K_V1"
) {
    input image(input_channels)
    conv1: conv2d(64, kernel=7, stride=2, padding=3, bias=bias)
        -> conv_bn1: batchnorm2d() if batch_normalization
        -> conv_activation1: activation_layer()
        -> record
    maxpool: maxpool2d(3, stride=2, padding=1)
    conv2x: small(64, stride=1) * 2
    conv3x: small(128, stride=2), small(128) * 1
    conv4x: small(256, stride=2), small(256) * 1
    conv5x: small(512, stride=2), small(512) * 1
    # CLArena records `output_dim` but builds no layer for it: the feature is the pooled map.
    avepool: adaptive_avgpool2d(1) -> flatten

    # CLArena's mapping of torchvision's resnet18 keys onto these modules (its downsample batch norm
    # and classifier have no counterpart here).
    pretrained pretrained_weights from "resnet18" {
        "bn1" -> "conv_bn1"
        "bn2" -> "conv_bn2"
        "layer1" -> "conv2x"
        "layer2" -> "conv3x"
        "layer3" -> "conv4x"
        "layer4" -> "conv5x"
        "downsample.0" -> "identity_downsample"
        "downsample.1" -> none
        "fc" -> none
    }
}
