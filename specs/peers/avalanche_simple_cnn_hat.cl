# Avalanche's SimpleCNN with HAT unit masks: each conv's mask on its output, before its ReLU.
include "avalanche_simple_cnn.cl"
backbone HATMaskSimpleCNN = SimpleCNN
mask hat(gate = "sigmoid")
