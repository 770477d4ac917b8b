"""`specc export`: one backbone, for fixed arguments, as a standalone module that imports torch only.

For vendoring: the module tree is written out as explicit constructor calls in registration order
(the elaborated IR's, so the same random numbers are drawn as by the generated class), the forward
is the runtime's traced and rewritten graph as source, and the backbone API it needs (the base
classes and WSN gate of specc.runtime, the per-task batch-norm routing, the graph-aware measures)
is copied in. Same state_dict and bit-identical outputs as `specc.build` with those arguments.

AmnesiacHAT backbones are not exported: their backup paths depend on which tasks are backed up,
which is only known at run time.
Vision transformers are not exported either (refused, positioned): their attention and patch
embedding are modules of specc.runtime.tokens, which an exported module cannot import.
"""
from __future__ import annotations

import inspect
import re
from pathlib import PurePosixPath

from ..core.layers import BY_CLASS
from ..frontend import masking
from ..frontend.classdef import NO_DEFAULT, class_def
from ..frontend.elaborate import elaborate
from ..frontend.errors import SpecError
from ..frontend.load import Program
from ..schemes import Scheme
from . import escape
from .source import _doc, _wrap


def _positional(cls: str) -> tuple[str, ...]:
    """The torch arguments of a catalogue class written by position (its entry's leading ones)."""
    entry = BY_CLASS.get(cls)
    return tuple(kw for kw, _ in entry.torch_args[:entry.positional]) if entry is not None else ()


def _module_source(decl) -> str:
    if decl.cls == "ModuleList":
        return "nn.ModuleList()"
    if decl.cls == "Sequential":
        return "nn.Sequential()"
    if decl.cls == "Block":
        return "nn.Module()  # a block; the network's forward runs its layers"
    if not isinstance(decl.cls, str):
        raise SpecError(f"'{decl.name}' is a user's class: an exported module can only name torch.nn classes",
                        decl.pos)
    entry = BY_CLASS.get(decl.cls)
    if entry is not None and entry.torch_module != "nn":  # an exported module imports torch only
        raise SpecError(f"'{decl.name}' is a {entry.name}, built by specc.runtime.{entry.torch_module}: an exported "
                        "module can only name torch.nn classes", decl.pos)
    positional = _positional(decl.cls)
    args = [escape.literal(decl.kwargs[k]) for k in positional if k in decl.kwargs]
    args += [f"{escape.identifier(k)}={escape.literal(v)}" for k, v in decl.kwargs.items() if k not in positional]
    return f"nn.{escape.identifier(decl.cls)}({', '.join(args)})"


def _attribute(path: tuple[str, ...]) -> str:
    out = "self"
    for part in path:
        out += f"[{int(part)}]" if part.isdigit() else f".{escape.identifier(part)}"
    return out


def _runtime_sources() -> list[str]:
    """specc.runtime's backbone API (WSN gate and its selection, base classes), without their imports."""
    from ..runtime import bases, gates, selection

    out = []
    for module in (selection, gates, bases):
        src = inspect.getsource(module)
        src = re.sub(r'\A(r?""".*?"""\n)', "", src, flags=re.S)  # the module docstring
        # Backbone's hook that names spec lines in a generated constructor's errors: an exported
        # module has no spec comments, and no specc.runtime.positions to import
        src = re.sub(r"\n    def __init_subclass__\(.*?\n(?=\n)", "", src, flags=re.S)
        lines = [line for line in src.splitlines()
                 if not line.startswith(("from ", "import ", "__all__", "pylogger = "))
                 and line not in ('    "Backbone",', '    "CLBackbone",', '    "HATMaskBackbone",',
                                  '    "AmnesiacHATBackbone",', '    "WSNMaskBackbone",', "]")]
        out.append("\n".join(lines).strip("\n"))
    return out


def _function_sources(globals_used: dict) -> list[str]:
    """The helper functions a compiled forward calls (independent_bn, wsn_linear, ...), under the
    names the forward's code uses."""
    out = []
    for name, fn in globals_used.items():
        src = inspect.getsource(fn)
        if "_masked_bias(" in src:  # a WSN form (specc.runtime.schemes.wsn.WSN_FORMS)
            from ..runtime.schemes import wsn

            src = inspect.getsource(wsn._masked_bias) + "\n\n" + src
        out.append(f"{src.rstrip()}\n\n\n{name} = {fn.__name__}")
    return out


def _method(src: str, name: str, extra: str = "") -> list[str]:
    """A compiled forward (`def forward(self, ...)`) as a method named `name`, with `extra`
    parameters appended (a plain forward takes the seed's `stage`, which it does not use)."""
    lines = src.rstrip().splitlines()
    lines[0] = re.sub(r"^def forward\(", f"def {name}(", lines[0])
    if extra:
        lines[0] = re.sub(r"\):$", f", {extra}):", lines[0])
    return [("    " + line) if line.strip() else "" for line in lines]


def export_source(program: Program, overrides: dict | None = None) -> str:
    """The standalone module of `program`'s class with every parameter fixed (defaults and `-D`
    values; parameters without a default must be given)."""
    import torch  # noqa: F401  (export builds the network to trace it)

    from .. import __version__
    from ..builder import runtime_class
    from ..frontend.facts import analyse
    from ..runtime.codegen import compile_forward, free_globals, globals_read
    from ..runtime.fx_graph import trace

    overrides = overrides or {}
    cdef = class_def(program, overrides)
    missing = [d.name for d in cdef.params if d.default is NO_DEFAULT]
    if missing:
        raise SpecError(f"export fixes every argument: give {', '.join(missing)} with -D name=value",
                        program.backbone_pos or program.network.pos)
    scheme = masking.scheme(program)
    if scheme is not None and scheme.exportable is not None:
        raise SpecError(f"{scheme.title} backbones cannot be exported: {scheme.exportable}", program.mask.pos)
    args = {d.name: d.default for d in cdef.params}
    net = analyse(elaborate(program, {}, overrides))
    model = runtime_class(program, overrides)()
    name = program.class_name
    plain = f"{name}Network" if (scheme or program.continual) else name

    # -- the plain network: explicit construction, the traced forward
    # (output_dim as a parameter only for the masked class's cooperative constructor chain)
    init = [f"    def __init__(self, output_dim: int | None = {escape.literal(model.output_dim)}) -> None:",
            "        super().__init__(output_dim=output_dim)"]
    for decl in net.modules:
        parent = decl.path[:-1]
        value = _module_source(decl)
        container = next((m for m in net.modules if m.path == parent), None)
        if container is not None and container.cls in ("ModuleList", "Sequential"):
            head, _, comment = value.partition("  # ")
            init.append(f"        {_attribute(parent)}.append({head})" + (f"  # {comment}" if comment else ""))
        else:
            init.append(f"        {_attribute(decl.path)} = {value}")
    plain_names = list(model.weighted_layer_names) if not scheme else \
        [n for n in net.weighted_layer_names]
    init.append(f"        self.weighted_layer_names = {escape.literal(plain_names)}")
    plain_graph = trace(model, model._specc_plain if scheme else type(model))
    plain_fn, plain_src = compile_forward(plain_graph, plain)
    fwd = _method(plain_src, "forward", "stage=None")
    plain_cls = [f"class {plain}(Backbone):", *_doc(f"The network {net.network_name}, fixed arguments."), "",
                 *init, "", *fwd]

    # the runtime functions the plain forward calls too (the gate product of `mul`)
    helpers: dict = {k: plain_fn.__globals__[k] for k in globals_read(plain_src) if k.startswith("specc_runtime_")}
    classes = [plain_cls]
    if scheme is None and program.continual:
        classes.append([f"class {name}(CLBackbone, {plain}):", *_doc(f"{name}: {plain} as a continual backbone."),
                        "", "    def __init__(self) -> None:",
                        f"        super().__init__(output_dim={escape.literal(model.output_dim)})",
                        "", "    def forward(self, input, stage=None, task_id=None):",
                        f"        return {plain}.forward(self, input, stage)"])
    elif scheme is not None:
        helpers.update({k: v for k, v in free_globals(model).items() if k.startswith("specc_runtime_")})
        classes.append(_masked_class(model, net, scheme, name, plain, args))
    spec_name = escape.display_path(PurePosixPath(program.path).name)
    fixed = ", ".join(f"{k}={v!r}" for k, v in args.items())
    doc = (f"{name}, exported by specc {__version__} from {spec_name} for fixed arguments:\n{fixed}.\n\n"
           "A standalone module: it imports torch only. Same state_dict and outputs as specc.build with "
           "these arguments.")
    header = [escape.CODING_LINE, f"# Exported by specc {__version__}. Do not edit: regenerate with `specc export`.",
              escape.docstring(doc), "from __future__ import annotations", "",
              "import logging", "import math", "import struct", "import threading", "from copy import deepcopy",
              "from typing import Callable, NamedTuple",
              "", "import torch", "import torch.nn.functional as F", "from torch import Tensor, nn", "",
              "pylogger = logging.getLogger(__name__)"]
    parts = ["\n".join(header), *_runtime_sources(), *_function_sources(helpers)]
    if scheme is not None and scheme.unit_masks and _measure_inputs(model):
        from ..runtime.schemes import hat

        parts.append("class Segment(NamedTuple):\n    owner: str | None\n    size: int | None\n"
                     "    repeat: int | None = 1\n    start: int = 0")
        parts.append(inspect.getsource(hat._graph_measure).rstrip())
    parts += ["\n".join(c) for c in classes]
    text = "\n\n\n".join(p.strip("\n") for p in parts) + "\n"
    compile(text, "<exported>", "exec")
    return text


def _measure_inputs(model) -> dict:
    """Layers whose inputs are not the previous layer's units one to one (after a flatten, a grouped
    convolution, a concat): their input segments, for the graph-aware measures."""
    out = {}
    for name, segments in model._specc_facts.input_segments.items():
        if not model._measure_is_by_list(name, segments, model.get_layer_by_name(name)):
            out[name] = tuple(tuple(s) for s in segments)
    return out


def _bn_lines(groups, what: str) -> list[str]:
    out = []
    for g in groups:
        owner = _attribute(g.owner)
        attr = escape.identifier(g.attr)
        if what == "create":
            out += [f"        {owner}.{attr}s = nn.ModuleDict()",
                    f"        {owner}.original_{attr}_state_dict = deepcopy({owner}.{attr}.state_dict())"]
        elif what == "setup":
            out += [f"        if str(task_id) not in {owner}.{attr}s:",
                    f"            {owner}.{attr}s[str(task_id)] = deepcopy({owner}.{attr})"]
        elif what == "store":
            out.append(f"        {owner}.{attr}s[str(self.task_id)] = deepcopy({owner}.{attr})")
        else:
            out.append(f"        {owner}.{attr}.load_state_dict({owner}.original_{attr}_state_dict)")
    return out


def _masked_class(model, net, scheme: Scheme, name: str, plain: str, args: dict) -> list[str]:
    from ..runtime.codegen import forward_source

    groups = model._specc_bn_groups
    # The base classes' own code is copied in (specc/runtime/bases.py): the exported class is one
    # of unit masks (HAT's API) or of parameter masks (WSN's).
    if scheme.unit_masks:
        base = "HATMaskBackbone"
        init = [f"        super().__init__(output_dim={escape.literal(model.output_dim)}, gate={escape.literal(model.gate)})"]
        for layer, te in model.task_embedding_t.items():
            shared = next((k for k, v in model.task_embedding_t.items() if v is te), layer)
            init.append(f"        self.task_embedding_t[{escape.string(layer)}] = " + (
                f"self.task_embedding_t[{escape.string(shared)}]" if shared != layer else
                f"nn.Embedding(num_embeddings=1, embedding_dim={te.weight.shape[1]})"))
        forward = ["    def forward(self, input, stage, s_max=None, batch_idx=None, num_batches=None, test_task_id=None):",
                   "        mask = self.get_mask(stage=stage, s_max=s_max, batch_idx=batch_idx, num_batches=num_batches,",
                   "                             test_task_id=test_task_id)",
                   "        bn_task = " + ("(f\"{test_task_id if test_task_id is not None else self.task_id}\" "
                                           "if stage in ('test', 'unlearning_test') else None)" if groups else "None"),
                   "        feature, activations = self._masked_forward(input, mask, bn_task, stage, s_max, batch_idx,",
                   "                                                    num_batches, test_task_id)",
                   "        return feature, mask, activations"]
    else:
        base = "WSNMaskBackbone"
        init = [f"        super().__init__(output_dim={escape.literal(model.output_dim)})"]
        for layer, score in model.weight_score_t.items():
            init.append(f"        self.weight_score_t[{escape.string(layer)}] = nn.Embedding("
                        f"num_embeddings={score.weight.shape[0]}, embedding_dim={score.weight.shape[1]})")
            init.append(f"        self.bias_score_t[{escape.string(layer)}] = nn.Embedding("
                        f"num_embeddings=1, embedding_dim={model.bias_score_t[layer].weight.shape[1]})")
        init.append(f"        self.weighted_layer_names = {escape.literal(list(model.weighted_layer_names))}")
        if model.gate_fn.__name__ != "PercentileLayerParameterMaskingByScore":  # `rank_by`
            init.append(f"        self.gate_fn = {escape.identifier(model.gate_fn.__name__)}")
        forward = ["    def forward(self, input, stage, mask_percentage, test_mask=None, test_task_id=None):",
                   "        weight_mask, bias_mask = self.get_mask(stage, mask_percentage=mask_percentage, test_mask=test_mask)",
                   "        bn_task = " + ("(f\"{test_task_id if test_task_id is not None else self.task_id}\" "
                                           "if stage in ('test', 'unlearning_test') else None)" if groups else "None"),
                   "        feature, activations = self._masked_forward(input, weight_mask, bias_mask, bn_task)",
                   "        return feature, weight_mask, bias_mask, activations"]
    if "batch_normalization" in args or getattr(model, "batch_normalization", None) is not None:
        init.append(f"        self.batch_normalization = {escape.literal(getattr(model, 'batch_normalization', None))}")
    init += _bn_lines(groups, "create")
    methods = ["", "    def setup_task_id(self, task_id: int) -> None:", "        super().setup_task_id(task_id)",
               *_bn_lines(groups, "setup"),
               "", "    def store_bn(self) -> None:", *(_bn_lines(groups, "store") or ["        pass"]),
               "", "    def initialize_independent_bn(self) -> None:", *(_bn_lines(groups, "reset") or ["        pass"])]
    bases = [plain, base] if scheme.plain_first else [base, plain]
    lines = [f"class {name}({', '.join(bases)}):", *_doc(f"{name}: {plain} with {scheme.summary}."), ""]
    inputs = _measure_inputs(model) if scheme.unit_masks else {}
    if inputs:
        lines += _wrap("    ", f"_MEASURE_INPUTS = {_literal_dict(inputs)}")
        lines.append("")
    lines += ["    def __init__(self) -> None:", *init, "", *forward, "", *_method(forward_source(model),
                                                                           "_masked_forward"), *methods]
    if inputs:
        lines += ["", "    def get_layer_measure_parameter_wise(self, neuron_wise_measure, layer_name, aggregation_mode):",
                  "        # where a layer's inputs are not the previous layer's units one to one (a flatten, a grouped",
                  "        # convolution, a concat), its inputs' units as the graph gives them",
                  "        segments = self._MEASURE_INPUTS.get(layer_name)",
                  "        if segments is None:",
                  "            return super().get_layer_measure_parameter_wise(neuron_wise_measure, layer_name, aggregation_mode)",
                  "        return _graph_measure(neuron_wise_measure, layer_name, self.get_layer_by_name(layer_name),",
                  "                              [Segment(*s) for s in segments], aggregation_mode)"]
    return lines


def _literal_dict(d: dict) -> str:
    return "{" + ", ".join(f"{escape.string(k)}: {escape.literal([list(s) for s in v])}" for k, v in d.items()) + "}"
