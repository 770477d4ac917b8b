# The WSN paper's reduced ResNet-18 (ihaeyong/WSN, networks/resnet18.py: SubnetBasicBlock,
# SubnetResNet, SubnetResNet18(taskcla, nf=32); the scripts use nf=20), PLAIN counterpart, 3x32x32
# input: a 3x3 stem (nf filters), four stages of two basic blocks (nf, 2nf, 4nf, 8nf; first-block
# strides 1, 2, 2, 2, on the block's first conv), every conv bias-free, every batch norm
# affine=False, track_running_stats=False (no parameters, no buffers, batch statistics in train and
# eval); then avg_pool2d(x, 2), leaving a 2x2 map: 8 nf * 4 features.
#
# The projection shortcut is `conv3` -> `bn3`, attributes of the block (siblings of conv1 / conv2),
# present when the stride is not 1 or the width changes. Same state_dict keys, in the same order, as
# the public model minus its task heads `last` (tests/test_peer_specs.py drops `last.*`).
#
# Differences from the public code that change no state_dict key and no value: functional ReLUs are
# stateless ReLU modules (relu, relu1, relu2), functional avg_pool2d(x, 2) an AvgPool2d(2) module;
# the public forward's x.reshape(batch, 3, 32, 32) is the spec's input shape (3, 32, 32).
block subnet_basic(planes: int, stride: int = 1) {
    conv1: conv2d(planes, kernel=3, stride=stride, padding=1, bias=false)
        -> bn1: batchnorm2d(affine=false, track_running_stats=false) -> relu1: ReLU() -> record
    conv2: conv2d(planes, kernel=3, padding=1, bias=false)
        -> bn2: batchnorm2d(affine=false, track_running_stats=false)
        -> add(shortcut) -> relu2: ReLU() -> record
    branch shortcut = (conv3: conv2d(planes, kernel=1, stride=stride, bias=false)
        -> bn3: batchnorm2d(affine=false, track_running_stats=false)) if stride != 1 or in.channels != planes
}

network WSNResNet18(nf: int = 32) {
    input image(3, 32, 32)
    conv1: conv2d(nf, kernel=3, padding=1, bias=false)
        -> bn1: batchnorm2d(affine=false, track_running_stats=false) -> relu: ReLU() -> record
    layer1: subnet_basic(nf), subnet_basic(nf)
    layer2: subnet_basic(2 * nf, stride=2), subnet_basic(2 * nf)
    layer3: subnet_basic(4 * nf, stride=2), subnet_basic(4 * nf)
    layer4: subnet_basic(8 * nf, stride=2), subnet_basic(8 * nf)
    avgpool: avgpool2d(2) -> flatten
}
