"""Values of the spec language and their types: what a parameter may hold, and how a Python value
passed to a constructor (or `-D name=value`) is checked against a parameter's declared type."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .activations import ACTIVATIONS
from .limits import INT_BITS, LIST_LENGTH, int_in_range

BASE_TYPES = {"int", "float", "bool", "str", "list", "activation"}


@dataclass(frozen=True)
class Activation:
    """An activation layer class: a torch.nn name from the catalogue, or a user's class object
    (only through constructor arguments, never from spec text)."""

    name: str
    cls: object = None  # a class object passed by a caller; None for catalogue names

    def __repr__(self) -> str:
        return f"nn.{self.name}" if self.cls is None else self.name


@dataclass(frozen=True)
class BlockRef:
    """The value of a block-typed parameter: a block defined in the spec, by name. Fixed when the
    spec is compiled (a default or a backbone's binding), never a constructor argument."""

    name: str

    def __repr__(self) -> str:
        return self.name


def type_name(t) -> str:
    inner = f"[{t.arg}]" if t.arg else ""
    return f"{t.name}{inner}{'?' if t.optional else ''}"


_WORDS = {"int": "an int", "float": "a number", "bool": "true or false", "str": "a string",
          "activation": "an activation class (such as ReLU)"}
_ELEMENT_WORDS = {"int": "ints", "float": "numbers"}


def type_words(type_, declared: bool = False) -> str:
    """A type in words ("a list of ints or none"); with `declared`, followed by the notation the
    spec declared it with ("a list of ints (list[int])")."""
    if type_.name == "list":
        words = f"a list of {_ELEMENT_WORDS.get(type_.arg or 'int', type_.arg or 'int')}"
    else:
        words = _WORDS.get(type_.name, type_.name)
    if type_.optional:
        words += " or none"
    return f"{words} ({type_name(type_)})" if declared else words


def _describe(value) -> str:
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"a list of {len(value):,} elements"
    if isinstance(value, int) and not isinstance(value, bool) and not int_in_range(value):
        return f"int (too large: {value.bit_length()} bits)"  # repr() refuses more than 4300 digits
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + '...'
    if isinstance(value, tuple):  # a row of a loop's table: its own parentheses suffice
        return f"a tuple {text}"
    return f"{type(value).__name__} ({text})"


def _number(v, what: str):
    """A number a parameter takes: ints below 2**63 in magnitude, floats finite."""
    if isinstance(v, float) and not math.isfinite(v):
        raise TypeError(f"{what} must be a finite number, not {v!r}")
    if isinstance(v, int) and not int_in_range(v):
        raise TypeError(f"{what} is too large (limit: below 2**{INT_BITS} in magnitude)")
    return v


def coerce(value, type_, what: str, declared: bool = True):
    """Check `value` against type `type_` (an ast.TypeRef); returns the canonical value or raises
    TypeError with a message naming `what`. `declared`: the type was written in the spec (messages
    then also show its notation, e.g. list[int]); else it is a builtin's, said in words only."""
    if value is None:
        if type_.optional:
            return None
        raise TypeError(f"{what} must be {type_words(type_, declared)}, not none")
    name = type_.name
    if name == "int" and isinstance(value, int) and not isinstance(value, bool):
        return _number(value, what)
    if name == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, int) and not int_in_range(value):
            return _number(value, what)
        return _number(float(value), what)
    if name == "bool" and isinstance(value, bool):
        return value
    if name == "str" and isinstance(value, str):
        return value
    if name == "list" and isinstance(value, (list, tuple)):
        elem = type_.arg or "int"
        if len(value) > LIST_LENGTH:
            raise TypeError(f"{what} is too long: {len(value):,} elements (limit {LIST_LENGTH:,})")
        out = []
        for i, v in enumerate(value):
            if elem == "int" and not (isinstance(v, int) and not isinstance(v, bool)):
                raise TypeError(f"{what}[{i}] must be an int, not {_describe(v)}")
            if elem == "float" and not (isinstance(v, (int, float)) and not isinstance(v, bool)):
                raise TypeError(f"{what}[{i}] must be a number, not {_describe(v)}")
            v = _number(v, f"{what}[{i}]")
            out.append(_number(float(v), f"{what}[{i}]") if elem == "float" else v)
        return out
    if name == "activation":
        return as_activation(value, what)
    raise TypeError(f"{what} must be {type_words(type_, declared)}, not {_describe(value)}")


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


_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def parse_cli_value(text: str):
    """A `-D name=value` value: a literal of the spec language, parsed without evaluating code.
    A list is one level deep (parameters are lists of numbers). Raises ValueError for a number
    that no parameter can take (too large an int, a float that is not finite)."""
    t = text.strip()
    if t.startswith("[") and t.endswith("]"):
        inner = t[1:-1].strip()
        return [_scalar(x) for x in inner.split(",")] if inner else []
    return _scalar(t)


def _scalar(text: str):
    t = text.strip()
    low = t.lower()
    if low in ("none", "null"):
        return None
    if low == "true":
        return True
    if low == "false":
        return False
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'":
        return t[1:-1]
    if _INT_TEXT.fullmatch(t):
        # Sized before int(): Python refuses more than 4300 digits, and no parameter takes 2**63.
        digits = t.lstrip("+-").lstrip("0")
        if len(digits) > 19 or not int_in_range(int(t)):
            raise ValueError(f"integer too large: {_clip_text(t)} (limit: below 2**{INT_BITS} in magnitude)")
        return int(t)
    if _FLOAT_TEXT.fullmatch(t):
        v = float(t)
        if not math.isfinite(v):
            raise ValueError(f"number too large: {_clip_text(t)} is not a finite float")
        return v
    if low.lstrip("+-") in ("inf", "infinity", "nan"):
        raise ValueError(f"{t} is not a finite number")
    if t.startswith("nn."):
        t = t[3:]
    return t  # a bare word: a string (or an activation name, checked against the type)


def _clip_text(t: str) -> str:
    return t if len(t) <= 24 else f"{t[:10]}...{t[-10:]} ({len(t):,} characters)"
