"""CLArena as an installed library, and specc's `--base clarena` classes.

- `import_clarena()`: puts `<repo>/../shared/clarena` on sys.path and imports the parts of CLArena the
  client tests drive (backbones, heads, cl_algorithms, cul_algorithms) under the torchvision stub
  (see `stub.py` for how the stub is kept scoped). Raises `ClarenaUnavailable` (the fixtures turn it
  into a skip with its reason) when that cannot be done.
- `SpeccCompiler`: `specc compile <spec> --base clarena -o <tmpdir>/specc_<stem>.py`, run as
  `python -m specc.cli compile ...` in a subprocess, then the file imported as a module (under the
  same stub window, since a `--base clarena` module may import CLArena or torchvision). One compile
  per spec per session; a failed compile is remembered and re-raised, not retried.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import subprocess
import sys
import types
from pathlib import Path

from .stub import STUB_MARK, build_torchvision_stub

REPO = Path(__file__).resolve().parents[2]
CLARENA_ROOT = (REPO / ".." / "shared" / "clarena").resolve()
SPECS = REPO / "specs"

# Imported before the stub ever exists, so that their import-time and cached checks for torchvision
# see the real state of this machine (no torchvision).
_PRELOAD = ("lightning", "lightning.pytorch", "torchmetrics", "captum.attr", "matplotlib",
            "matplotlib.transforms", "rich.progress", "hydra", "omegaconf")

_CLARENA_MODULES = ("clarena.backbones", "clarena.backbones.base", "clarena.backbones.constants",
                    "clarena.heads", "clarena.cl_algorithms", "clarena.cul_algorithms")


class ClarenaUnavailable(RuntimeError):
    """CLArena cannot be imported here; the message says why."""


_STUB: dict[str, types.ModuleType] | None = None
_CLARENA: types.SimpleNamespace | None = None
_CLARENA_ERROR: str | None = None


def torchvision_stub() -> dict[str, types.ModuleType]:
    """The session's stub modules (one set, so that a test patching `models.resnet18` reaches the
    object CLArena's modules and specc's modules hold)."""
    global _STUB
    if _STUB is None:
        _STUB = build_torchvision_stub()
    return _STUB


def _cache_torchvision_absent() -> None:
    """Evaluate lightning's and torchmetrics' lazy `RequirementCache("torchvision")` now, while no
    stub is installed: they cache the answer (absent) for the rest of the process."""
    from lightning.pytorch.utilities import imports as pl_imports
    from torchmetrics.utilities import imports as tm_imports

    for flag in (pl_imports._TORCHVISION_AVAILABLE, tm_imports._TORCHVISION_AVAILABLE):
        bool(flag)


@contextlib.contextmanager
def stub_window():
    """Install the torchvision stub in sys.modules for the body only, then restore sys.modules to what
    it was for those names. If a real torchvision is already imported, it is left alone (no stub)."""
    existing = sys.modules.get("torchvision")
    if existing is not None and not getattr(existing, STUB_MARK, False):
        yield
        return
    stub = torchvision_stub()
    saved = {name: sys.modules.get(name) for name in stub}
    sys.modules.update(stub)
    try:
        yield
    finally:
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod


def stub_installed() -> bool:
    """Whether any stub module is in sys.modules right now."""
    return any(sys.modules.get(name) is mod for name, mod in torchvision_stub().items()) or any(
        getattr(sys.modules.get(name), STUB_MARK, False) is True for name in list(sys.modules) if name.startswith("torchvision"))


def import_clarena() -> types.SimpleNamespace:
    """CLArena's modules, imported once per process. Raises ClarenaUnavailable with the reason."""
    global _CLARENA, _CLARENA_ERROR
    if _CLARENA is not None:
        return _CLARENA
    if _CLARENA_ERROR is not None:
        raise ClarenaUnavailable(_CLARENA_ERROR)
    try:
        if not (CLARENA_ROOT / "clarena" / "__init__.py").is_file():
            raise ClarenaUnavailable(f"CLArena not found at {CLARENA_ROOT} (expected <repo>/../shared/clarena)")
        for name in _PRELOAD:
            try:
                importlib.import_module(name)
            except Exception as e:  # noqa: BLE001 - the reason is what we report
                raise ClarenaUnavailable(f"CLArena's dependency {name!r} does not import: {e!r} "
                                         "(install the project's `clarena` extra)") from e
        _cache_torchvision_absent()
        if str(CLARENA_ROOT) not in sys.path:
            sys.path.insert(0, str(CLARENA_ROOT))
        mods = {}
        with stub_window():
            for name in _CLARENA_MODULES:
                try:
                    mods[name] = importlib.import_module(name)
                except Exception as e:  # noqa: BLE001
                    raise ClarenaUnavailable(f"`import {name}` failed: {e!r}") from e
        _CLARENA = types.SimpleNamespace(
            backbones=mods["clarena.backbones"],
            base=mods["clarena.backbones.base"],
            constants=mods["clarena.backbones.constants"],
            heads=mods["clarena.heads"],
            cl_algorithms=mods["clarena.cl_algorithms"],
            cul_algorithms=mods["clarena.cul_algorithms"],
            root=CLARENA_ROOT,
        )
        return _CLARENA
    except ClarenaUnavailable as e:
        _CLARENA_ERROR = str(e)
        raise


# spec stem -> class name, for every parity spec (the interface of issue 10).
SPEC_CLASSES: dict[str, str] = {"mlp": "MLP", "cl_mlp": "CLMLP", "mlp_hat": "HATMaskMLP",
                                "mlp_wsn": "WSNMaskMLP", "mlp_amnesiac_hat": "AmnesiacHATMLP",
                                "vit_ti16_hat": "HATMaskViT_Ti16"}  # no CLArena counterpart (tests/test_clarena_hat_vit.py)
for _depth in (18, 34, 50, 101, 152):
    SPEC_CLASSES[f"resnet{_depth}"] = f"ResNet{_depth}"
    SPEC_CLASSES[f"cl_resnet{_depth}"] = f"CLResNet{_depth}"
    SPEC_CLASSES[f"resnet{_depth}_hat"] = f"HATMaskResNet{_depth}"
    SPEC_CLASSES[f"resnet{_depth}_amnesiac_hat"] = f"AmnesiacHATResNet{_depth}"
CLASS_SPECS: dict[str, str] = {cls: stem for stem, cls in SPEC_CLASSES.items()}


class SpeccCompiler:
    """Compiles parity specs with `--base clarena` into `outdir`, once each, and imports them."""

    def __init__(self, outdir: Path):
        self.outdir = Path(outdir)
        self._modules: dict[str, types.ModuleType] = {}
        self._errors: dict[str, str] = {}

    @staticmethod
    def module_name(stem: str) -> str:
        return f"specc_{stem}"

    def module(self, stem: str) -> types.ModuleType:
        if stem in self._modules:
            return self._modules[stem]
        if stem in self._errors:
            raise RuntimeError(self._errors[stem])
        try:
            mod = self._compile_and_import(stem)
        except Exception as e:
            self._errors[stem] = f"{type(e).__name__}: {e}"
            raise
        self._modules[stem] = mod
        return mod

    def cls(self, class_name: str) -> type:
        """specc's class of that (CLArena) name, e.g. 'HATMaskResNet18'."""
        mod = self.module(CLASS_SPECS[class_name])
        return getattr(mod, class_name)

    def import_path(self, class_name: str) -> str:
        """`module.Class`, importable once `outdir` is on sys.path (for Hydra's `_target_`)."""
        self.cls(class_name)
        return f"{self.module_name(CLASS_SPECS[class_name])}.{class_name}"

    def _compile_and_import(self, stem: str) -> types.ModuleType:
        import_clarena()  # a --base clarena module may import clarena: have it (and the stub) ready
        out = self.outdir / f"{self.module_name(stem)}.py"
        cmd = [sys.executable, "-m", "specc.cli", "compile", str(SPECS / f"{stem}.cl"),
               "--base", "clarena", "-o", str(out)]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd[1:])}` exited {proc.returncode}: "
                               f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
        name = self.module_name(stem)
        spec = importlib.util.spec_from_file_location(name, out)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        try:
            with stub_window():
                spec.loader.exec_module(mod)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return mod
