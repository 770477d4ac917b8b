# MobileNetV3-Small as torchvision builds it (torchvision/models/mobilenetv3.py: mobilenet_v3_small,
# MobileNetV3, InvertedResidual, InvertedResidualConfig; torchvision/ops/misc.py:
# Conv2dNormActivation, SqueezeExcitation), PLAIN, width_mult 1.0, not dilated, not reduced-tail.
#
# features[0] is the stem (3x3 stride-2 conv, batch norm, Hardswish); features[1..11] one inverted
# residual per row of torchvision's table (input, kernel, expanded, out, use_se, activation, stride):
# an optional 1x1 expansion (when expanded != input), a depthwise conv (groups = expanded), an
# optional squeeze-excitation, a 1x1 projection without activation, and `result += input` when the
# stride is 1 and the width is kept; features[12] the last 1x1 conv (6 x the last width: 576,
# Hardswish). Every batch norm has eps 0.001 and momentum 0.01 (torchvision's norm_layer), every conv
# of a Conv2dNormActivation no bias and padding (kernel - 1) // 2. The squeeze-excitation's two 1x1
# convs `fc1`, `fc2` have biases; its gate is avgpool -> fc1 -> ReLU -> fc2 -> Hardsigmoid, times the
# stream; fc1 has _make_divisible(expanded // 4, 8) channels (written out below: max(8, (v + 4) // 8
# * 8), plus 8 when that is below 0.9 v).
#
# The head: torchvision's classifier is Linear(576, 1024) -> Hardswish -> Dropout(0.2) ->
# Linear(1024, num_classes). As specs/torchvision_resnet18.cl drops `fc` (the feature is what the
# last linear reads), this backbone keeps classifier[0..2] and drops classifier.3: its feature is the
# 1024-wide last hidden layer, with torchvision's keys `classifier.0.*`. `last_channel=none` leaves
# the classifier out (the feature is then the pooled 576 channels).
#
# What the language cannot write, and what it costs:
# * torchvision's table is a list of tuples (and a str per row, "RE"/"HS"); a spec's lists hold
#   ints or floats, so the table is six int lists of one entry per row (se and hardswish 0/1).
# * Conv2dNormActivation is an nn.Sequential whose children are `0` (conv), `1` (batch norm), `2`
#   (activation): a block's modules need identifier names, so here they are `conv`, `bn`, `act`
#   (keys `features.1.block.0.conv.weight` for torchvision's `features.1.block.0.0.weight`; the
#   test maps `conv` -> `0` and `bn` -> `1`, tests/test_mobilenet_v3.py; the `pretrained` declaration
#   below maps torchvision's keys back: 12 renames and a drop). `features` and each
#   block's `block` are module lists (torchvision: nn.Sequential; the same keys).
# * torchvision's activations are inplace=True (no value changes): an activation parameter is
#   constructed without arguments, so they are not inplace here.
block conv_norm_act(out: int, kernel: int, stride: int = 1, groups: int = 1, activation_layer: activation? = ReLU) {
    conv: conv2d(out, kernel=kernel, stride=stride, padding=(kernel - 1) // 2, groups=groups, bias=false)
        -> bn: batchnorm2d(eps=0.001, momentum=0.01) -> act: activation_layer() -> record
}

block squeeze_excitation(squeeze_channels: int) {
    branch scale = avgpool: adaptive_avgpool2d(1) -> fc1: conv2d(squeeze_channels, kernel=1) -> activation: ReLU()
        -> fc2: conv2d(in.channels, kernel=1) -> scale_activation: Hardsigmoid()
    mul(scale)
}

# One row of the table; `in.channels` is the row's input width. The module-list indices skip the
# expansion when there is none and the squeeze-excitation when the row has none.
block inverted_residual(kernel: int, expanded: int, out: int, use_se: bool, use_hs: bool, stride: int) {
    # declared first: a guarded `add` of a branch declared after it fails at construction (report)
    branch shortcut = identity
    block[0]: conv_norm_act(expanded, 1, activation_layer=Hardswish if use_hs else ReLU) if expanded != in.channels
    block[1 if expanded != in.channels else 0]: conv_norm_act(expanded, kernel, stride=stride, groups=expanded,
        activation_layer=Hardswish if use_hs else ReLU)
    block[2 if expanded != in.channels else 1]: squeeze_excitation(max(8, (expanded // 4 + 4) // 8 * 8)
        + (8 if 10 * max(8, (expanded // 4 + 4) // 8 * 8) < 9 * (expanded // 4) else 0)) if use_se
    block[(1 if expanded != in.channels else 0) + (2 if use_se else 1)]: conv_norm_act(out, 1, activation_layer=none)
        -> (add(shortcut) if stride == 1 and in.channels == out)
}

network MobileNetV3Small(
    input_channels: int = 3,
    stem_width: int = 16,
    kernels: list[int] = [3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5],
    expanded: list[int] = [16, 72, 88, 96, 240, 240, 120, 144, 288, 576, 576],
    widths: list[int] = [16, 24, 24, 40, 40, 40, 48, 48, 96, 96, 96],
    se: list[int] = [1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
    hardswish: list[int] = [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
    strides: list[int] = [2, 2, 1, 2, 1, 1, 1, 1, 2, 1, 1],
    last_channel: int? = 1024,
    dropout: float = 0.2,
    pretrained_weights: str? = none,  # the path of a torchvision-layout state dict saved with torch.save
) {
    input image(input_channels)
    features[0]: conv_norm_act(stem_width, 3, stride=2, activation_layer=Hardswish)
    for i, width in widths {
        features[i + 1]: inverted_residual(kernels[i], expanded[i], width, se[i] == 1, hardswish[i] == 1, strides[i])
    }
    features[len(widths) + 1]: conv_norm_act(6 * widths[-1], 1, activation_layer=Hardswish)
    avgpool: adaptive_avgpool2d(1) -> flatten
    (classifier[0]: linear(last_channel) -> classifier[1]: Hardswish(inplace=true)
        -> classifier[2]: dropout(dropout, inplace=true) -> record) if last_channel != none
    # torchvision's keys -> the spec's, for torchvision's table (11 rows: the last conv is features.12)
    pretrained pretrained_weights from "file" {
        "features.0.0" -> "features.0.conv"  "features.0.1" -> "features.0.bn"
        "features.12.0" -> "features.12.conv"  "features.12.1" -> "features.12.bn"
        "block.0.0" -> "block.0.conv"  "block.0.1" -> "block.0.bn"  "block.1.0" -> "block.1.conv"
        "block.1.1" -> "block.1.bn"  "block.2.0" -> "block.2.conv"  "block.2.1" -> "block.2.bn"
        "block.3.0" -> "block.3.conv"  "block.3.1" -> "block.3.bn"
        "classifier.3" -> none
    }
}
