# The HAT paper's AlexNet-like network with HAT unit masks, the public code's embeddings ec1..ec3,
# efc1, efc2 being task_embedding_t["c1"] .. ["fc2"]. specc masks a layer's units before its ReLU;
# the public code multiplies after ReLU, dropout and max pooling. For masks >= 0 the two are the
# same function (ReLU, pooling and dropout's scaling commute with a non-negative per-unit factor):
# bit for bit without dropout (eval), equal up to rounding order with it (train);
# hat_alexnet_hat_paper.cl (point="chain_end") is the paper's placement, bit for bit in training too.
include "hat_alexnet.cl"
backbone HATMaskHATAlexNet = HATAlexNet
mask hat(gate = "sigmoid")
