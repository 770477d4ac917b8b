include "mlp.cl"  # CLArena's CLMLP: the MLP as a continual-learning backbone
backbone CLMLP = continual MLP
