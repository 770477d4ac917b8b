# The WSN paper's AlexNet (ihaeyong/WSN, networks/alexnet.py: SubnetAlexNet_norm, the AlexNet its
# CIFAR-100 and five-datasets scripts import), PLAIN counterpart: three bias-free convs (64, 128,
# 256 filters; kernels 4, 3, 2; no padding), each conv -> batch norm -> ReLU -> dropout -> 2x2 max
# pool (dropout 0.2, 0.2, 0.5, before the pool); then fc1, fc2 (2048 units, bias-free) -> batch norm
# -> ReLU -> dropout 0.5. Every batch norm is affine=False, track_running_stats=False: no
# parameters, no buffers, the current batch's statistics in train AND eval mode. fc1's in_features
# is inferred. Widths and the input size are parameters (public: channels [64, 128, 256], hidden
# 2048, 3x32x32 input).
#
# Same state_dict keys, in the same order, as the public model minus its task heads `last` (a
# ModuleList of bias-free Linear(hidden, n)), left to the continual-learning heads;
# tests/test_peer_specs.py maps the keys by dropping `last.*`.
#
# As in the public code, ONE relu, ONE maxpool and two dropouts (drop1: 0.2, drop2: 0.5) are called
# at several points (`use`). Difference that changes no key and no value: the public code registers
# them after bn3 (before fc1 in named_modules); a spec declares a module where it is first called.
network WSNAlexNet(
    input_channels: int = 3,
    input_size: int = 32,
    channels: list[int] = [64, 128, 256],
    hidden: int = 2048,
) {
    input image(input_channels, input_size, input_size)
    conv1: conv2d(channels[0], kernel=4, bias=false)
        -> bn1: batchnorm2d(affine=false, track_running_stats=false) -> relu: ReLU() -> record
        -> drop1: dropout(0.2) -> maxpool: maxpool2d(2)
    conv2: conv2d(channels[1], kernel=3, bias=false)
        -> bn2: batchnorm2d(affine=false, track_running_stats=false) -> use relu -> record
        -> use drop1 -> use maxpool
    conv3: conv2d(channels[2], kernel=2, bias=false)
        -> bn3: batchnorm2d(affine=false, track_running_stats=false) -> use relu -> record
        -> drop2: dropout(0.5) -> use maxpool
    flatten
    fc1: linear(hidden, bias=false)
        -> bn4: batchnorm1d(affine=false, track_running_stats=false) -> use relu -> record -> use drop2
    fc2: linear(hidden, bias=false)
        -> bn5: batchnorm1d(affine=false, track_running_stats=false) -> use relu -> record -> use drop2
}
