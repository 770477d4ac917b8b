# Avalanche's SimpleCNN (ContinualAI/avalanche, avalanche/models/simple_cnn.py), as a backbone ending
# at the flattened features of `features` (64 values): one container `features` whose children are
# numbered 0..15 in order, weighted layers, ReLUs, pools and dropouts alike:
#   0 conv 3x3 pad 1 (32), 1 ReLU, 2 conv 3x3 (32), 3 ReLU, 4 maxpool 2, 5 dropout 0.25,
#   6 conv 3x3 pad 1 (64), 7 ReLU, 8 conv 3x3 (64), 9 ReLU, 10 maxpool 2, 11 dropout 0.25,
#   12 conv 1x1 (64), 13 ReLU, 14 adaptive max pool 1, 15 dropout 0.25.
# All convs have a bias; ReLUs are in place.
#
# Same state_dict keys, in the same order, as Avalanche's model minus its head `classifier` (a
# one-element Sequential holding Linear(64, num_classes), left to the continual-learning heads);
# tests/test_peer_specs.py drops `classifier.*`.
#
# Difference that changes no key and no value: `features` is an nn.Sequential there and an
# nn.ModuleList here (its children written one by one, so that each conv's activation can be
# recorded after its ReLU).
network SimpleCNN(input_channels: int = 3) {
    input image(input_channels)
    features[0]: conv2d(32, kernel=3, padding=1) -> features[1]: ReLU(inplace=true) -> record
    features[2]: conv2d(32, kernel=3) -> features[3]: ReLU(inplace=true) -> record
        -> features[4]: maxpool2d(2, stride=2) -> features[5]: dropout(0.25)
    features[6]: conv2d(64, kernel=3, padding=1) -> features[7]: ReLU(inplace=true) -> record
    features[8]: conv2d(64, kernel=3) -> features[9]: ReLU(inplace=true) -> record
        -> features[10]: maxpool2d(2, stride=2) -> features[11]: dropout(0.25)
    features[12]: conv2d(64, kernel=1) -> features[13]: ReLU(inplace=true) -> record
        -> features[14]: adaptive_maxpool2d(1) -> features[15]: dropout(0.25)
    flatten
}
