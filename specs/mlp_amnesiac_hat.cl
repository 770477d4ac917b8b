# CLArena's `AmnesiacHATMLP`: HATMaskMLP plus backup backbones (plain MLPs) for unlearning.
include "mlp.cl"
backbone AmnesiacHATMLP = MLP
mask amnesiac_hat()
