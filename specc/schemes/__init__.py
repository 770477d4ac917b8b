"""The masking schemes specc knows, one declaration each.

A scheme is two files: its declaration here (torch-free: what the front end, the emitter, `show`
and `graph` need to know: options, how it changes the constructor, its classes' names) and its pass
under specc/runtime/schemes/ (torch: the rewrite of the traced forward and the masked forward). The
front end never imports torch, so the two cannot share a file. Adding a scheme is those two files
and a line in SCHEMES below; nothing else names a scheme.
"""
from __future__ import annotations

from . import amnesiac_hat, hat, wsn
from .declaration import BN_MODES, Option, Scheme, batch_norm_mode

SCHEMES: dict[str, Scheme] = {s.name: s for s in (hat.SCHEME, wsn.SCHEME, amnesiac_hat.SCHEME)}

__all__ = ["BN_MODES", "Option", "SCHEMES", "Scheme", "batch_norm_mode"]
