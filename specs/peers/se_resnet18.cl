# SE-ResNet-18 as moskomule/senet.pytorch builds it (senet/se_resnet.py: se_resnet18 = torchvision's
# ResNet with SEBasicBlock, [2, 2, 2, 2]; senet/se_module.py: SELayer), PLAIN, without the
# classification head `fc` (tests/test_peer_specs.py drops `fc.*`).
#
# SEBasicBlock registers conv1, bn1, relu, conv2, bn2, se, downsample; forward: conv1 -> bn1 -> relu
# -> conv2 -> bn2 -> se -> += residual (downsample(x) when present) -> relu (the block's one relu,
# used twice). SELayer(channel, reduction=16): avg_pool AdaptiveAvgPool2d(1), then
# fc = Sequential(Linear(c, c // r, bias=False), ReLU(inplace=True), Linear(c // r, c, bias=False),
# Sigmoid()); forward x * fc(avg_pool(x).view(b, c)).view(b, c, 1, 1).
#
# The SE layer is the block `se_layer`, instantiated as `se` inside the gate branch; its Sequential
# `fc` is the module list fc[0] .. fc[3] (the same state_dict keys: fc.0.weight, fc.2.weight). The
# gate's two linears are weighted layers of the block (their units are the gate's).
block se_layer(channel: int, reduction: int = 16) {
    avg_pool: adaptive_avgpool2d(1) -> flatten
    fc[0]: linear(channel // reduction, bias=false) -> fc[1]: ReLU(inplace=true)
        -> fc[2]: linear(channel, bias=false) -> fc[3]: Sigmoid()
}

block se_basic(planes: int, stride: int = 1, reduction: int = 16) {
    branch se_gate = se: se_layer(planes, reduction)
    conv1: conv2d(planes, kernel=3, stride=stride, padding=1, bias=false) -> bn1: batchnorm2d()
        -> relu: ReLU(inplace=true) -> record
    conv2: conv2d(planes, kernel=3, padding=1, bias=false) -> bn2: batchnorm2d()
        -> mul(se_gate) -> add(residual) -> use relu -> record
    branch residual = downsample: conv2d(planes, kernel=1, stride=stride, bias=false), batchnorm2d()
        if stride != 1 or in.channels != planes
}

network SEResNet18(input_channels: int = 3, width: int = 64, reduction: int = 16) {
    input image(input_channels)
    conv1: conv2d(width, kernel=7, stride=2, padding=3, bias=false) -> bn1: batchnorm2d()
        -> relu: ReLU(inplace=true) -> record
    maxpool: maxpool2d(3, stride=2, padding=1)
    for i, scale in [1, 2, 4, 8] {
        layer{i + 1}: se_basic(scale * width, stride=1 if i == 0 else 2, reduction=reduction),
            se_basic(scale * width, reduction=reduction)
    }
    avgpool: adaptive_avgpool2d(1) -> flatten
}
