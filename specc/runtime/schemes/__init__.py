"""Masking schemes' passes, one module each (the scheme's `runtime`, specc/schemes/): HAT (unit
masks), WSN (parameter masks), AmnesiacHAT (HAT plus backup backbones). Each offers
`install(network, PlainClass, ...)`, called by a masked class's constructor, a mixin with the
scheme's forward, `adopt` for `specc.mask`, its base class (`Scheme.base`), and, when `specc export`
can write it out, `export_class`, which returns an `ExportedClass`."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType


def scheme_of(module):
    """The scheme (specc.schemes.Scheme) whose base class `module` derives from, the most derived one
    (AmnesiacHAT before HAT), by the base's name: specc's or CLArena's (`--base clarena`). None for
    a module of no scheme."""
    from ...schemes import SCHEMES

    by_base = {s.base: s for s in SCHEMES.values()}
    return next((by_base[c.__name__] for c in type(module).__mro__ if c.__name__ in by_base), None)


def unit_masked(module) -> bool:
    """Whether `module` is a backbone of a scheme with unit masks, which it stores (`masks`)."""
    scheme = scheme_of(module)
    return scheme is not None and scheme.unit_masks


def scheme_pass(scheme) -> ModuleType:
    """The pass module of `scheme` (a specc.schemes.Scheme): specc.runtime.schemes.<scheme.runtime>."""
    return importlib.import_module(f"{__name__}.{scheme.runtime}")


@dataclass(frozen=True)
class ExportedClass:
    """What a scheme adds to the masked class that `specc export` writes (specc/emit/export.py writes
    the rest: the class line with the scheme's base, the per-task batch norms, the plain network's
    masked forward as `_masked_forward`). Lines are source lines of the class body, indented."""
    init: list[str]  # the constructor's body: the base's constructor call, then its per-layer state
    forward_head: list[str]  # `def forward(...)` and the masks it computes, before the `bn_task = ...` line
    forward_tail: list[str]  # after it: the `_masked_forward` call and the return
    members: list[str] = field(default_factory=list)  # class attributes, before the constructor
    methods: list[str] = field(default_factory=list)  # methods after the others
    sources: list[str] = field(default_factory=list)  # module-level source the methods call
