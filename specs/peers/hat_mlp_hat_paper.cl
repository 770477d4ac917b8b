# The HAT paper's MLP with HAT unit masks where the paper's code multiplies them: after each layer's
# ReLU and dropout (`point="chain_end"`). Bit for bit the public code's forward and gradients, in
# training (dropout on) too. hat_mlp_hat.cl is the same network with CLArena's placement.
include "hat_mlp.cl"
backbone HATMaskHATMLP = HATMLP
mask hat(gate = "sigmoid", point = "chain_end")
