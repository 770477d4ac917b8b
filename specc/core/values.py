"""Values of the spec language and their types: what a parameter may hold, and how a Python value
passed to a constructor (or `-D name=value`) is checked against a parameter's declared type."""
from __future__ import annotations

from dataclasses import dataclass

from .layers import ACTIVATIONS

BASE_TYPES = {"int", "float", "bool", "str", "list", "activation"}


@dataclass(frozen=True)
class Activation:
    """An activation layer class: a torch.nn name from the catalogue, or a user's class object
    (only through constructor arguments, never from spec text)."""

    name: str
    cls: object = None  # a class object passed by a caller; None for catalogue names

    def __repr__(self) -> str:
        return f"nn.{self.name}" if self.cls is None else self.name


def type_name(t) -> str:
    inner = f"[{t.arg}]" if t.arg else ""
    return f"{t.name}{inner}{'?' if t.optional else ''}"


def coerce(value, type_, what: str):
    """Check `value` against declared type `type_` (an ast.TypeRef); returns the canonical value or
    raises TypeError with a message naming `what`."""
    if value is None:
        if type_.optional:
            return None
        raise TypeError(f"{what} must be {type_name(type_)}, not None")
    name = type_.name
    if name == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if name == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if name == "bool" and isinstance(value, bool):
        return value
    if name == "str" and isinstance(value, str):
        return value
    if name == "list" and isinstance(value, (list, tuple)):
        elem = type_.arg or "int"
        out = []
        for i, v in enumerate(value):
            if elem == "int" and not (isinstance(v, int) and not isinstance(v, bool)):
                raise TypeError(f"{what}[{i}] must be int, not {type(v).__name__}")
            if elem == "float" and not (isinstance(v, (int, float)) and not isinstance(v, bool)):
                raise TypeError(f"{what}[{i}] must be float, not {type(v).__name__}")
            out.append(float(v) if elem == "float" else v)
        return out
    if name == "activation":
        return as_activation(value, what)
    raise TypeError(f"{what} must be {type_name(type_)}, not {type(value).__name__} ({value!r})")


def as_activation(value, what: str) -> Activation:
    if isinstance(value, Activation):
        return value
    if isinstance(value, str):
        if value in ACTIVATIONS:
            return Activation(value)
        raise TypeError(f"{what}: unknown activation {value!r}; known: {', '.join(sorted(ACTIVATIONS))}")
    if isinstance(value, type):
        # torch.nn's own classes keep their catalogue name, so generated code can name them;
        # anything else is used as the class object it is.
        module = getattr(value, "__module__", "")
        if value.__name__ in ACTIVATIONS and module.startswith("torch.nn"):
            return Activation(value.__name__)
        return Activation(f"{module}.{value.__qualname__}", value)
    raise TypeError(f"{what} must be an activation class (such as nn.ReLU) or None, not {value!r}")


def parse_cli_value(text: str):
    """A `-D name=value` value: a literal of the spec language, parsed without evaluating code."""
    t = text.strip()
    low = t.lower()
    if low in ("none", "null"):
        return None
    if low == "true":
        return True
    if low == "false":
        return False
    if t.startswith("[") and t.endswith("]"):
        inner = t[1:-1].strip()
        return [parse_cli_value(x) for x in inner.split(",")] if inner else []
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'":
        return t[1:-1]
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        pass
    if t.startswith("nn."):
        t = t[3:]
    return t  # a bare word: a string (or an activation name, checked against the type)
