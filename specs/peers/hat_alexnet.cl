# The HAT paper's AlexNet-like network (joansj/hat, src/networks/alexnet_hat.py: Net; the plain
# parts), with the public code's module names c1, c2, c3, fc1, fc2: three convs (no padding, bias)
# of kernel input_size // 8, input_size // 10 and 2, each conv -> ReLU -> dropout -> 2x2 max pool
# (dropout BEFORE the pool; 0.2, 0.2, 0.5), then fc1, fc2 (hidden units) -> ReLU -> dropout 0.5.
# fc1's in_features (256 * smid * smid in the paper) is inferred. The widths are parameters
# (the paper: channels [64, 128, 256], hidden 2048).
#
# Same state_dict keys, in the same order, as the public model minus its heads `last` (a ModuleList
# of per-task Linear(hidden, n), left to the continual-learning heads); tests/test_peer_specs.py
# maps the keys by dropping `last.*`.
#
# As in the public code, ONE relu, ONE maxpool and two dropout modules (drop1: 0.2, drop2: 0.5) are
# called at several points (`use`). Difference that changes no key and no value: the public code
# registers them after c3 (relu, maxpool, drop1, drop2 come before fc1 in named_modules); a spec
# declares a module where it is first called.
# specs/alexnet.cl is the same network in CLArena's layout (conv1.., conv_bn.., conv_dropout..).
network HATAlexNet(
    input_channels: int = 3,
    input_size: int = 32,
    channels: list[int] = [64, 128, 256],
    hidden: int = 2048,
) {
    input image(input_channels, input_size, input_size)
    c1: conv2d(channels[0], kernel=input_size // 8) -> relu: ReLU() -> record
        -> drop1: dropout(0.2) -> maxpool: maxpool2d(2)
    c2: conv2d(channels[1], kernel=input_size // 10) -> use relu -> record -> use drop1 -> use maxpool
    c3: conv2d(channels[2], kernel=2) -> use relu -> record -> drop2: dropout(0.5) -> use maxpool
    flatten
    fc1: linear(hidden) -> use relu -> record -> use drop2
    fc2: linear(hidden) -> use relu -> record -> use drop2
}
