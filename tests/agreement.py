"""The property of issue 20, on one spec: `check` and the compiled class agree.

`disagreement(drawn, folder)` says why they do not (a short class name first), or None:

1. `compile` (the emitter, in memory) succeeds exactly when `check` (specc.frontend.probe.probe,
   what the CLI's `check` runs) succeeds for the same values (the defaults); with `prepare(...)`
   declarations, the full `compile` (which runs the masking pass for them) too;
2. for the drawn constructor arguments, `check -D args` succeeds exactly when the compiled class
   constructs with them and runs one forward;
3. every refusal names the spec's position: a SpecError (file:line:col) from the front end, or
   from a constructor an exception whose message (or note) names `file.cl:line`; never an internal
   error, never a traceback of another kind;
4. when both succeed, the compiled class has the modules `check` elaborated, its output has the
   shape `check` inferred, the class written by the emitter equals specc.build's (state_dict and
   output torch.equal), the prepared class equals the traced one, and saved weights named by a
   `pretrained ... from "file"` argument are what the network holds.
"""
from __future__ import annotations

import collections
import re
from pathlib import Path

import torch

import specc
from specc.builder import runtime_class
from specc.emit import emit
from specc.frontend.errors import SpecError
from specc.frontend.load import load_program
from specc.frontend.prepare import arguments as prepared_arguments
from specc.frontend.probe import probe
from specc.runtime.loader import load_source
from specc.runtime.pretrained import rename

SIZE = 8  # the input images' height and width
LENGTH = 16  # the input signals' length
OUTCOMES = collections.Counter()  # how the examples ended (a generator that only makes refusals tests little)
RUNTIME_POSITION = re.compile(r"spec\.cl:\d+|blocks\.cl:\d+")


class InputChanged(Exception):
    """The compiled forward overwrote the caller's input tensor."""


class Unpositioned(Exception):
    """A SpecError without a position: a disagreement of its own."""


def _front(program, overrides, image_size=None):
    """(None, the analysed IR) or (the SpecError `check` gives, None); other exceptions propagate.
    `image_size`: the height and width of an `input image(c)` (`check --image-size`), for the
    arguments a class is constructed and run with; `compile` checks without one."""
    try:
        return None, probe(program, overrides, image_size=image_size)
    except SpecError as e:
        if e.pos is None or e.pos.line <= 0:
            raise Unpositioned(f"check: unpositioned SpecError: {e.message}") from e
        return e, None


def _forward(model, x, mask):
    model.train()
    if "hat(" in mask:
        model.setup_task_id(1)
        return model(x, "train", s_max=400, batch_idx=1, num_batches=3)[0]
    if "wsn(" in mask:
        model.setup_task_id(1)
        return model(x, "train", mask_percentage=0.5)[0]
    return model(x)[0]


def _input(kind: str, args: dict) -> torch.Tensor:
    ch = args.get("ch", 3)
    size = {"features": (ch * 4,), "signal": (ch, LENGTH)}.get(kind, (ch, SIZE, SIZE))
    return torch.randn(2, *size, generator=torch.Generator().manual_seed(1))


def _construct_and_run(cls, args, mask, kind, seed=0):
    torch.manual_seed(seed)
    model = cls(**args)
    x = _input(kind, args)
    before = x.clone()
    torch.manual_seed(seed + 1)
    out = _forward(model, x, mask)
    if not torch.equal(x, before):
        raise InputChanged("the forward changed the caller's input tensor")
    return model, out


def _shown(e: BaseException) -> str:
    """An exception as a traceback shows it: its message, then its notes."""
    return "\n".join([str(e)] + list(getattr(e, "__notes__", ())))


def _same(a, out_a, b, out_b, what: str) -> str | None:
    sa, sb = a.state_dict(), b.state_dict()
    if list(sa) != list(sb) or not all(torch.equal(sa[k], sb[k]) for k in sa):
        return f"the {what}'s state_dict differs"
    if not torch.equal(out_a, out_b):
        return f"the {what}'s output differs"
    return None


def _modules(net, model) -> tuple[set, set]:
    """The module paths `check` elaborated and those of the constructed model: a parameter kind
    (class_token) is an nn.Parameter of its module, and a catalogue module's own children
    (patch_embed's proj, attention's qkv) are not spec modules."""
    from specc.core.layers import OPS

    parameters = {k.torch_class for k in OPS.values() if k.parameter}
    expected, leaves = set(), []
    for m in net.modules:
        name = ".".join(m.path)
        if m.cls in parameters:
            owner = model.get_submodule(".".join(m.path[:-1]))
            if not isinstance(owner._parameters.get(m.path[-1]), torch.nn.Parameter):
                expected.add(name)  # missing on the model: reported as a difference
        else:
            expected.add(name)
            if m.cls not in ("ModuleList", "Sequential", "Block"):
                leaves.append(name + ".")
    actual = {name for name, _ in model.named_modules() if name and not name.startswith(tuple(leaves))}
    return expected, actual


def write(drawn, folder: Path) -> Path:
    path = folder / "spec.cl"
    path.write_text(drawn.text)
    if drawn.lib:
        (folder / "lib").mkdir(exist_ok=True)
        (folder / "lib" / "blocks.cl").write_text(drawn.lib)
    return path


def disagreement(drawn, folder: Path) -> str | None:
    """Why `check` and the compiled class disagree on `drawn` (a short class name first), or None."""
    try:
        return _disagreement(drawn, folder)
    except Unpositioned as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - any other exception is a traceback a user would see
        return f"traceback: {type(e).__name__}: {str(e)[:160]}"


def _disagreement(drawn, folder: Path) -> str | None:
    path = write(drawn, folder)
    args, mask, kind = dict(drawn.args), drawn.mask, drawn.kind
    try:
        program = load_program(path)
    except SpecError as e:  # the parser is shared by both sides
        if e.pos is None or e.pos.line <= 0:
            return f"parse: unpositioned SpecError: {e.message}"
        OUTCOMES["refused by the parser"] += 1
        return None
    checked, _ = _front(program, {})
    try:
        cls = runtime_class(program)
        compiled = None
    except SpecError as e:
        cls, compiled = None, e
        if e.pos is None:
            return f"compile: unpositioned SpecError: {e.message}"
    # 1. compile refuses exactly what check refuses (for the same values)
    if (checked is None) != (compiled is None):
        return (f"check {'ok' if checked is None else 'refuses'} / compile "
                f"{'ok' if compiled is None else 'refuses'}: {(checked or compiled).message}")
    if cls is None:
        OUTCOMES["refused by both for the defaults"] += 1
        return None
    prepared = None
    if program.prepares:  # the full compile: the masking pass for each prepared structure
        try:
            prepared = getattr(load_source(emit(program)), program.class_name)
        except SpecError as e:
            return f"check ok / compile with prepare refuses: {e.message}"
        except Exception as e:  # noqa: BLE001
            return f"check ok / compile with prepare: {type(e).__name__}: {str(e)[:160]}"
    saved = None
    if drawn.weights:  # weights saved by a differently seeded instance, named by the `weights` argument
        try:
            donor, _ = _construct_and_run(cls, {**args, "weights": None}, mask, kind, seed=7)
        except Exception:  # noqa: BLE001 - refused without weights: judged below, without them too
            args["weights"] = None
        else:
            saved = donor.state_dict()
            torch.save(saved, folder / "weights.pt")
            args["weights"] = str(folder / "weights.pt")
    # 2. for the drawn arguments
    problem, model, out = _arguments(program, cls, args, mask, kind)
    if problem:
        return problem
    if model is not None:  # 3. both accept: specc.build's class, the saved weights, the prepared class
        problem = _accepted(program, path, cls, prepared, args, saved, mask, kind, model, out)
        if problem:
            return problem
    for more in drawn.more:  # other arguments for the same compiled class
        problem, _, _ = _arguments(program, cls, {**more, **({"gate": args["gate"]} if "gate" in args else {})},
                                   mask, kind)
        if problem:
            return problem
    return None


def _accepted(program, path, cls, prepared, args, saved, mask, kind, model, out) -> str | None:
    """3. `args` accepted by both: the compiled class equals specc.build's, holds the saved weights
    `pretrained` loads, and equals its prepared class (for these arguments and each prepare's)."""
    built_model, built_out = _construct_and_run(lambda **a: specc.build(path, **a), args, mask, kind)
    problem = _same(model, out, built_model, built_out, "compiled class (against specc.build)")
    if problem:
        return problem
    if saved is not None and not mask:
        torch.manual_seed(0)
        state = cls(**args).state_dict()  # as loaded, before a forward moves the batch norms' statistics
        renames = program.network.pretrained.renames
        for key, value in saved.items():
            new = rename(key, renames)
            if new is not None and new in state and not torch.equal(state[new], value):
                return f"pretrained: {new} is not the saved {key}"
        OUTCOMES["accepted, with saved weights loaded"] += 1
    if prepared is not None:
        for prepared_args in [args] + [a for a, _ in prepared_arguments(program)]:
            prepared_args = {**prepared_args, **({"weights": None} if "weights" in args else {})}
            try:
                a, out_a = _construct_and_run(cls, prepared_args, mask, kind)
            except Exception:  # noqa: BLE001 - a prepare's arguments the class refuses: compile refused them
                continue
            b, out_b = _construct_and_run(prepared, prepared_args, mask, kind)
            problem = _same(a, out_a, b, out_b, "prepared class (against the traced one)")
            if problem:
                return problem
            OUTCOMES["accepted, a prepared class compared"] += 1
    return None


def _arguments(program, cls, args, mask, kind):
    """(a disagreement or None, the model and its output when both sides accept `args`): 2. `check -D
    args` refuses exactly what the constructor and a forward refuse, positioned; 3. an accepted
    model has the modules and output shape `check` elaborated."""
    refused, net = _front(program, args, image_size=SIZE)
    try:
        model, out = _construct_and_run(cls, args, mask, kind)
        failed = None
    except SpecError as e:
        return f"construction raised a SpecError: {e.message}", None, None
    except InputChanged as e:
        return f"forward: {e}", None, None
    except Exception as e:  # noqa: BLE001 - what a constructor refuses with: positioned by the spec's line
        failed = e
        if not RUNTIME_POSITION.search(_shown(e)):
            return f"construction: unpositioned {type(e).__name__}: {str(e)[:120]}", None, None
    if (refused is None) != (failed is None):
        return (f"check {'ok' if refused is None else 'refuses'} / construct "
                f"{'ok' if failed is None else 'refuses'}: "
                f"{(refused.message if refused else f'{type(failed).__name__}: {failed}')[:160]}"), None, None
    if refused is not None:
        OUTCOMES["refused by both for the arguments"] += 1
        return None, None, None
    OUTCOMES["accepted by both"] += 1
    OUTCOMES[f"accepted: {kind}{', ' + mask.split('(')[0] if mask else ''}"] += 1
    if not mask:
        expected, actual = _modules(net, model)
        if expected != actual:
            return (f"modules differ: check only {sorted(expected - actual)}, compiled only "
                    f"{sorted(actual - expected)}"), None, None
    out_shape = net.nodes[net.output].shape.dims
    if len(out.shape[1:]) != len(out_shape) or any(c is not None and c != o for c, o in zip(out_shape, out.shape[1:])):
        return f"output shape: check {out_shape}, compiled {tuple(out.shape[1:])}", None, None
    return None, model, out


def classify(problem: str) -> str:
    """A disagreement's class: its message with names, numbers and quoted parts taken out."""
    head = re.sub(r"'[^']*'|\"[^\"]*\"|`[^`]*`|\d+", "_", problem)
    return head[:110]


def constructor_refuses(folder: Path, text: str, args: dict, check_needle: str, runtime_needle: str,
                        line: int | None = None) -> None:
    """`check -D args` refuses with `check_needle` (at `line`, when given); the compiled class
    (compiled for the defaults, which check accepts) refuses `args` at construction, positioned at
    the spec's line (that line, when given); and the property holds for `text` and `args`."""
    import pytest
    from agree_specs import Drawn

    path = folder / "spec.cl"
    path.write_text(text)
    program = load_program(path)
    probe(program)
    with pytest.raises(SpecError) as info:
        probe(program, args)
    assert check_needle in info.value.message and line in (None, info.value.pos.line), info.value.render()
    with pytest.raises(Exception) as failed:
        runtime_class(program)(**args)
    shown = _shown(failed.value)
    assert runtime_needle in shown and RUNTIME_POSITION.search(shown), shown
    assert line is None or f"spec.cl:{line}" in shown, shown
    problem = disagreement(Drawn(text, "", args, "", "image"), folder)
    assert problem is None, problem
