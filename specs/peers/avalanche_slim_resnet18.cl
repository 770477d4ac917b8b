# Avalanche's SlimResNet18 (ContinualAI/avalanche, avalanche/models/slim_resnet18.py: BasicBlock,
# ResNet, SlimResNet18(nclasses, nf=20) = ResNet(BasicBlock, [2, 2, 2, 2], nclasses, nf)), as a
# backbone: the network up to the pooled features, 3x32x32 input.
#
# Same state_dict keys, in the same order, as Avalanche's model minus its head `linear`
# (Linear(8 nf, nclasses), left to the continual-learning heads); tests/test_peer_specs.py maps the
# keys by dropping `linear.*`.
#
# Differences from the public code that change no state_dict key and no value:
# * Avalanche's forward first does x.view(batch, 3, 32, 32), so it also takes flattened images; the
#   spec's input is the image itself, (3, 32, 32) (a flattened input is refused, not reshaped).
# * functional ReLUs become stateless ReLU modules (`relu`, `relu1`, `relu2`), functional
#   avg_pool2d(x, 4) an AvgPool2d(4) module (`avgpool`); the identity shortcut, an empty
#   nn.Sequential there, is no module here.
block basic(planes: int, stride: int = 1) {
    conv1: conv2d(planes, kernel=3, stride=stride, padding=1, bias=false) -> bn1: batchnorm2d()
        -> relu1: ReLU() -> record
    conv2: conv2d(planes, kernel=3, padding=1, bias=false) -> bn2: batchnorm2d()
        -> add(shortcut) -> relu2: ReLU() -> record
    branch shortcut = shortcut: conv2d(planes, kernel=1, stride=stride, bias=false), batchnorm2d()
        if stride != 1 or in.channels != planes
}

network SlimResNet18(nf: int = 20) {
    input image(3, 32, 32)
    conv1: conv2d(nf, kernel=3, padding=1, bias=false) -> bn1: batchnorm2d() -> relu: ReLU() -> record
    layer1: basic(nf), basic(nf)
    layer2: basic(2 * nf, stride=2), basic(2 * nf)
    layer3: basic(4 * nf, stride=2), basic(4 * nf)
    layer4: basic(8 * nf, stride=2), basic(8 * nf)
    avgpool: avgpool2d(4) -> flatten
}
