# CLArena's ResNets (clarena.backbones.ResNet18 ... ResNet152), every depth from one definition:
# `block` is the residual block (small or large, see resnet_blocks.cl), `blocks` the number of blocks
# in each of the four stages; a stage's stride sits in its first block only. CLArena records
# `output_dim` but builds no layer for it: the feature is the pooled map.
include "resnet_blocks.cl"

network ResNet(
    input_channels: int, output_dim: int, activation_layer: activation? = ReLU,
    batch_normalization: bool = true, bias: bool = false,
    pretrained_weights: str? = none,  # torchvision's resnet18 weights (ResNet-18 only), e.g. "IMAGENET1K_V1"
    blocks: list[int] = [2, 2, 2, 2], block: block = small,
) {
    input image(input_channels)
    conv1: conv2d(64, kernel=7, stride=2, padding=3, bias=bias)
        -> conv_bn1: batchnorm2d() if batch_normalization -> conv_activation1: activation_layer() -> record
    maxpool: maxpool2d(3, stride=2, padding=1)
    for i, width in [64, 128, 256, 512] {
        conv{i + 2}x: block(width, stride=1 if i == 0 else 2), block(width) * (blocks[i] - 1)
    }
    avepool: adaptive_avgpool2d(1) -> flatten
    # CLArena's renames of torchvision's resnet18 keys (its downsample batch norm and fc: dropped).
    pretrained pretrained_weights from "resnet18" {
        "bn1" -> "conv_bn1"  "bn2" -> "conv_bn2"
        "layer1" -> "conv2x"  "layer2" -> "conv3x"  "layer3" -> "conv4x"  "layer4" -> "conv5x"
        "downsample.0" -> "identity_downsample"  "downsample.1" -> none  "fc" -> none
    }
}
