"""How a catalogue entry (specc/core/layers.py) becomes generated source: the torch.nn
constructor call, the shape helper the generated constructor calls, the forward form."""
from __future__ import annotations

import string

from ..core.layers import ACTIVATIONS, CHECKED_ACTIVATIONS, IN, LENGTH, OPS
from ..frontend import ast as A
from . import escape
from .pyexpr import ExprWriter

# How each builtin becomes a torch.nn constructor call and changes the shape: its catalogue entry
# (specc/core/layers.py). The shape helpers generated constructors call, with the spec arguments
# they take, for the kinds that have their own (any other calls the generic `shapes.layer`).
SHAPE_HELPER_ARGS = {
    "shapes.linear": ("out_features",),
    "shapes.conv2d": ("out_channels", "kernel", "stride", "padding", "dilation", "groups"),
    "shapes.pool2d": ("kernel", "stride", "padding", "dilation", "ceil_mode"),
    "shapes.adaptive_pool2d": ("size",),
}


def is_simple(src: str) -> bool:
    """Whether a source needs no parentheses as a slice's step: a name, attribute or number."""
    return all(c.isalnum() or c in "_." for c in src)


class ForwardForm(string.Formatter):
    """Fills a catalogue entry's `forward` with sources; `{name:step}` parenthesizes a compound one."""

    def format_field(self, value, format_spec):
        if format_spec == "step":
            return value if is_simple(value) else f"({value})"
        return super().format_field(value, format_spec)


FORWARD_FORM = ForwardForm()


def construct(ex: ExprWriter, op: A.Op, kind: str, shape: str) -> str:
    """The constructor call of `op`'s module (its arguments' sources by `ex`; `shape` the source of its
    input shape)."""
    if kind == "activation-param":  # without arguments (specc.frontend.static_rules)
        return f"{op.name}()"
    if kind == "activation":
        names = [n for n, _, _ in ACTIVATIONS[op.name]]
        given = dict(zip(names, op.args))
        given.update(dict(op.kwargs))
        keywords = ", ".join(f"{escape.identifier(k)}={ex(v)}" for k, v in given.items())
        return f"nn.{escape.identifier(op.name)}({keywords})"
    entry = OPS[op.name]
    names = [n for n, _, _ in entry.params]
    given = dict(zip(names, op.args))
    given.update(dict(op.kwargs))
    args = []
    positional = True
    for i, (torch_kw, source) in enumerate(entry.torch_args):
        if source == IN:
            # tokens keep their units on the last axis (shapes.units); a kind that takes only
            # features or tokens reads it there, the others at the first axis
            value = f"{shape}[-1]" if set(entry.accepts) <= {"features", "tokens"} else f"{shape}[0]"
        elif source == LENGTH:
            value = f"{shape}[0]"
        elif isinstance(source, tuple):
            if source[1] not in given:
                continue
            v = ex(given[source[1]])
            value = f"({v}, {v})"
        else:
            if source not in given:
                positional = False
                continue
            value = ex(given[source])
        if positional and i < entry.positional:
            args.append(value)
        else:
            positional = False
            args.append(f"{torch_kw}={value}")
    return f"{entry.torch_module}.{entry.torch_class}({', '.join(args)})"

def shape_update(ex: ExprWriter, op: A.Op, shape: str, name_src: str | None) -> str:
    """The shape helper call giving the shape after `op` (positioned by the layer name `name_src`)."""
    fn = OPS[op.name].shape_helper
    names = [n for n, _, _ in OPS[op.name].params]
    given = dict(zip(names, op.args))
    given.update(dict(op.kwargs))
    args = [shape]
    if fn is None:  # the generic helper, which takes every argument by name
        fn, args = "shapes.layer", [escape.literal(op.name), shape]
        args += [f"{name}={ex(given[name])}" for name in names if name in given]
    for i, name in enumerate(SHAPE_HELPER_ARGS.get(fn, ())):
        if name in given:
            args.append(ex(given[name]) if i == 0 else f"{name}={ex(given[name])}")
    if name_src is not None:
        args.append(f"where={name_src}")
    return f"{fn}({', '.join(args)})"


def construction_check(ex: ExprWriter, op: A.Op, shape: str, name_src: str | None) -> str:
    """The constructor's line for builtin `op` after its module: the catalogue's check of its input
    and arguments (specc.core.layers.check, what the elaborator runs for `check`) for every kind,
    and the new shape where the kind changes it (a shape-keeping kind's check is a bare call)."""
    call = shape_update(ex, op, shape, name_src)
    return call if OPS[op.name].shape is None else f"{shape} = {call}"


def activation_check(ex: ExprWriter, op: A.Op, name_src: str) -> str | None:
    """The constructor's check of a catalogue activation's arguments (specc.core.layers.check_activation,
    what the elaborator runs for `check`): for the kinds that can refuse one, when arguments are given."""
    if op.name not in CHECKED_ACTIVATIONS or not (op.args or op.kwargs):
        return None
    names = [n for n, _, _ in ACTIVATIONS[op.name]]
    given = dict(zip(names, op.args))
    given.update(dict(op.kwargs))
    keywords = "".join(f", {escape.identifier(k)}={ex(v)}" for k, v in given.items())
    return f"shapes.activation({escape.literal(op.name)}, {name_src}{keywords})"
