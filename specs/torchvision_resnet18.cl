# torchvision's resnet18 (torchvision/models/resnet.py), without its classifier: module names as
# torchvision's, so its state_dict keys are torchvision's (minus fc). Unlike CLArena's ResNets, the
# stride of a block sits on its first conv, and the projection shortcut is a conv followed by a
# batch norm (`downsample.0`, `downsample.1`). `width` scales the network (64 in torchvision).
block basic(planes: int, stride: int = 1) {
    conv1: conv2d(planes, kernel=3, stride=stride, padding=1, bias=false) -> bn1: batchnorm2d()
        -> relu: ReLU() -> record
    conv2: conv2d(planes, kernel=3, padding=1, bias=false) -> bn2: batchnorm2d()
        -> add(identity) -> relu2: ReLU() -> record
    branch identity = downsample: conv2d(planes, kernel=1, stride=stride, bias=false), batchnorm2d()
        if stride != 1 or in.channels != planes
}

network TorchvisionResNet18(input_channels: int = 3, width: int = 64) {
    input image(input_channels)
    conv1: conv2d(width, kernel=7, stride=2, padding=3, bias=false) -> bn1: batchnorm2d()
        -> relu: ReLU() -> record
    maxpool: maxpool2d(3, stride=2, padding=1)
    layer1: basic(width) * 2
    layer2: basic(2 * width, stride=2), basic(2 * width)
    layer3: basic(4 * width, stride=2), basic(4 * width)
    layer4: basic(8 * width, stride=2), basic(8 * width)
    avgpool: adaptive_avgpool2d(1) -> flatten
}
