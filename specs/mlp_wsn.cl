# CLArena's `WSNMaskMLP`: the MLP architecture with WSN parameter masks (no batch norm parameter).
include "mlp.cl"
backbone WSNMaskMLP = MLP
mask wsn()
