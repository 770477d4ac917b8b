"""Module containers as generated constructors fill them."""
from __future__ import annotations

import keyword
import re

from torch import nn

from . import positions

_PIECE = re.compile(r"[A-Za-z0-9_]+\Z")


def indexed(container: nn.ModuleList, index: int) -> nn.ModuleList:
    """`container`, checked to be filled at `index` next: a spec's `name[index]` elements must come
    in order 0, 1, 2, ... (as ModuleList.append fills it)."""
    if index != len(container):
        expected = len(container)
        at = positions.of_caller()
        raise ValueError(f"module list index {index} out of order: the next element is {expected}"
                         + (f" (at {at})" if at else ""))
    return container


def module_name(*pieces, factories: tuple = ()) -> str:
    """A computed module name (`fc{i + 1}` in a spec: `module_name("fc", i + 1)`): its literal pieces
    (checked by the compiler) and the values put in its braces, which must be ints >= 0; the name
    must be a Python identifier that is no keyword and does not start with two underscores, nor one
    of the block `factories` it may spell (specc.frontend.static_rules.factories_spelled_by)."""
    out = []
    for piece in pieces:
        if isinstance(piece, str):
            if not _PIECE.match(piece):
                raise ValueError(f"not a piece of a module name: {piece!r}")
        elif isinstance(piece, bool) or not isinstance(piece, int) or piece < 0:
            raise ValueError(f"a computed module name takes ints >= 0 in its braces, got {piece!r}")
        out.append(str(piece))
    name = "".join(out)
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("__") or not name.isascii():
        raise ValueError(f"{name!r} is not a module name")
    if name in factories:
        at = positions.of_caller()
        raise ValueError(f"module name '{name}' is taken by the generated class (the factory of block "
                         f"'{name[len('block_'):]}')" + (f" (at {at})" if at else ""))
    return name
