"""`specc.mask(model, scheme, ...)`: any traceable model made a masked backbone with the seed's API.

The model keeps its modules (its state_dict keys come first, the scheme's parameters after them)
and its class becomes a subclass of its own class and the scheme's backbone class: the same passes
as for generated classes trace its forward, find its weighted layers, their unit owners and mask
points, and rewrite it. Its forward then takes the scheme's arguments and returns what the seed's
backbones return; `activations` holds, per weighted layer, its units after the activation that
follows its mask (or after the mask when none does), as CLArena's backbones record them.
"""
from __future__ import annotations

from torch import nn

from .bases import HATMaskBackbone, WSNMaskBackbone
from .gates import PercentileLayerParameterMaskingByScore
from .schemes import hat, wsn

_types: dict[tuple[type, str], type] = {}


def _masked_type(cls: type, scheme: str) -> type:
    key = (cls, scheme)
    if key not in _types:
        mixin, base, prefix = {"hat": (hat.HATMasked, HATMaskBackbone, "HATMask"),
                               "wsn": (wsn.WSNMasked, WSNMaskBackbone, "WSNMask")}[scheme]
        _types[key] = type(f"{prefix}{cls.__name__}", (mixin, base, cls),
                           {"__module__": cls.__module__, "__qualname__": f"{prefix}{cls.__qualname__}"})
    return _types[key]


def mask(model: nn.Module, scheme: str = "hat", *, gate: str = "sigmoid", batch_normalization: str | None = None,
         output_dim: int | None = None, protect_shortcuts: bool = False) -> nn.Module:
    """Make `model` (in place; also returned) a backbone of masking scheme `scheme`:

    - "hat": HAT's unit masks (HATMaskBackbone's API: setup_task_id, get_mask, store_mask,
      get_layer_measure_parameter_wise, ...); `gate`, `batch_normalization` (None: the model's
      batch norms, if any, are shared by all tasks; "independent": per-task copies),
      `protect_shortcuts` as for specs;
    - "wsn": WSN's parameter masks (WSNMaskBackbone's API), every linear/conv scored.

    `output_dim` is the backbone's `output_dim` (the heads' input size)."""
    if scheme not in ("hat", "wsn"):
        raise ValueError(f"specc.mask: unknown scheme {scheme!r}; schemes: 'hat', 'wsn' "
                         "(AmnesiacHAT builds backups from the network's constructor: compile a spec for it)")
    if isinstance(model, (HATMaskBackbone, WSNMaskBackbone)) or hasattr(model, "_specc_plain"):
        raise ValueError("specc.mask: the model is a masked backbone already")
    plain = type(model)
    model.__class__ = _masked_type(plain, scheme)
    # The state the backbone base classes' constructors set (their __init__ would also re-run the
    # model's own): Backbone, CLBackbone, then the scheme's base.
    # (A model that has some of these already, such as a CLArena-style network, keeps them.)
    if output_dim is not None or not hasattr(model, "output_dim"):
        model.output_dim = output_dim
    if not hasattr(model, "weighted_layer_names"):
        model.weighted_layer_names = []
    model.processed_task_ids = []
    model._specc_derive_records = True
    if scheme == "hat":
        model.gate = gate
        model.gate_fn = nn.Sigmoid() if gate == "sigmoid" else None
        model.task_embedding_t = nn.ModuleDict()
        model.masks = {}
        HATMaskBackbone.sanity_check(model)
        hat.install(model, plain, batch_normalization, protect_shortcuts=protect_shortcuts, cache=False)
    else:
        model.gate_fn = PercentileLayerParameterMaskingByScore
        model.weight_score_t = nn.ModuleDict()
        model.bias_score_t = nn.ModuleDict()
        wsn.install(model, plain, batch_normalization, cache=False)
    return model
