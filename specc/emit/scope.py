"""The writer's state for one scope (a network's or a block's body) and for each branch in it."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..frontend import ast as A


@dataclass
class WrittenBranch:
    decl: A.Branch
    index: int  # statement index in its scope
    role: str = "add"  # how it is joined: "add" (a shortcut) or "concat" (a parallel path)
    var: str = ""  # forward: the local holding its value
    shape: str = ""  # __init__: the local holding its shape
    first_use: int | None = None  # statement index of the first add using it (a loop comes after the
    # branch's declaration: specc.frontend.static_rules)
    computed: bool = False  # forward: already written
    declared: bool = False  # __init__: modules already written
    pending_checks: list = field(default_factory=list)  # __init__: (local, where, may be unset) of the
    # main-path shapes to check against, once declared (specc.frontend.lower.joins)
    issued: int = 0  # locals for those shapes named so far

    def pending_local(self) -> str:
        """A new local for a main-path shape that waits for this branch's declaration."""
        self.issued += 1
        return f"{self.var}_main_shape{self.issued - 1 or ''}"

    @property
    def kind(self) -> str:
        return "parallel" if self.role in ("concat", "gate") else "shortcut"


@dataclass
class Scope:
    kind: str  # "network" | "block"
    params: dict[str, A.Param]  # names visible as constructor arguments (network's and block's own)
    block: A.BlockDef | None = None
    loop_vars: list[dict[str, str]] = field(default_factory=list)  # spec name -> Python local
    branches: dict[str, WrittenBranch] = field(default_factory=dict)
    declared: set = field(default_factory=set)  # module attribute names already created
    simple_append: set = field(default_factory=set)  # lists filled by one element, indexed by its loop
    use_targets: dict = field(default_factory=dict)  # module name -> (its element, its groups' guards)
    deferred: dict = field(default_factory=dict)  # id of an `add` under a guard -> the local started
    # as None before the guard for its main-path shape (specc.frontend.lower.joins)
    residuals: int = 0  # residual groups `(+ ...)` written so far (their locals are numbered)
