# torchvision's resnet18 (torchvision/models/resnet.py), without its classifier: module names as
# torchvision's, so its state_dict keys are torchvision's (minus fc), and its module set too: each
# block owns one `relu`, called after its first batch norm and again after the residual add
# (`use relu`). Unlike CLArena's ResNets, the stride of a block sits on its first conv, and the
# projection shortcut is a conv followed by a batch norm (`downsample.0`, `downsample.1`). `width`
# scales the network (64 in torchvision).
block basic(planes: int, stride: int = 1) {
    conv1: conv2d(planes, kernel=3, stride=stride, padding=1, bias=false) -> bn1: batchnorm2d()
        -> relu: ReLU(inplace=true) -> record
    conv2: conv2d(planes, kernel=3, padding=1, bias=false) -> bn2: batchnorm2d()
        -> add(identity) -> use relu -> record
    branch identity = downsample: conv2d(planes, kernel=1, stride=stride, bias=false), batchnorm2d()
        if stride != 1 or in.channels != planes
}

network TorchvisionResNet18(input_channels: int = 3, width: int = 64) {
    input image(input_channels)
    conv1: conv2d(width, kernel=7, stride=2, padding=3, bias=false) -> bn1: batchnorm2d()
        -> relu: ReLU(inplace=true) -> record
    maxpool: maxpool2d(3, stride=2, padding=1)
    for i, scale in [1, 2, 4, 8] {
        layer{i + 1}: basic(scale * width, stride=1 if i == 0 else 2), basic(scale * width)
    }
    avgpool: adaptive_avgpool2d(1) -> flatten
}
