# A small Inception network following torchvision's GoogLeNet (pytorch/vision,
# torchvision/models/googlenet.py: BasicConv2d, Inception, GoogLeNet up to inception4a, no auxiliary
# heads), as a backbone ending at the pooled features: conv1 7x7/2 -> maxpool1 -> conv2 1x1 ->
# conv3 3x3 -> maxpool2 -> inception3a -> inception3b -> maxpool3 -> inception4a -> global average
# pool -> flatten. Max pools of stride 2 use ceil_mode (as torchvision's). Channel widths are
# torchvision's divided by `width_div` (1: torchvision's); `branch3_kernel` is the kernel of each
# Inception block's third branch (torchvision: 3; the paper: 5).
#
# BasicConv2d = conv (no bias) -> batch norm (eps 0.001) -> ReLU: the block `basic_conv` with the
# children `conv`, `bn`. An Inception block runs four branches on its input and concatenates their
# outputs on channels in the order branch1, branch2, branch3, branch4 (branch4 = a 3x3 stride-1
# max pool, ceil mode, then a 1x1 BasicConv2d).
#
# Same state_dict keys, in the same order, as the reference minus its optional head `fc` (absent in
# the tests' reference; the dropout before it is the heads' business too).
#
# Difference that changes no key and no value: BasicConv2d's functional ReLU is a stateless
# ReLU(inplace) module `relu` here.
block basic_conv(out: int, kernel: int, stride: int = 1, padding: int = 0) {
    conv: conv2d(out, kernel=kernel, stride=stride, padding=padding, bias=false) -> bn: batchnorm2d(eps=0.001)
        -> relu: ReLU(inplace=true) -> record
}

block inception(ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int, k: int) {
    branch1: basic_conv(ch1x1, 1)
    branch b2 = branch2: basic_conv(ch3x3red, 1), basic_conv(ch3x3, 3, padding=1)
    branch b3 = branch3: basic_conv(ch5x5red, 1), basic_conv(ch5x5, k, padding=k // 2)
    branch b4 = branch4: maxpool2d(3, stride=1, padding=1, ceil_mode=true), basic_conv(pool_proj, 1)
    concat(b2, b3, b4)
}

network InceptionNet(input_channels: int = 3, width_div: int = 1, branch3_kernel: int = 3) {
    input image(input_channels)
    conv1: basic_conv(64 // width_div, 7, stride=2, padding=3)
    maxpool1: maxpool2d(3, stride=2, ceil_mode=true)
    conv2: basic_conv(64 // width_div, 1)
    conv3: basic_conv(192 // width_div, 3, padding=1)
    maxpool2: maxpool2d(3, stride=2, ceil_mode=true)
    inception3a: inception(64 // width_div, 96 // width_div, 128 // width_div, 16 // width_div,
                           32 // width_div, 32 // width_div, branch3_kernel)
    inception3b: inception(128 // width_div, 128 // width_div, 192 // width_div, 32 // width_div,
                           96 // width_div, 64 // width_div, branch3_kernel)
    maxpool3: maxpool2d(3, stride=2, ceil_mode=true)
    inception4a: inception(192 // width_div, 96 // width_div, 208 // width_div, 16 // width_div,
                           48 // width_div, 64 // width_div, branch3_kernel)
    avgpool: adaptive_avgpool2d(1) -> flatten
}
