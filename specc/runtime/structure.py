"""Rewritten forwards shared by instances of the same structure.

A generated class's module tree and forward are determined by its class and its plain network's
constructor arguments, so every instance built with the same arguments (and the same masking
options) gets the same traced graph, analysis and rewritten code: they are made once and shared
(the facts are read, never written, after the analysis). The memo is bounded.

A generated file may also carry them for the structures its spec names in `prepare(...)`: `specc
compile` ran this runtime's passes on that structure and wrote their output into the file, which
registers it here (`prepare`) on import, so the first construction in a process skips the trace.
Only the version of the runtime that wrote them uses them: another version's passes may rewrite
differently, so it traces."""
from __future__ import annotations

import inspect
from collections import OrderedDict

SIZE = 128
_memo: OrderedDict = OrderedDict()
_prepared: dict = {}  # one entry per `prepare(...)` of the generated modules imported


class _Missing:
    """An argument of the plain constructor that the network does not keep as an attribute."""

    def __repr__(self) -> str:
        return "structure.MISSING"


MISSING = _Missing()


def _freeze(value):
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    hash(value)  # TypeError for what cannot key a structure
    return value


def key(network, plain_cls: type, *extra):
    """The structure of `network` (None when it cannot be keyed: its arguments are unhashable)."""
    names = [n for n in inspect.signature(plain_cls.__init__).parameters if n != "self"]
    try:
        values = tuple(_freeze(getattr(network, n, MISSING)) for n in names)
        return (type(network), plain_cls, values, _freeze(extra))
    except TypeError:
        return None


def recall(k):
    if k is None:
        return None
    if k not in _memo:
        return _prepared.get(k)
    _memo.move_to_end(k)
    return _memo[k]


def prepare(version: str, k: tuple, facts, forward) -> None:
    """Register what `specc compile` prepared for the structure `k` (with the runtime `version`):
    the analysis facts and the masked forward. The forward's source is its function's (the file's
    lines), read when shown."""
    from .. import __version__

    if version == __version__:
        _prepared[k] = (facts, forward, None)


def remember(k, value) -> None:
    if k is None:
        return
    _memo[k] = value
    while len(_memo) > SIZE:
        _memo.popitem(last=False)
