"""The `specc` command line: compile, check, show, graph.

Exit status: 0 success, 1 a spec error (printed as file:line:col with the line and a caret),
2 a usage error. `check`, `show` and `graph` never import torch."""
from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path

from . import __version__
from .frontend.errors import SpecError, UsageError, clip, display_path, printable
from .output import OutputError, write_all

# The compiler (lark, the elaborator) and torch are imported where they are used: `check` stays
# torch-free, and the `specc` command (specc/__main__.py) has its Ctrl-C handling in place first.


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="specc", description="Compile network specs into continual-learning backbones.")
    p.add_argument("--version", action="version", version=f"specc {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def defines(sp):
        sp.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE",
                        help="set a parameter (compile: its default in the generated class); repeatable")

    c = sub.add_parser("compile", help="write the Python module of each spec",
                       description="Compile each SPEC into a Python module defining its backbone class. "
                                   "Nothing is written unless every spec compiles.")
    c.add_argument("specs", nargs="+", metavar="SPEC")
    c.add_argument("--base", choices=("specc", "clarena"), default="specc",
                   help="base classes of the generated classes: specc's runtime (default, no other "
                        "dependency) or CLArena's (clarena.backbones), so that they are CLArena classes")
    c.add_argument("-o", dest="out", metavar="OUT",
                   help="output file (one spec) or folder (default: generated/<stem>.py)")
    defines(c)

    x = sub.add_parser("export", help="write one backbone, for fixed arguments, as a module importing torch only",
                       description="Export SPEC's class with every parameter fixed (its defaults and the -D "
                                   "values; a parameter without a default needs one) as a standalone module: "
                                   "explicit construction, the traced and rewritten forward as source, the "
                                   "backbone API copied in; it imports torch only (for vendoring). Same "
                                   "state_dict and outputs as specc.build with those arguments.")
    x.add_argument("spec", metavar="SPEC")
    x.add_argument("-o", dest="out", metavar="OUT.py", help="the module to write")
    x.add_argument("--task", type=int, metavar="T",
                   help="write task T's network of a trained masked backbone instead (needs --checkpoint and "
                        "--input-shape): only the units T's mask keeps, its outputs the backbone's test stage's; "
                        "-o writes OUT.py and its weights OUT.pt")
    x.add_argument("--checkpoint", metavar="CKPT",
                   help="with --task: the trained backbone, saved by specc.save_checkpoint (state_dict and masks)")
    x.add_argument("--input-shape", type=_shape, metavar="C,H,W",
                   help="with --task: the shape of one input, without the batch (e.g. 3,32,32 or 784)")
    x.add_argument("--onnx", metavar="OUT.onnx", help="with --task: also (or only) write the network as ONNX")
    defines(x)

    k = sub.add_parser("check", help="parse, elaborate and analyse each spec (no torch; instant)",
                       description="Check each SPEC. Parameters without a default take -D values, else "
                                   "probe values (int 64, list [64], float 0.5, bool false, str \"probe\").")
    k.add_argument("specs", nargs="+", metavar="SPEC")
    defines(k)

    s = sub.add_parser("show", help="print the weighted layers of a spec in order",
                       description="Print SPEC's weighted layers in order with shapes, parameter counts "
                                   "and preceding/next layers.")
    s.add_argument("spec", metavar="SPEC")
    s.add_argument("--image-size", type=_image_size, metavar="N",
                   help="height and width of an image input whose spec leaves them open")
    defines(s)

    g = sub.add_parser("graph", help="draw the elaborated layer graph (DOT; SVG/PNG through Graphviz)",
                       description="Draw SPEC's layer graph: modules with kinds and shapes, blocks as "
                                   "clusters, residual adds, mask points and tied units. OUT's suffix "
                                   "picks the format: .dot (no dependency), .svg or .png (need Graphviz's "
                                   "`dot`, Debian package graphviz). Without -o, DOT goes to stdout.")
    g.add_argument("spec", metavar="SPEC")
    g.add_argument("-o", dest="out", metavar="OUT", help="output file: .dot, .svg or .png")
    g.add_argument("--image-size", type=_image_size, metavar="N",
                   help="height and width of an image input whose spec leaves them open")
    g.add_argument("--focus", metavar="PATH",
                   help="draw only the nodes under module PATH (e.g. conv3x/0) and their inputs/outputs")
    defines(g)
    return p


def _image_size(text: str) -> int:
    from .core.limits import INT_MAX

    try:
        value = int(text) if len(text) <= 20 else None
    except ValueError:
        value = None
    if value is None or not 0 < value <= INT_MAX:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {clip(printable(text), 40)!r}")
    return value


# True while main runs as the `specc` command: once its outputs are written, Ctrl-C stays held back
# until the process exits (the command is done; "interrupted" would be untrue).
_command = False


def main(argv: list[str] | None = None, *, command: bool = False) -> int:
    """Run the CLI. Ctrl-C anywhere prints one line and exits 130, leaving no file behind (the
    writer removes its temporary files on any exception). `command`: called by the `specc`
    command (specc/__main__.py), which owns the process's signal handling."""
    global _command
    _command = command
    _tolerant_streams()
    try:
        return _main(argv)
    except KeyboardInterrupt:
        _say("specc: interrupted")
        return 130
    except (RecursionError, MemoryError) as e:  # not expected within the limits (README, "Limits")
        _say(f"specc: error: the spec is too large or too deeply nested to process ({type(e).__name__})")
        return 1
    except Exception as e:  # a bug of specc: one line, not a traceback (SPECC_TRACEBACK=1 shows it)
        if os.environ.get("SPECC_TRACEBACK"):
            raise
        _say(f"specc: internal error: {type(e).__name__}: {clip(printable(str(e)), 300)} "
             "(a bug in specc; SPECC_TRACEBACK=1 shows where)")
        return 1


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        overrides = _defines(args.defines)
        if args.command == "compile":
            rc = _compile(args.specs, args.out, overrides, args.base)
        elif args.command == "export":
            if args.task is None and (args.checkpoint or args.input_shape or args.onnx):
                raise UsageError("--checkpoint, --input-shape and --onnx go with --task T")
            if args.task is None and args.out is None:
                raise UsageError("export needs -o OUT.py")
            rc = _export_task(args, overrides) if args.task is not None else _export(args.spec, args.out, overrides)
        elif args.command == "check":
            rc = _check(args.specs, overrides)
        elif args.command == "graph":
            rc = _graph(args.spec, overrides, args.image_size, args.focus, args.out)
        else:
            rc = _show(args.spec, overrides, args.image_size)
        if sys.stdout is not None:
            sys.stdout.flush()  # a full disk or a closed pipe shows here, not at exit
        return rc
    except SpecError as e:
        _say(e.render())
        return 1
    except UsageError as e:
        _say(f"specc: error: {clip(printable(str(e)))}")
        return 2
    except BrokenPipeError:
        # `specc show ... | head`: the reader left; not an error of ours. Keep Python from
        # complaining again when it flushes stdout at exit.
        sys.stdout = open(os.devnull, "w")
        return 0
    except OutputError as e:
        _say(f"specc: error: {e}")
        return 1
    except OSError as e:  # standard output that cannot be written (a full disk, ...)
        sys.stdout = open(os.devnull, "w")
        _say(f"specc: error: cannot write {display_path(e.filename) if e.filename else 'the output'}: "
             f"{e.strerror or e}")
        return 1


def _tolerant_streams() -> None:
    """Text that the terminal's encoding cannot show (a file name with 'é' under
    PYTHONIOENCODING=ascii, an undecodable byte) is written as escapes, not raised as an error."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (OSError, ValueError):
                pass


def _say(text: str) -> None:
    """One message on standard error (nothing when it is closed)."""
    if sys.stderr is None:
        return
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass


def _stdout(text: str) -> None:
    """The product of `show` and `graph` on standard output; an error when it is closed."""
    if sys.stdout is None:
        raise OutputError("cannot write the output: standard output is closed (use -o FILE, or redirect it)")
    sys.stdout.write(text)


def _defines(items: list[str]) -> dict:
    from .core.values import parse_cli_value

    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise UsageError(f"-D expects NAME=VALUE, got {item!r}")
        try:
            out[name.strip()] = parse_cli_value(value)
        except ValueError as e:
            raise UsageError(f"-D {name.strip()}: {e}") from None
    return out


def _compile(specs: list[str], out: str | None, overrides: dict, base: str = "specc") -> int:
    from .emit import emit
    from .frontend.load import load_program

    if out is not None and len(specs) > 1 and not (Path(out).is_dir() or out.endswith(os.sep)):
        raise UsageError("with several specs, -o must name a folder")
    results = []
    read: dict[tuple[int, int], str] = {}  # every file read (specs and includes): identity -> path
    for spec in specs:
        program = load_program(spec)
        for path in program.sources:
            ident = _identity(path)
            if ident is not None:
                read.setdefault(ident, path)
        results.append((spec, _target(spec, out), emit(program, overrides, base)))
    _check_targets([(spec, target) for spec, target, _ in results], read)
    write_all([(target, text.encode("utf-8")) for _, target, text in results], stay_held=_command)
    for _, target, _ in results:
        print(display_path(target))
    return 0


def _export(spec: str, out: str, overrides: dict) -> int:
    from .emit.export import export_source
    from .frontend.load import load_program
    from .frontend.probe import probe

    program = load_program(spec)
    probe(program, overrides)  # what `check` checks, before torch is imported
    read = {ident: path for path in program.sources if (ident := _identity(path)) is not None}
    _check_targets([(spec, Path(out))], read)
    write_all([(Path(out), export_source(program, overrides).encode("utf-8"))], stay_held=_command)
    print(display_path(out))
    return 0


def _export_task(args, overrides: dict) -> int:
    from .frontend.load import load_program
    from .frontend.probe import probe

    if args.checkpoint is None or args.input_shape is None:
        raise UsageError("export --task needs --checkpoint CKPT and --input-shape C,H,W")
    if args.out is None and args.onnx is None:
        raise UsageError("export --task needs -o OUT.py, --onnx OUT.onnx or both")
    if args.out is not None and Path(args.out).suffix.lower() == ".pt":
        raise UsageError("-o names the module (OUT.py); its weights go to OUT.pt")
    program = load_program(args.spec)
    probe(program, overrides)  # what `check` checks, before torch is imported
    read = {ident: path for path in program.sources if (ident := _identity(path)) is not None}
    if (checkpoint := _identity(args.checkpoint)) is not None:
        read[checkpoint] = args.checkpoint
    targets = ([Path(args.out), Path(args.out).with_suffix(".pt")] if args.out is not None else []) + \
        ([Path(args.onnx)] if args.onnx is not None else [])
    _check_targets([(args.spec, t) for t in targets], read)
    from .emit.task_export import task_files

    files = task_files(program, overrides, args.task, args.checkpoint, args.input_shape, args.out, args.onnx)
    write_all(files, stay_held=_command)
    for target, _ in files:
        print(display_path(target))
    return 0


def _shape(text: str) -> tuple[int, ...]:
    parts = text.split(",")
    if not 1 <= len(parts) <= 4 or not all(p.strip().isdigit() and 0 < int(p) <= 65536 for p in parts):
        raise argparse.ArgumentTypeError(f"must be 1 to 4 positive integers separated by commas, got "
                                         f"{clip(printable(text), 40)!r}")
    return tuple(int(p) for p in parts)


def _identity(path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _check_targets(plan: list[tuple[str, Path]], read: dict) -> None:
    """Refuse, before anything is written: two specs writing one file, an output that is a file
    the compiler read (a spec or an include), an output that exists and is not a regular file (a
    device such as /dev/null, a folder, a pipe)."""
    seen: dict[str, str] = {}
    for spec, target in plan:
        key = os.path.normcase(os.path.abspath(target))
        ident = _identity(target)
        if ident is not None:
            key = f"{ident}"
        if key in seen:
            raise UsageError(f"{display_path(seen[key])} and {display_path(spec)} would both be written to "
                             f"{display_path(target)}; compile them into different folders")
        seen[key] = spec
        if ident is not None and ident in read:
            raise UsageError(f"the output {display_path(target)} is the spec file {display_path(read[ident])}; "
                             "refusing to overwrite it")
        try:
            mode = os.stat(target).st_mode
        except FileNotFoundError:
            continue
        except OSError as e:
            raise OutputError(f"cannot write {display_path(target)}: {e.strerror or e}") from None
        if not stat.S_ISREG(mode):
            what = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
            raise UsageError(f"the output {display_path(target)} exists and is {what}; refusing to replace it")


def _target(spec: str, out: str | None) -> Path:
    stem = Path(spec).stem
    if out is None:
        return Path("generated") / f"{stem}.py"
    p = Path(out)
    if p.is_dir() or out.endswith(os.sep):
        return p / f"{stem}.py"
    return p


def _network(spec: str, overrides: dict, image_size: int | None = None, files: list | None = None):
    """Load, check and analyse with -D values, else probe values (specc.frontend.probe); returns
    the IR and the parameters that took probe values. `files`, when given, receives the paths of
    every file read."""
    from .frontend.load import load_program
    from .frontend.probe import probe, probe_values

    program = load_program(spec)
    if files is not None:
        files.extend(program.sources)
    return probe(program, overrides, image_size), probe_values(program, overrides)


def _check(specs: list[str], overrides: dict) -> int:
    for spec in specs:
        net, probed = _network(spec, overrides)
        note = f" (probe values: {', '.join(f'{k}={v!r}' for k, v in probed.items())})" if probed else ""
        print(f"{display_path(spec)}: ok: {net.class_name}, {len(net.weighted_layer_names)} weighted layers{note}")
    return 0


def _show(spec: str, overrides: dict, image_size: int | None) -> int:
    from .report import weighted_layer_table

    net, probed = _network(spec, overrides, image_size)
    table = weighted_layer_table(net)
    if probed:
        table = (f"# probe values for parameters without default: "
                 f"{', '.join(f'{k}={v!r}' for k, v in probed.items())} (set them with -D)\n{table}")
    _stdout(table + "\n")
    return 0


def _graph(spec: str, overrides: dict, image_size: int | None, focus: str | None, out: str | None) -> int:
    from . import drawing

    fmt = drawing.output_format(out) if out is not None else None
    files: list[str] = []
    net, probed = _network(spec, overrides, image_size, files)
    if probed:
        _say(f"# probe values for parameters without default: "
             f"{', '.join(f'{k}={v!r}' for k, v in probed.items())} (set them with -D)")
    text = drawing.to_dot(net, drawing.focus_path(net, focus) if focus is not None else None)
    if out is None:
        _stdout(text)
        return 0
    try:
        data = drawing.render(text, fmt) if fmt is not None else text.encode("utf-8")
    except drawing.RenderError as e:
        _say(f"specc: error: {clip(printable(str(e)))}")
        return 1
    target = Path(out)
    _check_targets([(spec, target)], {i: p for p in files if (i := _identity(p)) is not None})
    write_all([(target, data)], stay_held=_command)
    print(display_path(out))
    return 0


if __name__ == "__main__":  # `python -m specc.cli`; the command is `specc` or `python -m specc`
    sys.exit(main())
