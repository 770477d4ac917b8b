"""The masking schemes specc knows, one declaration each.

A scheme is its declaration here (torch-free: what the front end, the emitter, `show` and `graph`
need to know: options, how it changes the constructor, its classes' names, the attributes it keeps)
and its pass under specc/runtime/schemes/ (torch: the rewrite of the traced forward, the masked
forward, its base class, what `specc export` writes of it). The front end never imports torch, so
the two cannot share a file. Adding a scheme is those two and a line in SCHEMES below; the modules
that serve every scheme read this registry (README, "Adding a masking scheme", lists where a
scheme's name still appears, and why).
"""
from __future__ import annotations

from . import amnesiac_hat, hat, wsn
from .declaration import BN_MODES, Option, Scheme, batch_norm_mode

SCHEMES: dict[str, Scheme] = {s.name: s for s in (hat.SCHEME, wsn.SCHEME, amnesiac_hat.SCHEME)}

__all__ = ["BN_MODES", "Option", "SCHEMES", "Scheme", "batch_norm_mode"]
