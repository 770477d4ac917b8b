"""The activation catalogue: every torch.nn activation specc knows is ONE entry here, with its spec
arguments, whether it keeps a zero unit zero (f(0) = 0, what the analysis places unit masks by), its
`inplace` keyword, the torch functions and tensor methods that compute the same (how traced graphs
name it), and its argument checks. Pure data; no torch import. Everything reads the views below:
the front end and `check` (`ACTIVATIONS`, `check_activation`, re-exported by specc/core/layers.py),
the analysis's roles (specc/core/roles.py), argument values (specc/core/values.py), the per-task
network's source (specc/runtime/task_network/source.py). Adding an activation is one entry (and its
row in docs/language.md's Activations table, which tests/test_language_doc.py compares)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

# torch's `inplace` keyword. A spec may give it; it changes no result: the elaborator refuses it
# where the overwritten input is read elsewhere.
INPLACE = ("inplace", "bool", False)


@dataclass(frozen=True)
class ActivationKind:
    """One activation: `name` its torch.nn class (as a spec and a traced graph name it); `params`
    its (keyword, type, default) arguments before `inplace`, which it takes when `inplace` is true;
    `keeps_zero`: f(0) = 0; `role` for the analysis ("identity" for Identity); `functions` and
    `methods`: the torch functions (qualified, as fx records them) and tensor methods that compute
    it in a traced graph; `checks`: (bound arguments) -> a problem or None; `spec`: a spec may name
    it (False: known to the analysis of traced models only, such as PReLU, which has weights)."""
    name: str
    params: tuple[tuple[str, str, object], ...] = ()
    keeps_zero: bool = True
    inplace: bool = False
    role: str = "activation"
    functions: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    checks: Callable | None = None
    spec: bool = True

    @cached_property  # one tuple per entry: the elaborator keys its argument names by its id
    def signature(self) -> tuple[tuple[str, str, object], ...]:
        """Its arguments as a spec gives them: `params`, then `inplace` where torch has it."""
        return self.params + ((INPLACE,) if self.inplace else ())


def _choices(arg: str, allowed: tuple) -> Callable:
    # values a string argument may take (torch checks them only when it runs)
    def check(name: str, a: dict) -> str | None:
        if a[arg] not in allowed:
            return f"{name} {arg} must be one of {', '.join(repr(c) for c in allowed)}, got {a[arg]!r}"
        return None
    return check


def _nonzero(arg: str) -> Callable:
    def check(name: str, a: dict) -> str | None:
        return f"{name} needs {arg} != 0" if a[arg] == 0 else None
    return check


def _hardtanh_checks(name: str, a: dict) -> str | None:
    if not a["min_val"] < a["max_val"]:
        return f"{name} needs min_val < max_val, got {a['min_val']} and {a['max_val']}"
    return None


_F = "torch.nn.functional."
ENTRIES: tuple[ActivationKind, ...] = (
    ActivationKind("ReLU", inplace=True, functions=("torch.relu", _F + "relu"), methods=("relu",)),
    ActivationKind("ReLU6", inplace=True),
    ActivationKind("GELU", (("approximate", "str", "none"),), functions=(_F + "gelu",),
                   checks=_choices("approximate", ("none", "tanh"))),
    ActivationKind("Tanh", functions=("torch.tanh",), methods=("tanh",)),
    ActivationKind("Sigmoid", keeps_zero=False, functions=("torch.sigmoid",), methods=("sigmoid",)),
    ActivationKind("SiLU", inplace=True, functions=(_F + "silu",)),
    ActivationKind("Mish", inplace=True),
    ActivationKind("Hardswish", inplace=True),
    ActivationKind("Hardsigmoid", inplace=True, keeps_zero=False),
    ActivationKind("Softplus", (("beta", "float", 1.0),), keeps_zero=False, checks=_nonzero("beta")),
    ActivationKind("LeakyReLU", (("negative_slope", "float", 0.01),), inplace=True),
    ActivationKind("ELU", (("alpha", "float", 1.0),), inplace=True),
    ActivationKind("CELU", (("alpha", "float", 1.0),), inplace=True, checks=_nonzero("alpha")),
    ActivationKind("SELU", inplace=True),
    ActivationKind("Hardtanh", (("min_val", "float", -1.0), ("max_val", "float", 1.0)), inplace=True,
                   checks=_hardtanh_checks),
    ActivationKind("Identity", role="identity"),
    # known to the analysis of traced models (`specc.mask`), not to the language
    ActivationKind("PReLU", spec=False),
    ActivationKind("Softsign", spec=False),
    ActivationKind("Tanhshrink", spec=False),
    ActivationKind("Hardshrink", spec=False),
    ActivationKind("Softshrink", spec=False),
    ActivationKind("LogSigmoid", keeps_zero=False, spec=False),
)

# The views, filled from a catalogue by `index` (in place, so that what imported them sees a new one).
BY_NAME: dict[str, ActivationKind] = {}  # every entry, by torch.nn class name
ACTIVATIONS: dict[str, tuple[tuple[str, str, object], ...]] = {}  # those a spec may name: their signature
FUNCTIONS: dict[str, ActivationKind] = {}  # by the torch function a traced graph calls
METHODS: dict[str, ActivationKind] = {}  # by the tensor method a traced graph calls


# the activations whose arguments check_activation can refuse (a generated constructor checks only these)
CHECKED_ACTIVATIONS: set[str] = set()


def index(entries: tuple[ActivationKind, ...]) -> None:
    """Fill the views from `entries` (the catalogue; tests index a copy with one more)."""
    for view in (BY_NAME, ACTIVATIONS, FUNCTIONS, METHODS, CHECKED_ACTIVATIONS):
        view.clear()
    for entry in entries:
        BY_NAME[entry.name] = entry
        if entry.checks is not None:
            CHECKED_ACTIVATIONS.add(entry.name)
        if entry.spec:
            ACTIVATIONS[entry.name] = entry.signature
        FUNCTIONS.update(dict.fromkeys(entry.functions, entry))
        METHODS.update(dict.fromkeys(entry.methods, entry))


index(ENTRIES)


def check_activation(name: str, a: dict) -> str | None:
    """A problem with the bound arguments `a` of catalogue activation `name`, or None."""
    entry = BY_NAME.get(name)
    return entry.checks(name, a) if entry is not None and entry.checks is not None else None
