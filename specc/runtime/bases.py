r"""Every backbone base class, where generated code and users import them from (CLArena's
`clarena.backbones` holds the same names): `Backbone` and `CLBackbone` (specc/runtime/backbone.py)
and each masking scheme's base (`Scheme.base`, which its pass module under specc/runtime/schemes/
exports), gathered from the scheme registry so that a new scheme adds no line here.
"""

from __future__ import annotations

from specc.runtime.backbone import Backbone, CLBackbone
from specc.runtime.schemes import scheme_pass
from specc.schemes import SCHEMES

# {class name: class} of the schemes' bases, in the registry's order
SCHEME_BASES: dict[str, type] = {s.base: getattr(scheme_pass(s), s.base) for s in SCHEMES.values()}
globals().update(SCHEME_BASES)

__all__ = ["Backbone", "CLBackbone", "SCHEME_BASES", *SCHEME_BASES]
