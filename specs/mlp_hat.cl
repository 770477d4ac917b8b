# CLArena's `HATMaskMLP`: the MLP architecture with HAT unit masks.
# The mask adds the `gate` parameter and turns `batch_normalization` into none / "shared" / "independent".
include "mlp.cl"
backbone HATMaskMLP = MLP
mask hat()
