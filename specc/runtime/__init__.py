"""Runtime support of generated backbones: CLArena-compatible base classes and the WSN gate."""

from specc.runtime.base import (
    AmnesiacHATBackbone,
    Backbone,
    CLBackbone,
    HATMaskBackbone,
    WSNMaskBackbone,
)
from specc.runtime.wsn_gate import PercentileLayerParameterMaskingByScore, quantile_threshold

__all__ = [
    "Backbone",
    "CLBackbone",
    "HATMaskBackbone",
    "AmnesiacHATBackbone",
    "WSNMaskBackbone",
    "PercentileLayerParameterMaskingByScore",
    "quantile_threshold",
]
