# A DenseNet-BC following torchvision's DenseNet (pytorch/vision, torchvision/models/densenet.py:
# _DenseLayer, _DenseBlock, _Transition, DenseNet), as a backbone ending at the pooled features:
# `features` = conv0 7x7/2 -> norm0 -> relu0 -> pool0 (3x3/2, padding 1), then dense blocks
# denseblock1.. with a transition after each but the last, then norm5; after `features` a ReLU, a
# global average pool and flatten. torchvision's densenet121: growth 32, blocks [6, 12, 24, 16],
# 64 initial features, bn_size 4.
#
# A dense layer (pre-activation bottleneck: norm1 -> relu1 -> conv1 1x1 (bn_size * growth) ->
# norm2 -> relu2 -> conv2 3x3 (growth) [-> dropout]) reads the concatenation of its block's input
# and every earlier layer's output; torchvision keeps the list and concatenates it for each layer,
# here each layer appends its output to the running concatenation (`concat(new)`): the same channels
# in the same order, hence the same values. A transition: norm -> relu -> conv 1x1 (channels // 2)
# -> avg pool 2x2.
#
# Same state_dict keys, in the same order, as the reference minus its optional head `classifier`
# (absent in the tests' reference).
#
# No HAT variant: specc refuses `mask hat` on this pre-activation network (a dense layer's norm1, a
# batch norm on the concatenation, would turn a masked-out unit's zero into a non-zero value before
# the next conv; specc/analysis/mask_points.py), and HAT's paper defines no mask point for it.
#
# Differences that change no key and no value: torchvision's functional dropout inside a dense
# layer (only when drop_rate > 0) is a Dropout module `dropout`; the functional ReLU and
# adaptive_avg_pool2d after `features` are modules `relu` and `avgpool`.
block dense_layer(growth_rate: int, bn_size: int, drop_rate: float) {
    branch new = norm1: batchnorm2d() -> relu1: ReLU(inplace=true)
        -> conv1: conv2d(bn_size * growth_rate, kernel=1, bias=false) -> norm2: batchnorm2d()
        -> relu2: ReLU(inplace=true) -> record
        -> conv2: conv2d(growth_rate, kernel=3, padding=1, bias=false) -> record
        -> (dropout: dropout(drop_rate) if drop_rate > 0)
    concat(new)
}

block dense_block(num_layers: int, growth_rate: int, bn_size: int, drop_rate: float) {
    for j in range(num_layers) {
        denselayer{j + 1}: dense_layer(growth_rate, bn_size, drop_rate)
    }
}

block transition() {
    norm: batchnorm2d() -> relu: ReLU(inplace=true) -> conv: conv2d(in.channels // 2, kernel=1, bias=false)
        -> record -> pool: avgpool2d(2, stride=2)
}

block dense_features(growth_rate: int, block_config: list[int], num_init_features: int, bn_size: int,
                     drop_rate: float) {
    conv0: conv2d(num_init_features, kernel=7, stride=2, padding=3, bias=false) -> norm0: batchnorm2d()
        -> relu0: ReLU(inplace=true) -> record -> pool0: maxpool2d(3, stride=2, padding=1)
    for i, num_layers in block_config {
        denseblock{i + 1}: dense_block(num_layers, growth_rate, bn_size, drop_rate)
        (transition{i + 1}: transition()) if i != len(block_config) - 1
    }
    norm5: batchnorm2d()
}

network DenseNet(
    growth_rate: int = 32,
    block_config: list[int] = [6, 12, 24, 16],
    num_init_features: int = 64,
    bn_size: int = 4,
    drop_rate: float = 0.0,
    input_channels: int = 3,
) {
    input image(input_channels)
    features: dense_features(growth_rate, block_config, num_init_features, bn_size, drop_rate)
    relu: ReLU() -> avgpool: adaptive_avgpool2d(1) -> flatten
}
