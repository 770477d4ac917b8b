"""A spec checked without its constructor's arguments: parameters without a default take `-D`
values, else probe values (the same for `check`, `show`, `graph` and `compile`, which checks every
spec this way before writing anything)."""
from __future__ import annotations

from .elaborate import elaborate
from .facts import analyse
from .ir import Network
from .load import Program
from .masking import class_params

PROBE_VALUES = {"int": 64, "float": 0.5, "bool": False, "str": "probe", "list": [64], "activation": "ReLU"}


def probe_values(program: Program, overrides: dict) -> dict:
    """Values for the parameters that have neither a default nor a `-D` value."""
    return {p.name: PROBE_VALUES[p.type.name] for p in class_params(program)
            if p.default is None and p.name not in overrides}


def probe(program: Program, overrides: dict | None = None, image_size: int | None = None) -> Network:
    """The analysed IR of `program` for its defaults, `overrides` and probe values."""
    overrides = overrides or {}
    return analyse(elaborate(program, {}, {**probe_values(program, overrides), **overrides}, image_size=image_size))
