"""Rewritten forwards shared by instances of the same structure.

A generated class's module tree and forward are determined by its class and its plain network's
constructor arguments, so every instance built with the same arguments (and the same masking
options) gets the same traced graph, analysis and rewritten code: they are made once and shared
(the facts are read, never written, after the analysis). The memo is bounded."""
from __future__ import annotations

import inspect
from collections import OrderedDict

SIZE = 128
_memo: OrderedDict = OrderedDict()
_MISSING = object()


def _freeze(value):
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    hash(value)  # TypeError for what cannot key a structure
    return value


def key(network, plain_cls: type, *extra):
    """The structure of `network` (None when it cannot be keyed: its arguments are unhashable)."""
    names = [n for n in inspect.signature(plain_cls.__init__).parameters if n != "self"]
    try:
        values = tuple(_freeze(getattr(network, n, _MISSING)) for n in names)
        return (type(network), plain_cls, values, _freeze(extra))
    except TypeError:
        return None


def recall(k):
    if k is None or k not in _memo:
        return None
    _memo.move_to_end(k)
    return _memo[k]


def remember(k, value) -> None:
    if k is None:
        return
    _memo[k] = value
    while len(_memo) > SIZE:
        _memo.popitem(last=False)
