"""torch.export.export of every class in generated/ (plain networks, their CL variants, and the
HAT, AmnesiacHAT and WSN classes in the stages without training: 'test' and 'validation'), with
small inputs: an exported program is one graph (torch.export refuses graph breaks) and it
computes what the class computes.

A forward's `stage`, `test_task_id`, `s_max` and `mask_percentage` are Python constants of the
exported program (torch.export specialises non-tensor inputs); WSN's test masks are tensor inputs.
Blocks (classes built with a module path and input shape) are exported as parts of their network;
a class whose source is that of a class already exported (the plain network inside a masked
class's file) once.

ResNet-101 and ResNet-152 (and their masked classes) are the ResNet-50 code with more bottleneck
blocks, ViT-S/16 and ViT-B/16 the ViT-Ti/16 code wider: they are exported only with
SPECC_SLOW_TESTS=1 (a minute more); ResNet-50's and ViT-Ti/16's classes stand for them otherwise.
Vision transformers are built for 32x32 images."""
from __future__ import annotations

import importlib
import inspect
import os

import pytest
import torch

from conftest import GENERATED

from specc.runtime.bases import Backbone, CLBackbone, HATMaskBackbone, WSNMaskBackbone

ARGS = {"input_dim": 6, "hidden_dims": [5, 4], "output_dim": 4, "input_channels": 3, "gate": "sigmoid"}
DEEP = ("resnet101", "resnet152", "cl_resnet101", "cl_resnet152", "vit_s16", "vit_b16")


def _classes():
    out, seen = [], set()
    for path in sorted(GENERATED.glob("*.py")):
        slow = any(path.stem == d or path.stem.startswith(d + "_") for d in DEEP)
        module = importlib.import_module(f"generated.{path.stem}")
        for name, cls in vars(module).items():
            if not (isinstance(cls, type) and issubclass(cls, Backbone) and cls.__module__ == module.__name__):
                continue
            if "path" in inspect.signature(cls).parameters:
                continue  # a block
            source = inspect.getsource(cls)
            if source in seen:
                continue  # the plain network of a masked class, the same code as its own file's
            seen.add(source)
            marks = [pytest.mark.skipif(not os.environ.get("SPECC_SLOW_TESTS"),
                                        reason="ResNet-50 (ViT-Ti/16) stands for it: the same code, deeper (wider)")] \
                if slow else []
            out.append(pytest.param(cls, id=f"{path.stem}.{name}", marks=marks))
    return out


def _build(cls):
    params = inspect.signature(cls).parameters
    args = {k: v for k, v in ARGS.items() if k in params and params[k].default is inspect.Parameter.empty}
    if "img_size" in params:  # a vision transformer: two 16x16 patches a side
        args["img_size"] = 32
    torch.manual_seed(0)
    net = cls(**args)
    image = "input_channels" in params or "img_size" in params
    x = torch.randn(2, 3, 32, 32) if image else torch.randn(2, ARGS["input_dim"])
    return net, x


def _equal(exported, eager):
    assert torch.allclose(exported[0], eager[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", _classes())
def test_torch_export(cls):
    net, x = _build(cls)
    if issubclass(cls, HATMaskBackbone):
        net.setup_task_id(1)
        for embedding in net.task_embedding_t.values():
            torch.nn.init.normal_(embedding.weight)
        net.store_mask()
        if getattr(net, "batch_normalization", None) == "independent":
            net.store_bn()
        net.eval()
        calls = [((x, "test"), {"test_task_id": 1}), ((x, "validation"), {"s_max": 400.0})]
    elif issubclass(cls, WSNMaskBackbone):
        net.setup_task_id(1)
        if net._specc_bn_groups:
            net.store_bn()
        wm, bm = net.get_mask("train", mask_percentage=0.5)
        masks = ({k: v.detach() for k, v in wm.items()}, {k: None if v is None else v.detach() for k, v in bm.items()})
        net.eval()
        calls = [((x, "test", 0.5), {"test_mask": masks, "test_task_id": 1}), ((x, "validation", 0.5), {})]
    elif issubclass(cls, CLBackbone):
        net.eval()
        calls = [((x, "test"), {"task_id": 1})]
    else:
        net.eval()
        calls = [((x,), {})]
    for args, kwargs in calls:
        program = torch.export.export(net, args, kwargs=kwargs)
        with torch.no_grad():
            _equal(program.module()(*args, **kwargs), net(*args, **kwargs))
