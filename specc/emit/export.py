"""`specc export`: one backbone, for fixed arguments, as a standalone module that imports torch only.

For vendoring: the module tree is written out as explicit constructor calls in registration order
(the elaborated IR's, so the same random numbers are drawn as by the generated class), the forward
is the runtime's traced and rewritten graph as source, and the backbone API it needs (the base
classes of specc.runtime and the modules they call, the per-task batch-norm routing) is copied in.
Same state_dict and bit-identical outputs as `specc.build` with those arguments.

Nothing here names a masking scheme: a masked class is the scheme's base (`Scheme.base`, whose
module is copied in) and what its pass's `export_class` returns (specc.runtime.schemes.ExportedClass:
constructor, forward, extra members and sources). A scheme whose declaration gives `exportable` (the
reason, such as backup paths that depend on the tasks backed up at run time) is refused.
Vision transformers are not exported either (refused, positioned): their attention and patch
embedding are modules of specc.runtime.tokens, which an exported module cannot import.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import re
from pathlib import PurePosixPath
from types import SimpleNamespace

from ..core.layers import BY_CLASS
from ..frontend import masking
from ..frontend.classdef import NO_DEFAULT, class_def
from ..frontend.elaborate import elaborate
from ..frontend.errors import SpecError
from ..frontend.load import Program
from ..schemes import Scheme
from . import escape
from .lines import doc_lines, wrap


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


def _runtime_imports(module) -> list:
    """The specc.runtime modules `module` imports (absolute or relative), in the order it imports them."""
    out = []
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            name = importlib.util.resolve_name("." * node.level + node.module, module.__package__)
            if name.startswith("specc.runtime."):
                out.append(importlib.import_module(name))
    return out


def _copied_modules() -> list:
    """The modules whose code an exported module holds: the specc.runtime modules the schemes' base
    classes call (such as a gate and its selection; dependencies first), specc.runtime.backbone, then
    each base's module, in the scheme registry's order. Not specc.runtime.positions: the hook that
    uses it is left out."""
    from ..runtime import backbone
    from ..runtime.bases import SCHEME_BASES

    bases = list(dict.fromkeys(inspect.getmodule(cls) for cls in SCHEME_BASES.values()))
    done = {backbone, *bases, importlib.import_module("specc.runtime.positions")}
    helpers: list = []

    def visit(module) -> None:
        for dep in _runtime_imports(module):
            if dep not in done and dep not in helpers:
                visit(dep)
                helpers.append(dep)

    for module in (backbone, *bases):
        visit(module)
    return [*helpers, backbone, *bases]


def _runtime_sources() -> list[str]:
    """specc.runtime's backbone API (_copied_modules), without their imports."""
    out = []
    for module in _copied_modules():
        src = inspect.getsource(module)
        src = re.sub(r'\A(r?""".*?"""\n)', "", src, flags=re.S)  # the module docstring
        # Backbone's hook that names spec lines in a generated constructor's errors: an exported
        # module has no spec comments, and no specc.runtime.positions to import
        src = re.sub(r"\n    def __init_subclass__\(.*?\n(?=\n)", "", src, flags=re.S)
        # The gate's NumPy selection (specc.runtime.bracket) is not exported: torch only, the radix select
        src = re.sub(r"\ntry:  # the bracket select.*?\n    bracket_order_statistics = None[^\n]*\n",
                     "\nbracket_order_statistics = None  # exported: torch only\n", src, flags=re.S)
        src = re.sub(r"^__all__ = \[.*?\]\n", "", src, flags=re.S | re.M)
        lines = [line for line in src.splitlines()
                 if not line.startswith(("from ", "import ", "pylogger = "))]
        out.append("\n".join(lines).strip("\n"))
    return out


def _own_callees(fn) -> list:
    """The functions and classes of fn's own module that fn calls, directly or through one another
    (a WSN form calls `_masked`, which applies `MaskedWeight`): an exported file has no specc to import."""
    found: dict = {}
    todo = [fn]
    while todo:
        for name in todo.pop().__code__.co_names:
            g = fn.__globals__.get(name)
            if (g is not fn and g not in found and (inspect.isfunction(g) or inspect.isclass(g))
                    and g.__module__ == fn.__module__):
                found[g] = None
                if inspect.isfunction(g):
                    todo.append(g)
    return list(found)


def _function_sources(globals_used: dict) -> list[str]:
    """The helper functions a compiled forward calls (independent_bn, wsn_linear, ...), under the
    names the forward's code uses, each after the private functions of its own module it calls."""
    out = []
    for name, fn in globals_used.items():
        src = "".join(inspect.getsource(f) + "\n\n" for f in _own_callees(fn)) + inspect.getsource(fn)
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
    from ..runtime.schemes import scheme_pass

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
    plain_cls = [f"class {plain}(Backbone):", *doc_lines(f"The network {net.network_name}, fixed arguments."), "",
                 *init, "", *fwd]

    # the runtime functions the plain forward calls too (the gate product of `mul`)
    helpers: dict = {k: plain_fn.__globals__[k] for k in globals_read(plain_src) if k.startswith("specc_runtime_")}
    sources: list[str] = []  # module-level source the masked class calls
    classes = [plain_cls]
    if scheme is None and program.continual:
        classes.append([f"class {name}(CLBackbone, {plain}):", *doc_lines(f"{name}: {plain} as a continual backbone."),
                        "", "    def __init__(self) -> None:",
                        f"        super().__init__(output_dim={escape.literal(model.output_dim)})",
                        "", "    def forward(self, input, stage=None, task_id=None):",
                        f"        return {plain}.forward(self, input, stage)"])
    elif scheme is not None:
        helpers.update({k: v for k, v in free_globals(model).items() if k.startswith("specc_runtime_")})
        exported = scheme_pass(scheme).export_class(model, _WRITER)
        classes.append(_masked_class(model, scheme, exported, name, plain, args))
        sources = exported.sources
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
    parts = ["\n".join(header), *_runtime_sources(), *_function_sources(helpers), *sources,
             *["\n".join(c) for c in classes]]
    text = "\n\n\n".join(p.strip("\n") for p in parts) + "\n"
    compile(text, "<exported>", "exec")
    return text


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


# how a scheme's export_class writes literals (the runtime does not import specc.emit)
_WRITER = SimpleNamespace(literal=escape.literal, string=escape.string, identifier=escape.identifier, wrap=wrap)


def _masked_class(model, scheme: Scheme, exported, name: str, plain: str, args: dict) -> list[str]:
    """The masked class: the scheme's base and the plain network, what its pass's export_class gave,
    the per-task batch norms, the plain network's masked forward."""
    from ..runtime.codegen import forward_source

    groups = model._specc_bn_groups
    init = list(exported.init)
    if "batch_normalization" in args or getattr(model, "batch_normalization", None) is not None:
        init.append(f"        self.batch_normalization = {escape.literal(getattr(model, 'batch_normalization', None))}")
    init += _bn_lines(groups, "create")
    forward = [*exported.forward_head,
               "        bn_task = " + ("(f\"{test_task_id if test_task_id is not None else self.task_id}\" "
                                       "if stage in ('test', 'unlearning_test') else None)" if groups else "None"),
               *exported.forward_tail]
    methods = ["", "    def setup_task_id(self, task_id: int) -> None:", "        super().setup_task_id(task_id)",
               *_bn_lines(groups, "setup"),
               "", "    def store_bn(self) -> None:", *(_bn_lines(groups, "store") or ["        pass"]),
               "", "    def initialize_independent_bn(self) -> None:", *(_bn_lines(groups, "reset") or ["        pass"])]
    bases = [plain, scheme.base] if scheme.plain_first else [scheme.base, plain]
    return [f"class {name}({', '.join(bases)}):", *doc_lines(f"{name}: {plain} with {scheme.summary}."), "",
            *exported.members, "    def __init__(self) -> None:", *init, "", *forward, "",
            *_method(forward_source(model), "_masked_forward"), *methods, *exported.methods]
