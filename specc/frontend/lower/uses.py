"""`use NAME`, lowered once: which module a `use` calls, and whether it may call it.

A `use` calls once more a module declared by an element of its scope's own chains (not in a loop or
a branch), under a plain name; only a module without parameters or state (an activation, dropout,
pooling) may be called at several points. The static rules check every `use` with `resolve_use`
whatever the guards (specc.frontend.static_rules), the elaborator resolves each `use` it elaborates
with it, and the source writer reads the same targets (specc.emit.statements)."""
from __future__ import annotations

from ...core.layers import OPS
from .. import ast as A
from ..errors import SpecError
from ..load import Program
from ..static_rules import layer_kind


def flat_layers(elements, groups: tuple = ()) -> list[tuple[A.Layer, tuple]]:
    """The layers of a chain, each with the guards of the groups around it (outermost first)."""
    out = []
    for el in elements:
        if isinstance(el, A.Layer):
            out.append((el, tuple(groups)))
        elif isinstance(el, A.Group):
            out += flat_layers(el.elements, tuple(groups) + ((el.cond,) if el.cond is not None else ()))
    return out


def use_targets(stmts) -> dict[str, tuple[A.Layer, tuple]]:
    """The modules a `use` of the scope `stmts` may name: the elements of its own chains (not in a
    loop or a branch) with plain names, the first of each name, each with its groups' guards."""
    out: dict[str, tuple[A.Layer, tuple]] = {}
    for s in stmts:
        if isinstance(s, A.Chain):
            for layer, groups in flat_layers(s.elements):
                p = layer.path
                if p is not None and p.index is None and p.parts is None:
                    out.setdefault(p.name, (layer, groups))
    return out


def not_declared(program: Program, el: A.Use, where: str) -> SpecError:
    """The refusal of a `use` whose module is not declared before it in `where` ("the network",
    "this block")."""
    name = el.path.name
    return SpecError(f"`use {name}`: {where} has no module '{name}' declared before this point", el.path.pos,
                     hint=f"`use` calls once more a module declared earlier in {where}, by an element of its own "
                          "chains (not in a loop or a branch)", source=program.sources.get(el.path.pos.file))


def resolve_use(program: Program, targets: dict, el: A.Use, where: str, params: dict,
                block_params: dict) -> tuple[A.Layer, tuple]:
    """The element (and its groups' guards) whose module `el` calls, from the scope's `targets`
    (use_targets); refused, positioned, when there is none or its module may not be called twice."""
    name = el.path.name
    target = targets.get(name)
    if target is None:
        raise not_declared(program, el, where)
    layer = target[0]
    op = layer.ops[0]
    kind = layer_kind(program, op.name, params, block_params) if len(layer.ops) == 1 and op.repeat is None else None
    if kind in ("activation", "activation-param") or (kind == "builtin" and OPS[op.name].reusable):
        return target
    what = f"'{op.name}'" if kind == "builtin" else "a block or a container"
    raise SpecError(f"`use {name}`: '{name}' is {what}; only activations, dropout and pooling (modules "
                    "without parameters or state) can be called at several points", el.path.pos,
                    hint="declare a second module for the second point", source=program.sources.get(el.path.pos.file))
