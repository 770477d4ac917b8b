# The residual blocks of CLArena's ResNets. They read the instantiating network's
# `activation_layer`, `batch_normalization` and `bias`; CLArena puts a block's stride on its 3x3 conv.

# Small block (ResNet-18/34): two 3x3 convs.
block small(width: int, stride: int = 1) {
    conv1: conv2d(width, kernel=3, stride=1, padding=1, bias=bias)
        -> conv_bn1: batchnorm2d() if batch_normalization -> conv_activation1: activation_layer() -> record
    conv2: conv2d(width, kernel=3, stride=stride, padding=1, bias=bias)
        -> conv_bn2: batchnorm2d() if batch_normalization
        -> add(shortcut) -> conv_activation2: activation_layer() -> record
    branch shortcut = identity_downsample: conv2d(width, kernel=1, stride=stride, bias=false)
        if in.channels != width or stride != 1
}

# Large (bottleneck) block (ResNet-50/101/152): 1x1, 3x3, 1x1 expanding to 4 * width.
block large(width: int, stride: int = 1) {
    conv1: conv2d(width, kernel=1, bias=bias)
        -> conv_bn1: batchnorm2d() if batch_normalization -> conv_activation1: activation_layer() -> record
    conv2: conv2d(width, kernel=3, stride=stride, padding=1, bias=bias)
        -> conv_bn2: batchnorm2d() if batch_normalization -> conv_activation2: activation_layer() -> record
    conv3: conv2d(4 * width, kernel=1, bias=bias)
        -> conv_bn3: batchnorm2d() if batch_normalization
        -> add(shortcut) -> conv_activation3: activation_layer() -> record
    branch shortcut = identity_downsample: conv2d(4 * width, kernel=1, stride=stride, bias=false)
        if in.channels != 4 * width or stride != 1
}
