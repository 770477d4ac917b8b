# The AlexNet-like network of the HAT paper (Serra et al., 2018, Sec. 4): three convolutions of 64,
# 128 and 256 filters with kernel sizes input_size // 8, input_size // 10 and 2, each followed by
# ReLU, dropout (0.2, 0.2, 0.5) and 2x2 max pooling; then two fully connected layers of 2048 units
# (the second one `output_dim` wide) with ReLU and dropout 0.5.
network AlexNet(
    input_channels: int = 3,
    input_size: int = 32,
    output_dim: int = 2048,
    activation_layer: activation? = ReLU,
    batch_normalization: bool = false,
    bias: bool = true,
) {
    input image(input_channels, input_size, input_size)
    conv1: conv2d(64, kernel=input_size // 8, bias=bias)
        -> conv_bn1: batchnorm2d() if batch_normalization
        -> conv_activation1: activation_layer() -> record
        -> conv_dropout1: dropout(0.2)
        -> conv_pool1: maxpool2d(2)
    conv2: conv2d(128, kernel=input_size // 10, bias=bias)
        -> conv_bn2: batchnorm2d() if batch_normalization
        -> conv_activation2: activation_layer() -> record
        -> conv_dropout2: dropout(0.2)
        -> conv_pool2: maxpool2d(2)
    conv3: conv2d(256, kernel=2, bias=bias)
        -> conv_bn3: batchnorm2d() if batch_normalization
        -> conv_activation3: activation_layer() -> record
        -> conv_dropout3: dropout(0.5)
        -> conv_pool3: maxpool2d(2)
    flatten
    fc1: linear(2048, bias=bias)
        -> fc_bn1: batchnorm1d() if batch_normalization
        -> fc_activation1: activation_layer() -> record
        -> fc_dropout1: dropout(0.5)
    fc2: linear(output_dim, bias=bias)
        -> fc_bn2: batchnorm1d() if batch_normalization
        -> fc_activation2: activation_layer() -> record
        -> fc_dropout2: dropout(0.5)
}
