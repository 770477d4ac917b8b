include "mlp.cl"  # CLArena's HATMaskMLP (adds `gate`; batch_normalization: none, "shared", "independent")
backbone HATMaskMLP = MLP
mask hat()
