# Multi-layer perceptron, reproducing CLArena's `MLP` (clarena.backbones.MLP).
network MLP(
    input_dim: int,
    hidden_dims: list[int],
    output_dim: int,
    activation_layer: activation? = ReLU,
    batch_normalization: bool = false,
    bias: bool = true,
    dropout: float? = none,
) {
    input features(input_dim)
    flatten
    for i, width in hidden_dims + [output_dim] {
        fc[i]: linear(width, bias=bias)
            -> fc_bn[i]: batchnorm1d() if batch_normalization
            -> fc_activation[i]: activation_layer()
            -> record
            -> (fc_dropout[i]: dropout(dropout) if dropout != none)
    }
}
