"""`specc.mask(model, scheme, ...)`: any traceable model made a masked backbone with the seed's API.

The model keeps its modules (its state_dict keys come first, the scheme's parameters after them)
and its class becomes a subclass of its own class and the scheme's backbone class: the same passes
as for generated classes trace its forward, find its weighted layers, their unit owners and mask
points, and rewrite it. Its forward then takes the scheme's arguments and returns what the seed's
backbones return; `activations` holds, per weighted layer, its units after the activation that
follows its mask (or after the mask when none does), as CLArena's backbones record them.
"""
from __future__ import annotations

import linecache
from pathlib import Path

import torch
from torch import fx, nn

from ..analysis import AnalysisError
from ..schemes import SCHEMES, Scheme
from . import bases
from .schemes import scheme_pass

_types: dict[tuple[type, str], type] = {}
_LIBRARY_DIRS = (str(Path(torch.__file__).parent), str(Path(__file__).parent.parent))


def _masked_type(cls: type, scheme: Scheme) -> type:
    key = (cls, scheme.name)
    if key not in _types:
        runtime = scheme_pass(scheme)
        bases_ = (getattr(runtime, scheme.mixin), getattr(bases, scheme.base), cls)
        prefix = scheme.class_prefix
        _types[key] = type(f"{prefix}{cls.__name__}", bases_,
                           {"__module__": cls.__module__, "__qualname__": f"{prefix}{cls.__qualname__}"})
    return _types[key]


def mask(model: nn.Module, scheme: str = "hat", *, output_dim: int | None = None, **options) -> nn.Module:
    """Make `model` (in place; also returned) a backbone of masking scheme `scheme`, with the
    options a spec's `mask SCHEME(...)` takes:

    - "hat": HAT's unit masks (HATMaskBackbone's API: setup_task_id, get_mask, store_mask,
      get_layer_measure_parameter_wise, ...); `gate` (default "sigmoid"), `batch_normalization`
      (None: the model's batch norms, if any, are shared by all tasks; "independent": per-task
      copies), `protect_shortcuts`, `fold_batch_norm` as for specs;
    - "wsn": WSN's parameter masks (WSNMaskBackbone's API), every linear/conv scored;
      `batch_normalization` as for HAT.

    `output_dim` is the backbone's `output_dim` (the heads' input size)."""
    s = SCHEMES.get(scheme)
    if s is None:
        raise ValueError(f"specc.mask: unknown scheme {scheme!r}; schemes: "
                         + ", ".join(repr(n) for n, d in SCHEMES.items() if d.maskable is None))
    if s.maskable is not None:
        raise ValueError(f"specc.mask: {s.title} cannot mask a built model: {s.maskable}")
    known = {o.name: o for o in s.options}
    for name in options:
        if name not in known:
            raise TypeError(f"specc.mask: {scheme} has no option {name!r}; options: {', '.join(known)}")
    if s.gates:
        options.setdefault("gate", s.gates[0])
    for name, value in options.items():
        problem = known[name].problem(value)
        if problem is not None:
            raise ValueError(f"specc.mask: {problem}")
    if isinstance(model, tuple(bases.SCHEME_BASES.values())) or hasattr(model, "_specc_plain"):
        raise ValueError("specc.mask: the model is a masked backbone already")
    plain = type(model)
    before = dict(model.__dict__)
    before_sub = {k: dict(v) for k, v in before.items() if k in ("_modules", "_parameters", "_buffers")}
    model.__class__ = _masked_type(plain, s)
    try:
        # The state the backbone base classes' constructors set (their __init__ would also re-run
        # the model's own): Backbone, CLBackbone here, the scheme's base in its `adopt`.
        # (A model that has some of these already, such as a CLArena-style network, keeps them.)
        if output_dim is not None or not hasattr(model, "output_dim"):
            model.output_dim = output_dim
        if not hasattr(model, "weighted_layer_names"):
            model.weighted_layer_names = []
        model.processed_task_ids = []
        model._specc_derive_records = True
        scheme_pass(s).adopt(model, plain, **options)
    except Exception as e:
        # Nothing changed on failure: the model is the plain model it was.
        model.__class__ = plain
        model.__dict__.clear()
        model.__dict__.update(before)
        model.__dict__.update(before_sub)
        if isinstance(e, AnalysisError):
            raise AnalysisError(_refusal(e, s), e.node) from None
        if isinstance(e, fx.proxy.TraceError):
            raise ValueError(_untraceable(e, model, s)) from None
        raise
    return model


def _refusal(e: AnalysisError, scheme: Scheme) -> str:
    """The analysis's refusal with where in the model's source it comes from and what to do."""
    fx_node = getattr(e.node, "where", None)
    trace = (getattr(fx_node, "stack_trace", None) or "").strip().splitlines()
    at = ""
    if trace:
        at = f" (at {trace[0].strip()}: {trace[1].strip()})" if len(trace) > 1 else f" (at {trace[0].strip()})"
    module = getattr(e.node, "name", "") if getattr(e.node, "module", False) else ""
    where = f" in module '{module.replace('/', '.')}'" if module else ""
    hint = getattr(e, "hint", None) or (
        "specc follows each unit (channel or feature) through the forward; write the operation with ops it "
        "knows: flatten(x, 1) or x.view(b, -1) for a flatten, a gate as x * s.view(b, c, 1, 1) / "
        "s[:, :, None, None] / s.unsqueeze(-1) with b, c read from x.size(), a transformer's steps with "
        "specc.runtime.tokens (PatchEmbed, SelfAttention, prepend_token for a class token, add_embedding for "
        "a position embedding, select_token, mean_tokens), or move it into a module the scheme need not "
        "look into")
    return f"specc.mask({scheme.name!r}): {e}{where}{at}. {hint}"


def _untraceable(e: Exception, model: nn.Module, scheme: Scheme) -> str:
    """A forward torch.fx cannot trace (a branch on tensor values, most often), named by the module
    and the line of the model's own code where tracing stopped."""
    frame = None
    tb = e.__traceback__
    while tb is not None:  # the innermost frame of the model's code (not torch's, not specc's)
        if not tb.tb_frame.f_code.co_filename.startswith(_LIBRARY_DIRS):
            frame = tb
        tb = tb.tb_next
    where = module = ""
    if frame is not None:
        code = linecache.getline(frame.tb_frame.f_code.co_filename, frame.tb_lineno).strip()
        where = f" (at File \"{frame.tb_frame.f_code.co_filename}\", line {frame.tb_lineno}: {code})"
        owner = frame.tb_frame.f_locals.get("self")
        name = next((n for n, m in model.named_modules() if m is owner), None)
        module = f" in module '{name or type(model).__name__}'" if name is not None else ""
    return (f"specc.mask({scheme.name!r}): cannot trace the forward{module}{where}: {e}. specc traces the "
            "forward once with torch.fx, which runs it on placeholders: an `if` or a loop on tensor values "
            "cannot be followed; compute both cases (torch.where), or move the branch into a function "
            "registered with torch.fx.wrap, which is traced as one call")
