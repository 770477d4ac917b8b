"""`prepare(name=value, ...)`: the constructor arguments of a masked backbone whose structure `specc
compile` runs the runtime's masking pass on, so that the generated file carries the pass's output
(specc/emit/prepared.py). Here the declarations are checked, torch-free, as `check` checks a spec:
every name a constructor parameter, given once, every value of its type, every parameter without a
default given."""
from __future__ import annotations

from ..core.limits import PREPARES
from ..core.values import coerce
from . import ast as A
from .errors import SpecError
from .load import Program
from .masking import check_gate_default, class_params, scheme


def arguments(program: Program) -> list[tuple[dict, A.PrepareDecl]]:
    """Each `prepare(...)` of the spec with its arguments: every parameter without a default in the
    spec, and any others it names (the rest take the class's defaults, `-D` values included)."""
    from .evaluator import Evaluator

    decls = program.prepares
    if not decls:
        return []
    src = program.sources.get(decls[0].pos.file)
    if len(decls) > PREPARES:
        raise SpecError(f"more than {PREPARES} prepare declarations (limit `prepares`)", decls[PREPARES].pos,
                        hint="each is built and traced when the spec compiles", source=src)
    if scheme(program) is None:
        raise SpecError("prepare is for masked backbones: it stores what the masking pass makes", decls[0].pos,
                        hint="add `mask hat()` or `mask wsn()`, or remove the prepare", source=src)
    params = {p.name: p for p in class_params(program)}
    out = []
    for decl in decls:
        args: dict = {}
        given: dict[str, A.Expr] = {}
        for name, expr in decl.kwargs:
            if name not in params:
                raise SpecError(f"{program.class_name} has no parameter '{name}'", expr.pos,
                                hint=f"parameters: {', '.join(params)}", source=src)
            if name in args:
                raise SpecError(f"'{name}' is given twice", expr.pos, source=src)
            try:
                args[name] = coerce(Evaluator(program, {}).eval(expr), params[name].type,
                                    f"prepare value of '{name}'")
            except TypeError as e:
                raise SpecError(str(e), expr.pos, source=src) from None
            given[name] = expr
        if "gate" in args:
            check_gate_default(program, args["gate"], given["gate"].pos)
        loads = program.network.pretrained
        if loads is not None and args.get(loads.param) is not None:
            raise SpecError(f"prepare builds the network without weights: '{loads.param}' must be left out",
                            given[loads.param].pos, hint="pretrained weights are loaded after the masking pass; "
                                                         "they do not change the structure", source=src)
        missing = [n for n, p in params.items() if p.default is None and n not in args]
        if missing:
            raise SpecError(f"prepare gives no value for {', '.join(missing)} (no default)", decl.pos,
                            hint="name every parameter without a default", source=src)
        out.append((args, decl))
    return out
