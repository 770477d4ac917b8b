"""Where a shortcut's shape is checked, lowered once: at each `add` that runs, never at one whose
guard is false.

The elaborator builds a shortcut at its first `add` and checks the shapes there. The source writer
builds it at its declaration (its modules come in declaration order), so an `add` written before
the branch's declaration leaves the main path's shape for the declaration to check. Under a guard
that shape may never be set: the writer then starts it as None before the guard and checks it only
when it is set, which is the elaborator's rule (a false guard checks nothing)."""
from __future__ import annotations

from .. import ast as A


def adds_in(el) -> list[A.Add]:
    """The `add` joins that element `el` runs: itself, or those of its groups (nested ones too)."""
    return [e for e in A.flat_elements([el]) if isinstance(e, A.Add)]


def deferred_adds(el, declared, guarded: bool) -> list[A.Add]:
    """The joins of `el` whose shape check waits for a branch declared later (`declared(name)` says
    whether a branch is already declared) and may not run: those under `el`'s guard (`guarded`)."""
    if not guarded:
        return []
    return [a for a in adds_in(el) if not declared(a.branch)]
