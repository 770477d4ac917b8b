"""Constructor arguments of generated classes, checked against the spec's declared types.

The same rules as the front end's (specc.core.values.coerce): an int where an int is declared, a
number for a float, a list of ints for list[int] (any sequence: hydra passes an omegaconf
ListConfig), None only for `T?`. An activation is a class (or any callable making a module, such
as a functools.partial from a hydra config) or the name of a torch.nn activation."""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import NamedTuple

from ..core.values import Activation, coerce
from . import positions


class _Type(NamedTuple):
    name: str
    arg: str | None
    optional: bool


def _parse(type_text: str) -> _Type:
    optional = type_text.endswith("?")
    text = type_text.rstrip("?")
    if "[" in text:
        name, arg = text[:-1].split("[")
        return _Type(name, arg, optional)
    return _Type(text, None, optional)


def check_argument(name: str, value, type_text: str):
    """`value` as the parameter `name` of declared type `type_text` ("int", "list[int]", "str?",
    "activation?", ...) takes it; TypeError naming the parameter otherwise."""
    t = _parse(type_text)
    if t.name == "list" and isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        value = list(value)
    if t.name == "activation" and value is not None and callable(value) and not isinstance(value, type):
        return value  # a factory (functools.partial, ...): called once per activation module
    try:
        checked = coerce(value, t, f"argument '{name}'")
    except TypeError as e:
        where = positions.of_caller()
        raise TypeError(f"{e} (declared at {where})" if where else str(e)) from None
    if isinstance(checked, Activation):
        if checked.cls is not None:
            return checked.cls
        from torch import nn

        return getattr(nn, checked.name)
    return checked


def ignore_unknown(class_name: str, unknown: dict) -> None:
    """`--base clarena` classes only: keyword arguments no parameter takes are accepted, as CLArena's
    constructors accept them (its Backbone drops them silently), with a warning naming each, since
    such a key is often a misspelling (`batch_normalisation`) that changes nothing."""
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        warnings.warn(f"{class_name} ignores the keyword argument(s) {names}: no parameter of it has that name "
                      "(CLArena's classes ignore them silently)", UserWarning, stacklevel=3)
