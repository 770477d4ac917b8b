# PyCIL's CIFAR ResNet-32 (G-U-N/PyCIL, convs/cifar_resnet.py: DownsampleA, ResNetBasicblock,
# CifarResNet, resnet32 = CifarResNet(ResNetBasicblock, depth=32)), as a backbone ending at the
# pooled features (PyCIL's forward(x)["features"]): a 3x3 stem (16 filters), three stages of
# n = (depth - 2) // 6 basic blocks (widths 16, 32, 64; the first block of stages 2 and 3 has
# stride 2, on its first conv), AvgPool2d(8), flatten. Blocks are conv -> bn -> ReLU, conv -> bn,
# then ReLU(residual + branch).
#
# Option-A shortcuts (PyCIL's DownsampleA): where the stride is not 1 or the width changes, the
# residual is x[:, :, ::2, ::2] (PyCIL: AvgPool2d(kernel_size=1, stride=2), the same values) with
# as many ZERO channels appended after the kept ones (PyCIL: torch.cat((x, x.mul(0)), 1); the same
# values for finite inputs).
#
# Same state_dict keys, in the same order, as PyCIL's model minus `fc` (registered there but never
# used by its forward; a head here); tests/test_peer_specs.py drops `fc.*`.
#
# Differences from the public code that change no state_dict key and no value: functional ReLUs
# are stateless ReLU modules (relu, relu_a, relu_b); DownsampleA (a keyless module with the keyless
# child `avg`) is the parameter-free `subsample` -> `pad_channels` here; the forward returns the
# features (PyCIL: a dict with the per-stage maps too). `base_width` generalises the fixed 16,
# `depth` must be 6n + 2 (PyCIL raises otherwise; here another depth rounds n down).
block basicblock(planes: int, stride: int = 1) {
    conv_a: conv2d(planes, kernel=3, stride=stride, padding=1, bias=false) -> bn_a: batchnorm2d()
        -> relu_a: ReLU() -> record
    conv_b: conv2d(planes, kernel=3, padding=1, bias=false) -> bn_b: batchnorm2d()
        -> add(residual) -> relu_b: ReLU() -> record
    branch residual = (subsample(stride) -> pad_channels(0, planes - in.channels))
        if stride != 1 or in.channels != planes
}

network CifarResNet(depth: int = 32, channels: int = 3, base_width: int = 16) {
    input image(channels)
    conv_1_3x3: conv2d(base_width, kernel=3, padding=1, bias=false) -> bn_1: batchnorm2d() -> relu: ReLU()
        -> record
    stage_1: basicblock(base_width) * ((depth - 2) // 6)
    stage_2: basicblock(2 * base_width, stride=2), basicblock(2 * base_width) * ((depth - 2) // 6 - 1)
    stage_3: basicblock(4 * base_width, stride=2), basicblock(4 * base_width) * ((depth - 2) // 6 - 1)
    avgpool: avgpool2d(8) -> flatten
}
