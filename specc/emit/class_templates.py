"""The classes around the plain network: the continual class, the masked class and the HAT block
classes (`--base clarena`), the constructor signatures users call, and the module docstring's summary."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from ..frontend import ast as A
from ..frontend import masking
from ..frontend.classdef import NO_DEFAULT, annotation, class_def, literal
from ..frontend.load import Program
from . import escape
from .lines import doc_lines, wrap

if TYPE_CHECKING:
    from .writer import Writer

def summary(program: Program, overrides: dict | None) -> str:
    """The weighted layers with the default arguments, when every parameter has one."""
    from ..frontend.elaborate import elaborate
    from ..frontend.facts import analyse

    cdef = class_def(program, overrides)
    if any(d.default is NO_DEFAULT for d in cdef.params):
        missing = ", ".join(d.name for d in cdef.params if d.default is NO_DEFAULT)
        return (f"Its layers depend on constructor arguments without defaults ({missing});\n"
                f"`specc show {escape.display_path(PurePosixPath(program.path).name)} -D name=value` "
                "lists them for given values.")
    net = analyse(elaborate(program, {}, overrides))
    lines = [f"Weighted layers with the default arguments ({len(net.weighted_layer_names)}):"]
    lines += [f"    {name}" for name in net.weighted_layer_names]
    return "\n".join(lines)


# CLArena's pipelines pass `disable_unlearning` to every backbone they build (its classes take any
# keyword through **kwargs); only AmnesiacHAT uses it, every other class accepts and ignores it.
DISABLE_UNLEARNING = "disable_unlearning: bool = False"


# CLArena's constructors take any keyword (its Backbone drops what no class reads), so configs
# written for it may carry keys no class reads (`batch_normalisation`, misspelt, in its author's).
# With `--base clarena` the classes users build take them too and warn, naming them; with specc's
# own base an unknown keyword stays a TypeError.
UNKNOWN_KWARGS = "**unknown_kwargs"
IGNORE_UNKNOWN = "ignore_unknown(type(self).__name__, unknown_kwargs)"


def signature(program: Program, overrides: dict | None, base: str) -> list[str]:
    sig = [f"{escape.identifier(d.name)}: {d.annotation}" + ("" if d.default is NO_DEFAULT else f" = {d.default_src}")
           for d in class_def(program, overrides).params]
    if not any(d.startswith("disable_unlearning:") for d in sig):
        sig += ["*", DISABLE_UNLEARNING]
    if base == "clarena":
        sig.append(UNKNOWN_KWARGS)
    return sig


def init_head(w: Writer) -> list[str]:
    """The first lines of a constructor users call (the network's, the continual and masked classes')."""
    return [f"        {IGNORE_UNKNOWN}"] if w.base == "clarena" else []


def continual_class(w: Writer, program: Program, overrides, final: str, plain: str) -> list[str]:
    names = [p.name for p in w.network.params]
    call = ["output_dim=output_dim" if "output_dim" in w.net_params else "output_dim=None"]
    call += [f"{n}={n}" for n in names if n != "output_dim"]
    doc = f"{final}: the network {plain} as a continual-learning backbone (the forward ignores task_id)."
    return [f"class {final}(CLBackbone, {plain}):",
            *doc_lines(doc),
            "",
            *wrap("    ", f"def __init__({', '.join(['self'] + signature(program, overrides, w.base))}) -> None:"),
            *init_head(w),
            *wrap("        ", f"super().__init__({', '.join(call)})"),
            "",
            "    def forward(self, input: Tensor, stage: str | None = None, task_id: int | None = None) "
            "-> tuple[Tensor, dict[str, Tensor]]:",
            f"        return {plain}.forward(self, input, stage)"]


def hat_block_class(w: Writer, b: A.BlockDef, hat_blocks: list[A.BlockDef]) -> list[str]:
    """A block as a HAT backbone of its own, as CLArena's HAT ResNet blocks are (`--base clarena`):
    it holds the task embeddings of its layers, drawn right after its layers are built (shared with
    the network's `task_embedding_t`), its gate and stored masks, and its per-task batch norms."""
    plain = w.class_names[b.name]
    name = f"HATMask{plain}"
    net_names = w.block_net_params[b.name]
    sig = ["self", "path: str", "in_shape: tuple"]
    for p in b.params:
        default = "" if p.default is None else f" = {literal(w._value(p.default))}"
        sig.append(f"{escape.identifier(p.name)}: {annotation(p.type)}{default}")
    sig += ["*", "gate: str"]
    call = ["output_dim=None", "gate=gate", "path=path", "in_shape=in_shape"]
    call += [f"{p.name}={p.name}" for p in b.params]
    for n in net_names:
        if n == "batch_normalization":
            sig.append("batch_normalization: str | None")
            call.append("batch_normalization=hat.uses_batch_norm(batch_normalization)")
        else:
            sig.append(f"{n}: {annotation(w.net_params[n].type)}")
            call.append(f"{n}={n}")
    sig.append("output_dim: int | None = None")
    mode = "batch_normalization" if "batch_normalization" in net_names else "None"
    doc = (f"{plain} as a HAT backbone of its own, as the blocks of CLArena's HAT ResNets are: it holds the "
           "task embeddings of its layers (drawn right after its layers are built; the network's "
           "`task_embedding_t` shares them), its gate, its stored masks and its per-task batch norms.")
    lines = [f"class {name}(hat.HATBlock, HATMaskBackbone, {plain}):", *doc_lines(doc), ""]
    lines += [f"    forward = {plain}.forward  # the network applies the masks; the block's computation is {plain}'s"]
    inner = [x for x in hat_blocks if x.name in set(w.ops_in(b.body))]
    lines += [f"    block_{x.name} = hat.nested(HATMask{w.class_names[x.name]})" for x in inner]
    lines += ["", *wrap("    ", f"def __init__({', '.join(sig)}) -> None:")]
    if inner:
        lines += ["        self.gate = gate  # its own blocks are built (as HAT backbones) by the constructor below",
                  f"        self.batch_normalization_mode = {mode}"]
    lines += [*wrap("        ", f"super().__init__({', '.join(call)})"),
              f"        hat.install_block(self, {mode})"]
    return lines


def masked_class(w: Writer, program: Program, overrides, final: str, plain: str,
                 hat_blocks: Sequence[A.BlockDef] = ()) -> list[str]:
    scheme = masking.scheme(program)
    runtime_module = scheme.runtime
    opts = masking.options(program)
    class_names = [p.name for p in masking.class_params(program)]
    call = ["output_dim=output_dim" if "output_dim" in class_names else "output_dim=None"]
    if scheme.unit_masks:
        call.append("gate=gate")
    call += [f"{name}={name}" for name, _, _ in scheme.extra_params]
    weights = w.network.pretrained.param if w.network.pretrained is not None else None
    for p in w.network.params:
        if p.name == "output_dim":
            continue
        if p.name == weights:
            call.append(f"{p.name}=None")  # loaded below, once the masking scheme has set up its parameters
            continue
        if p.name == "batch_normalization":
            if "batch_normalization" in class_names:
                call.append(f"batch_normalization={runtime_module}.uses_batch_norm(batch_normalization)")
            else:
                call.append("batch_normalization=False")
        else:
            call.append(f"{p.name}={p.name}")
    install = ["self", plain]
    install.append("batch_normalization=batch_normalization" if "batch_normalization" in class_names
                   else "batch_normalization=None")
    for key in ("protect_shortcuts", "fold_batch_norm", "mask_layer_norms"):
        if opts.get(key):
            install.append(f"{key}=True")
    if opts.get("rank_by", "score") != "score":
        install.append(f"rank_by={escape.string(opts['rank_by'])}")
    if opts.get("point", "earliest") != "earliest":
        install.append(f"point={escape.string(opts['point'])}")
    bases = [f"{runtime_module}.{scheme.mixin}"] + ([plain, scheme.base] if scheme.plain_first else [scheme.base, plain])
    doc = f"{final}: the network {plain} with {scheme.summary} (specc.runtime.schemes.{runtime_module})."
    lines = [f"class {final}({', '.join(bases)}):", *doc_lines(doc), ""]
    if scheme.backups:
        lines += [f"    original_backbone_class = {plain}"]
    direct = [b for b in hat_blocks if b.name in set(w.ops_in(w.network.body))]
    lines += [f"    block_{b.name} = hat.nested(HATMask{w.class_names[b.name]})  # blocks are HAT backbones, as in CLArena"
              for b in direct]
    if lines[-1] != "":
        lines.append("")
    lines += [*wrap("    ", f"def __init__({', '.join(['self'] + signature(program, overrides, w.base))}) -> None:"),
              *init_head(w)]
    if hat_blocks:
        mode = "batch_normalization" if "batch_normalization" in class_names else "None"
        lines += ["        # The blocks are built as HAT backbones by the plain constructor: they need these first.",
                  "        self.gate = gate",
                  f"        self.batch_normalization_mode = {mode}"]
    lines += [
              *wrap("        ", f"super().__init__({', '.join(call)})"),
              *wrap("        ", f"{runtime_module}.install({', '.join(install)})")]
    if weights is not None:
        only = ", projections_only=True" if scheme.unit_masks else ""
        comment = "  # as CLArena's HAT ResNets: linear/conv weights only" if only else ""
        lines += [f"        if {weights} is not None:{comment}",
                  f"            pretrained.load(self, self.pretrained_from, {weights}{only})"]
    return lines


