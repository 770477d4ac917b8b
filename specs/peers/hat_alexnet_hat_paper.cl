# The HAT paper's AlexNet-like network with HAT unit masks where the paper's code multiplies them:
# after each layer's ReLU, dropout and max pooling (`point="chain_end"`: at the end of the chain of
# unit-for-unit ops that follows the layer). Bit for bit the public code's forward and gradients,
# in training (dropout on) too. hat_alexnet_hat.cl is the same network with CLArena's placement.
include "hat_alexnet.cl"
backbone HATMaskHATAlexNet = HATAlexNet
mask hat(gate = "sigmoid", point = "chain_end")
