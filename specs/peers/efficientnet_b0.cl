# EfficientNet-B0 as torchvision builds it (torchvision/models/efficientnet.py: efficientnet_b0,
# EfficientNet, MBConv, MBConvConfig; torchvision/ops/misc.py: Conv2dNormActivation,
# SqueezeExcitation), PLAIN, width_mult 1.0, depth_mult 1.0.
#
# features[0] is the stem (3x3 stride-2 conv, batch norm, SiLU); features[1..7] one stage per row of
# torchvision's table (expand_ratio, kernel, stride, input, out, num_layers), each a list of MBConv
# blocks (the first with the row's stride, the others stride 1 and the row's width as input); an
# MBConv is an optional 1x1 expansion to _make_divisible(input * expand_ratio, 8) channels (when that
# differs from the input), a depthwise conv, a squeeze-excitation (1x1 convs fc1 of max(1, input // 4)
# channels and fc2, SiLU and Sigmoid), a 1x1 projection without activation, and `result += input`
# when the stride is 1 and the width is kept; features[8] the last 1x1 conv (4 x 320 = 1280, SiLU).
# Batch norms are torch's defaults (B0..B4), convs of a Conv2dNormActivation have no bias.
#
# The head: torchvision's classifier is Dropout(0.2) -> Linear(1280, num_classes); as
# specs/torchvision_resnet18.cl drops `fc`, this backbone keeps classifier[0], the dropout, and drops
# classifier.1: its feature is the 1280 pooled channels after the dropout, what the last linear reads.
#
# What the language cannot write, and what it costs:
# * stochastic depth: torchvision's MBConv scales its residual branch by StochasticDepth(p, "row")
#   in training (p = 0.2 * block index / 16); specc has no such operation, so this spec is
#   torchvision's network with stochastic_depth_prob=0 in training (identical in eval, where
#   stochastic depth is the identity). tests/test_efficientnet.py checks train mode at p = 0.
# * a stage is an nn.Sequential of blocks (`features.2.0.block...`): a module-list entry cannot be a
#   sequence and a block's children cannot be numbered, so a stage is the block `mb_stage` with the
#   module list `layers` (`features.2.layers.0.block...`), and Conv2dNormActivation's `0`/`1` are
#   `conv`/`bn`: the test renames `layers` away and `conv`/`bn` to `0`/`1`; the `pretrained`
#   declaration below maps torchvision's keys back (19 renames and a drop).
# * the table of tuples is five int lists; the channels are taken as given (torchvision's
#   adjust_channels at width 1.0 leaves B0's, all multiples of 8, as they are).
# * inplace activations are not inplace (an activation parameter is constructed without arguments).
block conv_norm_act(out: int, kernel: int, stride: int = 1, groups: int = 1, activation_layer: activation? = SiLU) {
    conv: conv2d(out, kernel=kernel, stride=stride, padding=(kernel - 1) // 2, groups=groups, bias=false)
        -> bn: batchnorm2d() -> act: activation_layer() -> record
}

block squeeze_excitation(squeeze_channels: int) {
    branch scale = avgpool: adaptive_avgpool2d(1) -> fc1: conv2d(squeeze_channels, kernel=1) -> activation: SiLU()
        -> fc2: conv2d(in.channels, kernel=1) -> scale_activation: Sigmoid()
    mul(scale)
}

# `expanded` is _make_divisible(input * expand_ratio, 8), computed by the stage
block mbconv(expanded: int, kernel: int, stride: int, out: int) {
    # declared before the guarded add (a guarded add of a branch declared after it fails to construct)
    branch shortcut = identity
    block[0]: conv_norm_act(expanded, 1) if expanded != in.channels
    block[1 if expanded != in.channels else 0]: conv_norm_act(expanded, kernel, stride=stride, groups=expanded)
    block[2 if expanded != in.channels else 1]: squeeze_excitation(max(1, in.channels // 4))
    block[3 if expanded != in.channels else 2]: conv_norm_act(out, 1, activation_layer=none)
        -> (add(shortcut) if stride == 1 and in.channels == out)
}

block mb_stage(expand_ratio: int, kernel: int, stride: int, out: int, num_layers: int) {
    for j in range(num_layers) {
        layers[j]: mbconv(
            max(8, ((in.channels if j == 0 else out) * expand_ratio + 4) // 8 * 8)
                + (8 if 10 * max(8, ((in.channels if j == 0 else out) * expand_ratio + 4) // 8 * 8)
                    < 9 * (in.channels if j == 0 else out) * expand_ratio else 0),
            kernel, stride if j == 0 else 1, out)
    }
}

network EfficientNetB0(
    input_channels: int = 3,
    stem_width: int = 32,
    expand_ratios: list[int] = [1, 6, 6, 6, 6, 6, 6],
    kernels: list[int] = [3, 3, 5, 3, 5, 5, 3],
    strides: list[int] = [1, 2, 2, 2, 1, 2, 1],
    widths: list[int] = [16, 24, 40, 80, 112, 192, 320],
    depths: list[int] = [1, 2, 2, 3, 3, 4, 1],
    last_channel: int? = none,
    dropout: float = 0.2,
    pretrained_weights: str? = none,  # the path of a torchvision-layout state dict saved with torch.save
) {
    input image(input_channels)
    features[0]: conv_norm_act(stem_width, 3, stride=2)
    for i, width in widths {
        features[i + 1]: mb_stage(expand_ratios[i], kernels[i], strides[i], width, depths[i])
    }
    features[len(widths) + 1]: conv_norm_act(4 * widths[-1] if last_channel == none else last_channel, 1)
    avgpool: adaptive_avgpool2d(1) -> flatten -> classifier[0]: dropout(dropout, inplace=true)
    # torchvision's keys -> the spec's, for B0's 7 stages (the last conv is features.8)
    pretrained pretrained_weights from "file" {
        "features.0.0" -> "features.0.conv"  "features.0.1" -> "features.0.bn"
        "features.8.0" -> "features.8.conv"  "features.8.1" -> "features.8.bn"
        "features.1" -> "features.1.layers"  "features.2" -> "features.2.layers"  "features.3" -> "features.3.layers"
        "features.4" -> "features.4.layers"  "features.5" -> "features.5.layers"  "features.6" -> "features.6.layers"
        "features.7" -> "features.7.layers"
        "block.0.0" -> "block.0.conv"  "block.0.1" -> "block.0.bn"  "block.1.0" -> "block.1.conv"
        "block.1.1" -> "block.1.bn"  "block.2.0" -> "block.2.conv"  "block.2.1" -> "block.2.bn"
        "block.3.0" -> "block.3.conv"  "block.3.1" -> "block.3.bn"
        "classifier.1" -> none
    }
}
