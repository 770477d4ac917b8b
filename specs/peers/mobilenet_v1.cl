# MobileNet (v1) for CIFAR, as in kuangliu/pytorch-cifar (models/mobilenet.py: Block, MobileNet):
# a 3x3 stem, then one depthwise-separable block per configuration entry (a depthwise 3x3 conv,
# groups = its input channels, and a pointwise 1x1 conv, each followed by batch norm and ReLU), then
# avg_pool2d(x, 2). The backbone ends at the pooled features; the head `linear` is left to the
# continual-learning heads (tests/test_peer_specs.py drops `linear.*` from the reference's keys).
#
# The public configuration list mixes ints (a width, stride 1) and (width, stride) pairs; a spec's
# lists hold one type, so the configuration is two lists of the same length, `widths` and `strides`
# (defaults: the public cfg [64, (128, 2), 128, (256, 2), 256, (512, 2), 512 x 5, (1024, 2), 1024]).
#
# Differences from the public code that change no state_dict key and no value:
# * `layers` is an nn.Sequential there and an nn.ModuleList here (filled in a loop): same keys
#   `layers.<i>.conv1.weight`, ..., same order.
# * functional ReLUs are stateless ReLU modules (`relu`, `relu1`, `relu2`), functional
#   avg_pool2d(x, 2) an AvgPool2d(2) module (`avgpool`).
# * the stem width and input channels are parameters (public: 32 and 3).
block separable(width: int, stride: int = 1) {
    conv1: conv2d(in.channels, kernel=3, stride=stride, padding=1, groups=in.channels, bias=false)
        -> bn1: batchnorm2d() -> relu1: ReLU() -> record
    conv2: conv2d(width, kernel=1, bias=false) -> bn2: batchnorm2d() -> relu2: ReLU() -> record
}

network MobileNetV1(
    input_channels: int = 3,
    stem_width: int = 32,
    widths: list[int] = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024],
    strides: list[int] = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1],
) {
    input image(input_channels)
    conv1: conv2d(stem_width, kernel=3, padding=1, bias=false) -> bn1: batchnorm2d() -> relu: ReLU() -> record
    for i, width in widths {
        layers[i]: separable(width, stride=strides[i])
    }
    avgpool: avgpool2d(2) -> flatten
}
