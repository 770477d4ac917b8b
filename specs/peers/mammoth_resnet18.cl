# Mammoth's reduced ResNet-18 (aimagelab/mammoth, backbone/ResNetBlock.py: BasicBlock, ResNet,
# reduced_resnet18 = ResNet(BasicBlock, [2, 2, 2, 2], num_classes, nf=20)), as a backbone: the
# network up to the pooled features (mammoth's `forward(x, returnt="features")`).
#
# Same state_dict keys, in the same order, as mammoth's model minus its head: `classifier` (the
# Linear(8 nf, num_classes) inside mammoth's backbone) is left to the continual-learning heads, as
# every specc backbone does; tests/test_peer_specs.py maps the keys by dropping `classifier.*`.
#
# Differences from the public code that change no state_dict key and no value:
# * mammoth's ReLUs are functional; a spec names every module, so they are ReLU modules here
#   (`relu`, `relu1`, `relu2`: stateless, no keys).
# * mammoth's identity shortcut is an empty nn.Sequential (a named module without keys); here the
#   identity is no module at all.
# * mammoth pools with avg_pool2d(x, x.shape[2]) (kernel = the final map's height, read at every
#   call); here the kernel is `in.height`, the final map's height worked out when the network is
#   built, so the input size is a constructor argument (a square input of that size; mammoth takes
#   any). adaptive_avgpool2d(1) would be the same mean but not the same bits.
# * the stem's input channels are a parameter (mammoth fixes 3).
block basic(planes: int, stride: int = 1) {
    conv1: conv2d(planes, kernel=3, stride=stride, padding=1, bias=false) -> bn1: batchnorm2d()
        -> relu1: ReLU() -> record
    conv2: conv2d(planes, kernel=3, padding=1, bias=false) -> bn2: batchnorm2d()
        -> add(shortcut) -> relu2: ReLU() -> record
    branch shortcut = shortcut: conv2d(planes, kernel=1, stride=stride, bias=false), batchnorm2d()
        if stride != 1 or in.channels != planes
}

network MammothResNet18(input_channels: int = 3, input_size: int = 32, nf: int = 20) {
    input image(input_channels, input_size, input_size)
    conv1: conv2d(nf, kernel=3, padding=1, bias=false) -> bn1: batchnorm2d() -> relu: ReLU() -> record
    layer1: basic(nf) * 2
    layer2: basic(2 * nf, stride=2), basic(2 * nf)
    layer3: basic(4 * nf, stride=2), basic(4 * nf)
    layer4: basic(8 * nf, stride=2), basic(8 * nf)
    avgpool: avgpool2d(in.height) -> flatten
}
