# The HAT paper's MLP with HAT unit masks (the public code's efc1.. embeddings are
# task_embedding_t["fc1"], ...). specc masks a layer's units before its ReLU; the public code after
# the ReLU and the dropout: for masks >= 0 the same function, bit for bit without dropout (eval);
# hat_mlp_hat_paper.cl (point="chain_end") is the paper's placement, bit for bit in training too.
include "hat_mlp.cl"
backbone HATMaskHATMLP = HATMLP
mask hat(gate = "sigmoid")
