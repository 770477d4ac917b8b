include "mlp.cl"  # CLArena's WSNMaskMLP (no batch norm parameter)
backbone WSNMaskMLP = MLP
mask wsn()
