"""Module names as generated source (plain, module-list and computed names) and the walks over a
scope's statements that the writer reads names from."""
from __future__ import annotations

from dataclasses import dataclass

from ..frontend import ast as A
from . import escape


@dataclass
class ComputedName:
    """A computed module name (`fc{i + 1}`) as source: its pieces, each (source, is literal text);
    literal pieces are the spec's NAME and INT tokens (identifier characters only)."""

    pieces: list
    factories: tuple = ()  # the block factories it may spell (static_rules.factories_spelled_by)

    def name(self, prefix: str | None = None, child: str | None = None) -> str:
        """A string expression of the name, e.g. `f"fc{i + 1}"`; with the source of a block's path
        `prefix`, `f"{path}/fc{i + 1}"`; with the source of a child's index, `.../{index}`."""
        parts = ([(prefix, False), ("/", True)] if prefix else []) + list(self.pieces)
        if child is not None:
            parts += [("/", True), (child, False)]
        return join_source(parts)

    def checked(self) -> str:
        """The name, checked by the runtime (an identifier; its interpolations ints >= 0)."""
        args = [escape.string(s) if lit else s for s, lit in self.pieces]
        if self.factories:
            args.append(f"factories=({''.join(escape.string(f) + ', ' for f in self.factories).rstrip()})")
        return f"module_name({', '.join(args)})"


def join_source(parts: list[tuple[str, bool]]) -> str:
    """An f-string of `parts` (literal text, or the source of a value), or a concatenation of
    str() calls where a source holds quotes, braces or backslashes (which an f-string cannot hold
    before Python 3.12)."""
    if not any(c in s for s, lit in parts if not lit for c in "'\"{}\\"):
        return 'f"' + "".join(s if lit else "{" + s + "}" for s, lit in parts) + '"'
    return " + ".join(escape.string(s) if lit else f"str({s})" for s, lit in parts)


def name_source(prefix: str | None, name: str, idx: str | None) -> str:
    """Python source of a layer name (its '/'-separated module path) as a string expression:
    `prefix` is the source of the enclosing block's path (None at network level), `idx` the
    source of the module-list index (None for a plain module)."""
    parts = ([f"{{{prefix}}}"] if prefix else []) + [name] + ([f"{{{idx}}}"] if idx is not None else [])
    if not prefix and idx is None:
        return escape.string(name)
    if idx is not None and any(c in idx for c in "'\"{}\\"):
        head = f'f"{{{prefix}}}/{name}/"' if prefix else escape.string(f"{name}/")
        return f"{head} + str({idx})"
    return 'f"' + "/".join(parts) + '"'


def op_names_in(body) -> list[str]:
    out = []
    for s in body:
        if isinstance(s, A.ForLoop):
            out += op_names_in(s.body)
        elif isinstance(s, (A.Chain, A.Branch)):
            for el in A.flat_elements(s.elements):
                if isinstance(el, A.Layer):
                    out += [op.name for op in el.ops]
    return out


def chain_ops(body) -> list[A.Op]:
    """The ops of the chains of a statement list (loops included; a branch when given itself)."""
    out = []
    for s in body:
        if isinstance(s, A.ForLoop):
            out += chain_ops(s.body)
        elif isinstance(s, (A.Chain, A.Branch)):
            out += [op for el in A.flat_elements(s.elements) if isinstance(el, A.Layer) for op in el.ops]
    return out


