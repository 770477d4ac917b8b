# CLArena's `CLMLP`: the MLP architecture as a continual-learning backbone.
include "mlp.cl"
backbone CLMLP = continual MLP
