"""The `specc` command line: compile, check, show, graph.

Exit status: 0 success, 1 a spec error (printed as file:line:col with the line and a caret),
2 a usage error. `check`, `show` and `graph` never import torch."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from . import __version__
from .frontend.errors import SpecError, UsageError

PROBE_VALUES = {"int": 64, "float": 0.5, "bool": False, "str": "probe", "list": [64], "activation": "ReLU"}


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

    k = sub.add_parser("check", help="parse, elaborate and analyse each spec (no torch; instant)",
                       description="Check each SPEC. Parameters without a default take -D values, else "
                                   "probe values (int 64, list [64], float 0.5, bool false, str \"probe\").")
    k.add_argument("specs", nargs="+", metavar="SPEC")
    defines(k)

    s = sub.add_parser("show", help="print the weighted layers of a spec in order",
                       description="Print SPEC's weighted layers in order with shapes, parameter counts "
                                   "and preceding/next layers.")
    s.add_argument("spec", metavar="SPEC")
    s.add_argument("--image-size", type=int, metavar="N",
                   help="height and width of an image input whose spec leaves them open")
    defines(s)

    g = sub.add_parser("graph", help="draw the elaborated layer graph (DOT; SVG/PNG through Graphviz)",
                       description="Draw SPEC's layer graph: modules with kinds and shapes, blocks as "
                                   "clusters, residual adds, mask points and tied units. OUT's suffix "
                                   "picks the format: .dot (no dependency), .svg or .png (need Graphviz's "
                                   "`dot`, Debian package graphviz). Without -o, DOT goes to stdout.")
    g.add_argument("spec", metavar="SPEC")
    g.add_argument("-o", dest="out", metavar="OUT", help="output file: .dot, .svg or .png")
    g.add_argument("--image-size", type=int, metavar="N",
                   help="height and width of an image input whose spec leaves them open")
    g.add_argument("--focus", metavar="PATH",
                   help="draw only the nodes under module PATH (e.g. conv3x/0) and their inputs/outputs")
    defines(g)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        overrides = _defines(args.defines)
        if args.command == "compile":
            return _compile(args.specs, args.out, overrides, args.base)
        if args.command == "check":
            return _check(args.specs, overrides)
        if args.command == "graph":
            return _graph(args.spec, overrides, args.image_size, args.focus, args.out)
        return _show(args.spec, overrides, args.image_size)
    except SpecError as e:
        print(e.render(), file=sys.stderr)
        return 1
    except UsageError as e:
        print(f"specc: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `specc show ... | head`: the reader left; not an error of ours. Keep Python from
        # complaining again when it flushes stdout at exit.
        sys.stdout = open(os.devnull, "w")
        return 0
    except OSError as e:  # an output that cannot be written (permissions, a full disk, ...)
        print(f"specc: error: cannot write {e.filename or 'output'}: {e.strerror or e}", file=sys.stderr)
        return 1


def _defines(items: list[str]) -> dict:
    from .core.values import parse_cli_value

    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise UsageError(f"-D expects NAME=VALUE, got {item!r}")
        out[name.strip()] = parse_cli_value(value)
    return out


def _compile(specs: list[str], out: str | None, overrides: dict, base: str = "specc") -> int:
    from .emit import emit
    from .frontend.load import load_program

    if out is not None and len(specs) > 1 and not (Path(out).is_dir() or out.endswith(os.sep)):
        raise UsageError("with several specs, -o must name a folder")
    results = []
    for spec in specs:
        program = load_program(spec)
        results.append((_target(spec, out), emit(program, overrides, base)))
    for target, text in results:
        _write_atomically(target, text)
        print(f"{target}")
    return 0


def _target(spec: str, out: str | None) -> Path:
    stem = Path(spec).stem
    if out is None:
        return Path("generated") / f"{stem}.py"
    p = Path(out)
    if p.is_dir() or out.endswith(os.sep):
        return p / f"{stem}.py"
    return p


def _write_atomically(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def _network(spec: str, overrides: dict, image_size: int | None = None):
    """Load, elaborate (missing parameters: -D, else probe values) and analyse; returns the IR and
    the names of the parameters that took probe values."""
    from .frontend.facts import analyse
    from .frontend.elaborate import elaborate
    from .frontend.load import load_program
    from .frontend.masking import class_params

    program = load_program(spec)
    probed = {}
    for p in class_params(program):
        if p.default is None and p.name not in overrides:
            probed[p.name] = PROBE_VALUES[p.type.name]
    return analyse(elaborate(program, {}, {**probed, **overrides}, image_size=image_size)), probed


def _check(specs: list[str], overrides: dict) -> int:
    for spec in specs:
        net, probed = _network(spec, overrides)
        note = f" (probe values: {', '.join(f'{k}={v!r}' for k, v in probed.items())})" if probed else ""
        print(f"{spec}: ok: {net.class_name}, {len(net.weighted_layer_names)} weighted layers{note}")
    return 0


def _show(spec: str, overrides: dict, image_size: int | None) -> int:
    from .report import weighted_layer_table

    net, probed = _network(spec, overrides, image_size)
    if probed:
        print(f"# probe values for parameters without default: "
              f"{', '.join(f'{k}={v!r}' for k, v in probed.items())} (set them with -D)")
    print(weighted_layer_table(net))
    return 0


def _graph(spec: str, overrides: dict, image_size: int | None, focus: str | None, out: str | None) -> int:
    from . import graph

    fmt = graph.output_format(out) if out is not None else None
    net, probed = _network(spec, overrides, image_size)
    if probed:
        print(f"# probe values for parameters without default: "
              f"{', '.join(f'{k}={v!r}' for k, v in probed.items())} (set them with -D)", file=sys.stderr)
    text = graph.to_dot(net, graph.focus_path(net, focus) if focus is not None else None)
    if out is None:
        sys.stdout.write(text)
        return 0
    try:
        data = graph.render(text, fmt) if fmt is not None else None
    except graph.RenderError as e:
        print(f"specc: error: {e}", file=sys.stderr)
        return 1
    if fmt in (None, "svg"):
        _write_atomically(Path(out), text if fmt is None else data.decode("utf-8"))
    else:
        graph.write_bytes_atomically(Path(out), data)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
