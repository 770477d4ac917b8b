"""A stand-in for torchvision, just enough for CLArena's `import torchvision` lines.

Why: torchvision's registry wheel does not import against the CPU torch build used here (and it is
not installed), yet CLArena imports it at module level in three places that matter to us:

- `clarena/backbones/{resnet,hat_mask_resnet,amnesiac_hat_resnet}.py`: `import torchvision`, used only
  for `torchvision.models.resnet18(weights=...).state_dict()` when `pretrained_weights` is given;
- `clarena/cl_algorithms/{der,amnesiac_hat,clpu_derpp}.py`: `from torchvision.transforms import
  transforms`, used only in annotations (`Callable | transforms.Compose | None`, evaluated at def time,
  so `Compose` must be a class);
- `clarena/utils/transforms.py` (imported by cbp/fgadahat): `from torchvision import transforms`,
  `transforms.Compose` in an annotation and Grayscale/ToTensor/Resize inside a function body.

`torchvision.datasets.VisionDataset` is offered too (CLArena's dataset modules subclass it), though
the client tests never import `clarena.cl_datasets`.

Every stub class raises on use: nothing here pretends to be torchvision. The one thing a test may
need to *call*, `torchvision.models.resnet18`, raises too until a test patches it
(`test_pretrained_*` replaces it with a function returning a module with a given state dict).

How it stays out of everybody else's way (see `loader.import_clarena`):

1. lightning, torchmetrics, captum, matplotlib, rich, hydra and omegaconf are imported *before* the
   stub exists, and the two lazy `RequirementCache("torchvision")` flags (lightning's and
   torchmetrics') are evaluated then, so both cache "torchvision absent" for the whole session;
2. the stub modules are put into `sys.modules` only for the duration of the `import clarena...`
   statements (and of importing specc's compiled modules), then removed again. CLArena's modules keep
   their own references (`resnet.torchvision`, `der.transforms`), so nothing else can find the stub:
   `importlib.util.find_spec("torchvision")` returns None again afterwards, as before;
3. while installed, each stub module carries a real `ModuleSpec` (`__spec__` is not None), so a
   `find_spec("torchvision")` issued during that window returns a spec instead of raising
   `ValueError: torchvision.__spec__ is None`.
"""
from __future__ import annotations

import importlib.machinery
import types

STUB_MARK = "__clarena_client_stub__"


def _placeholder(qualname: str) -> type:
    def __init__(self, *args, **kwargs):  # noqa: N807
        raise RuntimeError(f"{qualname} is a stand-in (tests/clarena_client/stub.py): torchvision is not available here")

    return type(qualname.rsplit(".", 1)[-1], (), {"__init__": __init__, "__module__": qualname.rsplit(".", 1)[0]})


def _module(name: str, package: bool) -> types.ModuleType:
    m = types.ModuleType(name)
    m.__spec__ = importlib.machinery.ModuleSpec(name, loader=None, is_package=package)
    if package:
        m.__path__ = []  # a package: `import torchvision.transforms` looks up sys.modules, never a path
    m.__file__ = __file__
    setattr(m, STUB_MARK, True)
    return m


def _unavailable_resnet18(*args, **kwargs):
    raise RuntimeError(
        "torchvision.models.resnet18 is a stand-in (tests/clarena_client/stub.py); a test must patch it "
        "to return a module whose state_dict() is a torchvision-layout state dict"
    )


def build_torchvision_stub() -> dict[str, types.ModuleType]:
    """The stub package and its submodules, keyed by module name (fresh objects on each call)."""
    tv = _module("torchvision", package=True)
    tv.__version__ = "0.0.0+clarena-client-stub"

    transforms_pkg = _module("torchvision.transforms", package=True)
    transforms_mod = _module("torchvision.transforms.transforms", package=False)
    for name in ("Compose", "Grayscale", "ToTensor", "Resize", "Normalize", "Lambda", "RandomCrop",
                 "RandomHorizontalFlip", "Pad", "CenterCrop"):
        cls = _placeholder(f"torchvision.transforms.transforms.{name}")
        setattr(transforms_mod, name, cls)
        setattr(transforms_pkg, name, cls)
    transforms_pkg.transforms = transforms_mod

    datasets_pkg = _module("torchvision.datasets", package=True)
    vision_mod = _module("torchvision.datasets.vision", package=False)
    vision_dataset = _placeholder("torchvision.datasets.vision.VisionDataset")
    vision_mod.VisionDataset = vision_dataset
    datasets_pkg.VisionDataset = vision_dataset
    datasets_pkg.vision = vision_mod

    models_pkg = _module("torchvision.models", package=True)
    models_pkg.resnet18 = _unavailable_resnet18

    tv.transforms = transforms_pkg
    tv.datasets = datasets_pkg
    tv.models = models_pkg
    return {
        "torchvision": tv,
        "torchvision.transforms": transforms_pkg,
        "torchvision.transforms.transforms": transforms_mod,
        "torchvision.datasets": datasets_pkg,
        "torchvision.datasets.vision": vision_mod,
        "torchvision.models": models_pkg,
    }
