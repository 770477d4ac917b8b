include "mlp.cl"  # CLArena's AmnesiacHATMLP: HAT plus backup backbones (plain MLPs) for unlearning
backbone AmnesiacHATMLP = MLP
mask amnesiac_hat()
