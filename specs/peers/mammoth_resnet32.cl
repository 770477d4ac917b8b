# Mammoth's ResNet-32 (aimagelab/mammoth, backbone/ResNet32.py: IdentityShortcut, BasicBlock,
# ResNet32, resnet32), iCaRL's CIFAR network, as a backbone ending at the pooled features
# (mammoth's returnt="features"): batch norm AFTER the ReLU (conv -> relu -> bn) in the stem and in
# each block's first conv; every batch norm eps = 1e-4; widths 16, 32, 64, n = (depth - 2) // 6
# blocks per stage (layer3: first, n - 2 middle, and a last block whose sum has no ReLU; for n = 1
# mammoth still builds two blocks there, as this does). AvgPool2d(8), flatten.
#
# Option-A shortcut (mammoth's IdentityShortcut, only where the stride is not 1): x[:, :, ::2, ::2],
# then planes // 4 zero channels BEFORE and planes // 4 AFTER the kept ones (F.pad).
#
# One ReLU module per block (`relu`, inplace) called at two points, after conv1 and after the
# residual add (`use relu`), as mammoth does.
#
# Same state_dict keys, in the same order, as mammoth's model minus `bn_final` (registered but never
# used by mammoth's forward: a spec has no unused modules) and the head `classifier`;
# tests/test_peer_specs.py drops both from mammoth's keys.
#
# Other differences that change no key and no value: the model-level `relu` (mammoth registers it
# after bn_final) is declared where the stem uses it; IdentityShortcut (a keyless module) is the
# parameter-free `subsample` -> `pad_channels`.
block basic(planes: int, stride: int = 1, last: bool = false) {
    conv1: conv2d(planes, kernel=3, stride=stride, padding=1, bias=false) -> relu: ReLU(inplace=true)
        -> bn1: batchnorm2d(eps=0.0001) -> record
    conv2: conv2d(planes, kernel=3, padding=1, bias=false) -> bn2: batchnorm2d(eps=0.0001)
        -> add(residual) -> use relu if not last -> record
    branch residual = (subsample(stride) -> pad_channels(planes // 4, planes // 4)) if stride != 1
}

network MammothResNet32(depth: int = 32) {
    input image(3)
    conv1: conv2d(16, kernel=3, padding=1, bias=false) -> relu: ReLU(inplace=true)
        -> bn_initial: batchnorm2d(eps=0.0001) -> record
    layer1: basic(16) * ((depth - 2) // 6)
    layer2: basic(32, stride=2), basic(32) * ((depth - 2) // 6 - 1)
    layer3: basic(64, stride=2), basic(64) * max((depth - 2) // 6 - 2, 0), basic(64, last=true)
    avgpool: avgpool2d(8) -> flatten
}
