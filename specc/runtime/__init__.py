"""The runtime of generated backbones: base classes with the API of CLArena's (Backbone,
CLBackbone, and each masking scheme's: specc.runtime.bases), the WSN gate, the helpers
generated constructors call, and the masking schemes (specc.runtime.schemes), which trace a
network's forward and rewrite it.

Imports torch; never imports the front end (specc.frontend) or lark."""
from __future__ import annotations

from . import shapes
from .arguments import check_argument, ignore_unknown
from .bases import SCHEME_BASES, Backbone, CLBackbone
from .gates import PercentileLayerParameterMaskingByScore, quantile_threshold
from .modules import indexed, module_name

globals().update(SCHEME_BASES)  # HATMaskBackbone, ...: every scheme's base, from the registry

__all__ = [
    "Backbone", "CLBackbone", *SCHEME_BASES,
    "PercentileLayerParameterMaskingByScore", "quantile_threshold", "check_argument", "ignore_unknown", "indexed", "module_name", "shapes",
]
