"""What a masking scheme declares about itself (see specc/schemes/__init__.py)."""
from __future__ import annotations

from dataclasses import dataclass

# The values of a masked class's `batch_normalization` parameter, as in CLArena: no batch norm, one
# shared by all tasks, or a copy per task.
BN_MODES = (None, "shared", "independent")


def batch_norm_mode(value):
    """A masked class's `batch_normalization` as one of BN_MODES. False is None: CLArena's classes
    take it as "no batch norm" (they test `== "shared" or == "independent"`), and its author's own
    configs write it (`batch_normalization: false`). ValueError naming the value otherwise."""
    if value is False:
        return None
    if isinstance(value, bool) or value not in BN_MODES:
        raise ValueError(f"batch_normalization must be None (or False), 'shared' or 'independent', not {value!r}")
    return value


@dataclass(frozen=True)
class Option:
    """An option of the `mask SCHEME(...)` declaration (a literal: str, bool, or none where the type
    ends in `?`), and of `specc.mask(model, SCHEME, ...)`."""
    name: str
    type: str  # "str", "str?" or "bool"
    default: object
    choices: tuple = ()  # the values allowed, when not any value of the type

    def problem(self, value) -> str | None:
        """Why `value` cannot be this option's value, or None."""
        shown = "none" if value is None else repr(value)
        if not ((value is None and self.type.endswith("?"))
                or isinstance(value, {"str": str, "str?": str, "bool": bool}[self.type])):
            words = {"str?": "a string or none", "str": "a string", "bool": "true or false"}[self.type]
            return f"option '{self.name}' must be {words}, got {shown}"
        if value is not None and self.choices and value not in self.choices:
            allowed = " or ".join("none" if c is None else repr(c) for c in self.choices)
            return f"{self.name} must be {allowed}, got {shown}"
        return None


@dataclass(frozen=True)
class Scheme:
    name: str  # as written in `mask NAME(...)`
    title: str  # as people write it: "HAT"
    summary: str  # what it adds to the network, for docstrings: "HAT's unit masks"
    options: tuple[Option, ...]
    runtime: str  # its module under specc.runtime.schemes
    mixin: str  # the class in that module that gives the masked forward
    base: str  # its backbone base class (specc.runtime.bases, or clarena.backbones with --base clarena)
    class_prefix: str  # of the masked classes specc.mask makes: "HATMask" + the model's class name
    # The plain network before the base class in the masked class's bases: CLArena's
    # WSNMaskMLP(MLP, WSNMaskBackbone) registers its score dicts after the network's layers,
    # HATMaskMLP(HATMaskBackbone, MLP) its embeddings dict before.
    plain_first: bool = False
    unit_masks: bool = False  # masks on units (mask points in the forward, `gate` parameter)
    weight_masks: bool = False  # masks on parameters (scores per weight)
    backups: bool = False  # backup backbones (AmnesiacHAT)
    # Every linear/conv is weighted, shortcut projections too: WSN scores every parameter, since a
    # parameter left out of the masks is a source of forgetting. (HAT: the `protect_shortcuts` option.)
    weights_branches: bool = False
    # Constructor parameters added after the network's own, with their defaults: (name, type, default).
    extra_params: tuple[tuple[str, str, object], ...] = ()
    gates: tuple[str, ...] = ()  # the gate functions of a unit-mask scheme; the first is `specc.mask`'s default
    # Attributes its base class and pass keep on the backbone (a spec's module may not take them;
    # `check` names the scheme). Those of a scheme it builds on (AmnesiacHAT on HAT) are that one's.
    attributes: tuple[str, ...] = ()
    maskable: str | None = None  # why `specc.mask` cannot apply it to a hand-written model, if it cannot
    exportable: str | None = None  # why `specc export` cannot write it out, if it cannot
