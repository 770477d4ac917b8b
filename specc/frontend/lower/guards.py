"""Guards, lowered once: the conditions under which an element runs and its module exists.

A guard is a tuple of conditions that must all hold: spec expressions (an element's `if`, the `if`
of each group around it) and `Present(name)`, the implicit guard of an optional activation
parameter used as a layer (`act: activation?` ... `-> act()`: no module when it is none). The
elaborator evaluates a guard for the arguments given (specc.frontend.elaborate); the source writer
prints the same guard as a Python condition (specc.emit.statements). Which conditions make up a
guard is decided here only."""
from __future__ import annotations

from dataclasses import dataclass

from .. import ast as A
from ..load import Program
from ..static_rules import layer_kind


@dataclass(frozen=True)
class Present:
    """The element exists when the optional activation parameter `name` is not none."""

    name: str


def optional_activation(program: Program, el, params: dict[str, A.Param], block_params: dict[str, str]) -> str | None:
    """The optional activation parameter that element `el` applies as its one operation, if any:
    `params` are the scope's parameters by name (loop variables are not parameters)."""
    if not isinstance(el, A.Layer) or len(el.ops) != 1:
        return None
    name = el.ops[0].name
    if layer_kind(program, name, params, block_params) != "activation-param":
        return None
    return name if params[name].type.optional else None


def element_guard(el, present: str | None, groups: tuple = ()) -> tuple:
    """The guard of element `el`: the conditions of the `groups` around it (outermost first), its
    own `if`, then its implicit guard (`present`: see optional_activation)."""
    parts = list(groups)
    if el.cond is not None:
        parts.append(el.cond)
    if present is not None:
        parts.append(Present(present))
    return tuple(parts)


def loop_list_guard(layer: A.Layer, conds: tuple, changes: bool, present: str | None) -> tuple:
    """The guard under which a loop creates the module list its `layer` fills, before its first
    iteration (specc.frontend.ast.loop_lists gives `conds` and whether they `changes` from iteration
    to iteration): the first element's guard, or only its implicit guard when the conditions
    change (then the list always exists)."""
    parts = () if changes else tuple(conds)
    return parts + ((Present(present),) if present is not None else ())


def list_before_guard(el, guard: tuple) -> str | None:
    """The module list element `el` fills, when `el` has a guard: that list exists whatever the guard
    (it is created before the guard is tested), so that a later element finds it (and, out of order,
    is refused positioned). None when `el` fills no list or has no guard. Inside a loop the loop
    creates its lists (loop_list_guard)."""
    p = el.path if isinstance(el, A.Layer) else None
    if guard and p is not None and p.index is not None:
        return p.name
    return None
