"""Shape arithmetic for generated constructors: the spec language's own rules (specc.core.layers),
on plain tuples: `(features,)`, `(channels, length)` or `(channels, height, width)` (specc.core.shape
tells the kind by the number of dimensions) and `Tokens((length, features))`, sizes None when the spec leaves them open. A layer that
does not fit its input raises ValueError naming the layer."""
from __future__ import annotations

from functools import lru_cache

from ..core.layers import ACTIVATIONS, OPS, REQUIRED, Shape, check, check_activation, out_shape
from ..core.shape import FIELDS, gate_problem
from . import positions


class Tokens(tuple):
    """A tokens shape (length, features): a tuple that says its kind, since a plain pair is a
    signal (channels, length). Its units are the features, the last axis (generated source reads
    `shape[-1]` for the kinds that take tokens)."""

    __slots__ = ()


def field(shape: tuple, name: str):
    """`in.NAME` of a spec for the kinds where its index depends on the kind (units, length)."""
    return shape[FIELDS[Shape(tuple(shape), "tokens" if isinstance(shape, Tokens) else "").kind][name]]


def _apply(op: str, where: str, shape: tuple, **given) -> tuple:
    result = _out_shape(op, tuple(shape), isinstance(shape, Tokens), tuple(given.items()))
    if isinstance(result, str):
        at = positions.of_caller(depth=3)
        raise ValueError(f"{where}: {result}" + (f" (at {at})" if at else ""))
    return result


@lru_cache(maxsize=1024)
def _out_shape(op: str, shape: tuple, tokens: bool, given: tuple) -> tuple | str:
    """The output shape, or the problem (a string). Cached: a deep network repeats the same few
    layers (ResNet-152 builds 155 convolutions of 13 kinds), and its constructor runs these checks
    for each."""
    named = dict(given)
    args = {name: named[name] if name in named else default
            for name, _, default in OPS[op].params if name in named or default is not REQUIRED}
    s = Shape(shape, "tokens" if tokens else "")
    problem = check(op, args, s)
    if problem:
        return problem
    out = out_shape(op, args, s)
    return Tokens(out.dims) if out.kind == "tokens" else out.dims


def layer(op: str, shape: tuple, where: str | None = None, **given) -> tuple:
    """The output shape of catalogue layer `op` (given its spec arguments by name): the helper
    generated constructors call for a layer kind without one of its own below."""
    return _apply(op, where or op, shape, **given)


def linear(shape: tuple, out_features: int, where: str = "linear") -> tuple:
    return _apply("linear", where, shape, out_features=out_features)


def conv2d(shape: tuple, out_channels: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
           groups: int = 1, where: str = "conv2d") -> tuple:
    return _apply("conv2d", where, shape, out_channels=out_channels, kernel=kernel, stride=stride,
                  padding=padding, dilation=dilation, groups=groups)


def pool2d(shape: tuple, kernel: int, stride: int | None = None, padding: int = 0, dilation: int = 1,
           ceil_mode: bool = False, where: str = "pool") -> tuple:
    return _apply("maxpool2d", where, shape, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                  ceil_mode=ceil_mode)


def adaptive_pool2d(shape: tuple, size: int, where: str = "pool") -> tuple:
    return _apply("adaptive_avgpool2d", where, shape, size=size)


def subsample(shape: tuple, stride: int, where: str = "subsample") -> tuple:
    return _apply("subsample", where, shape, stride=stride)


def pad_channels(shape: tuple, before: int, after: int, where: str = "pad_channels") -> tuple:
    return _apply("pad_channels", where, shape, before=before, after=after)


def concat(*shapes: tuple, where: str = "concat") -> tuple:
    """The shape of the concatenation of `shapes` along the channels (features)."""
    if any(isinstance(s, Tokens) for s in shapes):
        raise ValueError(f"{where}: concat joins channels (features) of images and features, not tokens")
    first = Shape(tuple(shapes[0]))
    for other in shapes[1:]:
        s = Shape(tuple(other))
        if s.kind != first.kind or s.dims[1:] != first.dims[1:]:
            raise ValueError(f"{where}: concat joins shapes {first} and {s}, whose other sizes differ")
    units = [s[0] for s in shapes]
    return (None if None in units else sum(units),) + tuple(first.dims[1:])


def select_token(shape: tuple, index: int = 0) -> tuple:
    return _apply("select_token", "select_token", shape, index=index)


def mean_tokens(shape: tuple, start: int = 0) -> tuple:
    return _apply("mean_tokens", "mean_tokens", shape, start=start)


def flatten(shape: tuple) -> tuple:
    return _apply("flatten", "flatten", shape)


def check_add(main: tuple, shortcut: tuple, where: str) -> None:
    if tuple(main) != tuple(shortcut):
        raise ValueError(f"{where}: the add joins shapes {Shape(tuple(main))} and {Shape(tuple(shortcut))}")


def gate(main: tuple, gate_shape: tuple, where: str = "mul") -> tuple:
    """The shape after `mul(b)`: the stream's; the gate must fit it (specc.core.shape.gate_problem)."""
    problem = gate_problem(Shape(tuple(main)), Shape(tuple(gate_shape)))
    if problem is not None:
        at = positions.of_caller()
        raise ValueError(f"{where}: {problem}" + (f" (at {at})" if at else ""))
    return tuple(main)


def activation(name: str, where: str, **given) -> None:
    """Check catalogue activation `name`'s arguments (`given` by name; the others take their
    defaults) as `check` does (specc.core.layers.check_activation), positioned."""
    bound = {arg: given.get(arg, default) for arg, _, default in ACTIVATIONS[name]}
    problem = check_activation(name, bound)
    if problem:
        at = positions.of_caller()
        raise ValueError(f"{where}: {problem}" + (f" (at {at})" if at else ""))
