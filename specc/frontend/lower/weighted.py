"""Which layers are weighted layers (the names in `weighted_layer_names`, the layers `record` and the
masking schemes refer to), decided once for the elaborator and the source writer."""
from __future__ import annotations

from ...core.layers import OPS


def weighted_layer(op_name: str, branch, weights_branches: bool = False) -> bool:
    """Whether a layer `op_name` with a module is a weighted layer: a weighted kind (a projection:
    linear, conv) on the main path (`branch` False) or on a parallel branch ("parallel": joined by
    concat or mul); on a shortcut ("shortcut": joined by add) only when the masking scheme weights
    branches, which the plain class never does (its scheme's runtime pass adds them)."""
    entry = OPS.get(op_name)
    return (entry is not None and entry.torch_class is not None and entry.weighted
            and (weights_branches or branch != "shortcut"))
