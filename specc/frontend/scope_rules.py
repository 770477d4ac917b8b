"""Rules over the statements of a scope, checked on the spec text before elaborating or writing
anything (the elaborator and the source writer consume them): how each branch is joined, no plain
module name in a loop, no recursive block, no `in` where the network's forward evaluates it."""
from __future__ import annotations

from ..core.layers import ACTIVATIONS, OPS
from . import ast as A
from .binding import block_parameters
from .errors import SpecError
from .load import Program


def check_network_in(program: Program) -> None:
    """At network level `in` is the shape entering the element it is written in. It may size
    layers (arguments, repetitions), which the constructor computes; the parts the forward also
    evaluates (conditions, loops, module-list indices, computed names, the arguments of a layer
    without a module such as pad_channels) cannot read it there: the
    generated forward does not track shapes."""
    todo = list(program.network.body)
    while todo:
        st = todo.pop()
        found = []
        if isinstance(st, A.ForLoop):
            todo.extend(st.body)
            found.append(("a loop's list", st.iterable))
        elif isinstance(st, (A.Chain, A.Branch)):
            for el in A.flat_elements(st.elements):
                if el.cond is not None:
                    found.append(("a condition", el.cond))
                path = getattr(el, "path", None)
                if path is not None and path.index is not None:
                    found.append(("a module-list index", path.index))
                if path is not None and path.parts is not None:
                    found += [("a computed name", x) for x in path.parts if not isinstance(x, str)]
                for op in getattr(el, "ops", ()):
                    if op.name in OPS and OPS[op.name].torch_class is None:  # computed by the forward
                        found += [(f"the arguments of {op.name}", a) for a in list(op.args) + [v for _, v in op.kwargs]]
        for what, e in found:
            ref = A.input_ref_in(e)
            if ref is not None:
                raise SpecError(f"at network level, `in` cannot be used in {what}: the forward evaluates it too, "
                                "and does not track shapes", ref.pos,
                                hint="use `in` in layer arguments here, or move this part into a block (whose "
                                     "`in` is the block's input)", source=program.sources.get(ref.pos.file))


_JOIN = {"add": "add", "concat": "concat", "gate": "mul"}


def branch_roles(program: Program, stmts) -> dict[str, str]:
    """How each branch of a scope is joined: "add" (a shortcut), "concat" (a parallel path) or
    "gate" (`mul`: the branch reads the stream where it is used, once), from the scope's text. A branch is
    joined one way; one joined by `concat` is declared before the
    statement that joins it (its modules are built, and its weighted layers listed, before the
    layers that read the concatenation)."""
    roles: dict[str, str] = {}
    gated: set[str] = set()
    declared = {s.name: i for i, s in enumerate(stmts) if isinstance(s, A.Branch)}
    for i, st in enumerate(stmts):
        todo = [st]
        while todo:
            s = todo.pop()
            if isinstance(s, A.ForLoop):
                todo.extend(s.body)
                continue
            if not isinstance(s, (A.Chain, A.Branch)):
                continue
            for el in A.flat_elements(s.elements):
                if isinstance(el, A.Add):
                    uses = [(el.branch, "add", el.pos)]
                elif isinstance(el, A.Concat):
                    uses = [(name, "concat", el.pos) for name in el.branches]
                elif isinstance(el, A.Mul):
                    uses = [(el.branch, "gate", el.pos)]
                else:
                    continue
                for name, role, pos in uses:
                    other = roles.setdefault(name, role)
                    if other != role:
                        first, second = sorted((_JOIN[other], _JOIN[role]))
                        raise SpecError(f"branch '{name}' is joined both by {first} and by {second}", pos,
                                        hint="a branch is a shortcut (add), a parallel path (concat) or a gate "
                                             "(mul): declare one for each",
                                        source=program.sources.get(pos.file))
                    if role == "gate" and name in gated:
                        raise SpecError(f"the gate branch '{name}' is used by mul twice", pos,
                                        hint="a gate branch builds its modules where mul uses it: declare "
                                             "a second branch for a second gate",
                                        source=program.sources.get(pos.file))
                    if role == "gate":
                        gated.add(name)
                    if role == "concat" and name in declared and declared[name] > i:
                        raise SpecError(f"branch '{name}' is concatenated before it is declared", pos,
                                        hint=f"declare `branch {name} = ...` before this statement",
                                        source=program.sources.get(pos.file))
    return roles


def _element_ops(stmts):
    """Every (op, element) of `stmts`, loops and branches included, without recursion into blocks."""
    for el in A.layer_elements(stmts):
        for op in el.ops:
            yield op, el


def check_loop_names(program: Program) -> None:
    """Refuse a module with a plain name in a loop, in the network and in every block (used or not
    for the given arguments): it would be declared once per iteration, and even when a guard lets
    only one iteration declare it the emitter cannot write it."""
    for body in [program.network.body] + [b.body for b in program.blocks.values()]:
        # the loops' statements, in source order: the first such module is the one reported
        todo: list = [st for st in reversed(body) if isinstance(st, A.ForLoop)]
        while todo:
            st = todo.pop()
            if isinstance(st, A.ForLoop):
                todo.extend(reversed(st.body))
            elif isinstance(st, A.Chain):
                for el in A.flat_elements(st.elements):
                    p = el.path if isinstance(el, A.Layer) else None
                    if p is not None and p.parts is None and p.index is None:
                        raise SpecError(f"module '{p.name}' is declared in a loop without an index", p.pos,
                                        hint=f"write `{p.name}[i]: ...` to make a module list, or compute its "
                                             f"name: `{p.name}{{i}}: ...`", source=program.sources.get(p.pos.file))


def check_no_recursive_blocks(program: Program) -> None:
    """A block may not instantiate itself, directly or through others: its expansion would only end
    through a condition on its arguments, which the compiler cannot check before elaborating. So
    every block's instantiation graph must be a DAG, whatever the arguments."""
    calls: dict[str, list[tuple[str, A.Op]]] = {}
    via = {name: block for name, block in block_parameters(program).items() if block in program.blocks}
    for name, block in program.blocks.items():
        calls[name] = sorted(((via.get(op.name, op.name), op) for op, _ in _element_ops(block.body)
                              if (op.name in program.blocks or op.name in via) and op.name not in ACTIVATIONS
                              and op.name not in OPS),
                             key=lambda c: (c[1].pos.file, c[1].pos.line, c[1].pos.column))
    done: set[str] = set()
    for root in calls:
        if root in done:
            continue
        # Depth-first with an explicit stack: (block, index of its next call).
        path, on_path, stack = [root], {root}, [(root, 0)]
        while stack:
            name, i = stack[-1]
            if i == len(calls[name]):
                stack.pop()
                path.pop()
                on_path.discard(name)
                done.add(name)
                continue
            stack[-1] = (name, i + 1)
            callee, op = calls[name][i]
            if callee in on_path:
                chain = " -> ".join(path[path.index(callee):] + [callee])
                raise SpecError(f"recursive block: {chain}", op.pos,
                                hint="a block cannot instantiate itself, directly or through other blocks; "
                                     "write the levels out as separate blocks or use a loop",
                                source=program.sources.get(op.pos.file))
            if callee not in done:
                path.append(callee)
                on_path.add(callee)
                stack.append((callee, 0))

