"""A rewritten fx graph as the forward of a backbone: real Python source, compiled under a file
name registered with linecache, so tracebacks, pdb and inspect show its lines (fx's GraphModule
does the same for its code). The module tree is never copied (fx.GraphModule(root, graph) would
keep only the submodules the graph calls, in first-use order): the code runs on the backbone
itself (`self`).

Compiled code is cached by its text: instances of the same structure share one function. The
cache is bounded (least recently used first out); an evicted function keeps working, its source
is then no longer shown."""
from __future__ import annotations

import hashlib
import linecache
from collections import OrderedDict

from torch import fx

CACHE_SIZE = 256
_cache: OrderedDict[str, tuple] = OrderedDict()


def _carry_positions(graph: fx.Graph) -> None:
    """Nodes a pass inserted (a mask, a routed batch norm) get the spec position of the node they
    serve, so every line of the printed forward says where it comes from."""
    last = None
    for node in graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        if node.stack_trace:
            last = node.stack_trace
        elif last is not None:
            node.stack_trace = last


def compile_forward(graph: fx.Graph, owner: str):
    """(function forward(self, ...), its source) for `graph`; `owner` names the class in the file
    name that tracebacks show."""
    _carry_positions(graph)
    for node in graph.nodes:
        if node.op in ("placeholder", "output"):
            node.type = None  # fx would print its own aliases of the traced annotations (`_Tensor_`)
    code = graph.python_code(root_module="self", verbose=True)
    # The function alone, as inspect and print_readable show it, without trailing blanks: the same
    # text as a forward `specc compile` prepared into a generated file.
    # fx puts `torch.fx._symbolic_trace.wrap("name")` above the function for a wrapped call (the
    # gate product of `mul`), which only matters when the code is traced by fx again: left out.
    src = code.src.strip()
    src = src[src.index("def forward("):] if src.startswith("torch.fx._symbolic_trace.wrap(") else src
    src = "\n".join(line.rstrip() for line in src.splitlines()) + "\n"
    hit = _cache.get(src)
    if hit is not None:
        _cache.move_to_end(src)
        return hit
    digest = hashlib.sha1(src.encode("utf-8")).hexdigest()[:12]
    filename = f"<specc {owner}.forward {digest}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(keepends=True), filename)
    namespace = dict(code.globals)
    exec(compile(src, filename, "exec"), namespace)
    entry = (namespace["forward"], src)
    _cache[src] = entry
    while len(_cache) > CACHE_SIZE:
        old_src, (old_fn, _) = _cache.popitem(last=False)
        linecache.cache.pop(old_fn.__code__.co_filename, None)
    return entry


def forward_source(network) -> str:
    """The source of `network`'s rewritten forward; a forward prepared in a generated file is read
    from that file (once, when first shown)."""
    if network._specc_forward_source is None:
        import inspect

        network._specc_forward_source = inspect.getsource(network._specc_forward)
    return network._specc_forward_source


def free_globals(network) -> dict:
    """The module-level names `network`'s rewritten forward reads (neither its own arguments and
    locals nor builtins), with their values: what its source needs wherever it is written out."""
    return {name: network._specc_forward.__globals__[name] for name in globals_read(forward_source(network))}


def globals_read(src: str) -> list[str]:
    """The module-level names the function defined by `src` reads: neither its arguments and
    locals nor builtins."""
    import ast
    import builtins

    fn = ast.parse(src).body[0]
    names = [n for n in ast.walk(fn) if isinstance(n, ast.Name)]
    local = {a.arg for a in fn.args.args} | {n.id for n in names if isinstance(n.ctx, ast.Store)}
    read = sorted({n.id for n in names if isinstance(n.ctx, ast.Load)} - local)
    return [name for name in read if not hasattr(builtins, name)]
