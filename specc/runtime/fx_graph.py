"""A network's forward as a torch.fx graph, and that graph as the analysis reads it.

`trace` records the plain forward of a module (the forward of the class it is built from, or its
own for a hand-written model), with each node's `stack_trace` naming the spec line when the code
came from a generated file. `analysis_graph` gives every node its role from specc.core.roles so
that specc.analysis (the same passes the front end runs on the IR) can tell the weighted layers,
their unit owners and mask points.
"""
from __future__ import annotations

import linecache
import operator
import sys
from contextlib import contextmanager
from pathlib import Path

from torch import fx, nn
from torch.nn import functional as F

from .. import require_runtime as _require_runtime
from ..analysis import Graph, Node
from ..core.layers import BY_CLASS
from ..core.roles import FUNCTIONS, METHODS, MODULES, Kind
from . import positions


class _Tracer(fx.Tracer):
    """fx's tracer, recording for each node the spec line of the generated code that made it: the
    nearest calling frame whose line ends with a `# file:line` comment (a walk up a few frames,
    much cheaper than fx's full stack traces)."""

    def __init__(self):
        super().__init__()
        self.generated_files = _generated_files()

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        # A catalogue kind marked `leaf` (drop_path, layer_scale) is called as one operation with its
        # catalogue role: traced through, a forward that reads `self.training` would be frozen in
        # the mode it was traced in. By class name, as specc.core.roles names modules (timm's own
        # DropPath and LayerScale in a hand-written model are leaves too).
        entry = BY_CLASS.get(type(m).__name__)
        return (entry is not None and entry.leaf) or super().is_leaf_module(m, qualname)

    def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None, *rest, **kw):
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, *rest, **kw)
        frame = sys._getframe(1)
        own = None  # the nearest frame of the model's own code (a hand-written model has no spec)
        for _ in range(_FRAMES):
            if frame is None:
                continue
            filename = frame.f_code.co_filename
            if own is None and not filename.startswith(_LIBRARY_DIRS):
                own = frame
            found = positions.of_frame(frame) if filename in self.generated_files else None
            if found:
                file, spec_line = found
                code = linecache.getline(filename, frame.f_lineno).partition("  # ")[0].strip()
                proxy.node.meta["spec_position"] = (file, spec_line)
                # The spec's name comes from the generated file's comment, where it is escaped (no
                # quote, no line break); the code line is the generated file's own.
                proxy.node.stack_trace = f'File "{file}", line {spec_line}, in {frame.f_code.co_name}\n    {code}\n'
                break
            frame = frame.f_back
        else:
            if own is not None:
                code = linecache.getline(own.f_code.co_filename, own.f_lineno).strip()
                proxy.node.stack_trace = (f'File "{own.f_code.co_filename}", line {own.f_lineno}, in '
                                          f'{own.f_code.co_name}\n    {code}\n')
        return proxy


_FRAMES = 12  # fx's own frames between the generated line and create_proxy, with room to spare
_LIBRARY_DIRS = (str(Path(fx.__file__).parent.parent), str(Path(__file__).parent))


def _generated_files() -> set[str]:
    """Files of the generated modules imported so far (they check the runtime version first)."""
    return {getattr(m, "__file__", None) for m in list(sys.modules.values())
            if getattr(m, "require_runtime", None) is _require_runtime}


@contextmanager
def _as_class(module: nn.Module, cls: type):
    """The instance seen as `cls` while tracing: the plain network's forward is traced, not the
    masked forward of its subclass."""
    actual = type(module)
    if cls is None or cls is actual:
        yield
        return
    module.__class__ = cls
    try:
        yield
    finally:
        module.__class__ = actual


def trace(module: nn.Module, plain_cls: type | None = None) -> fx.Graph:
    """The graph of `plain_cls.forward` (default: the module's own) over `module`'s submodules.
    Arguments after the input (stage, task_id) are traced as their defaults."""
    import inspect

    cls = plain_cls or type(module)
    params = list(inspect.signature(cls.forward).parameters.values())[2:]
    concrete = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    with _as_class(module, cls):
        graph = _Tracer().trace(module, concrete_args=concrete or None)
    # The arguments traced as constants leave a placeholder and a check of its value: the
    # rewritten forwards take only the input (and what the masking passes add).
    for node in [n for n in graph.nodes if n.op == "placeholder"][1:]:
        for user in list(node.users):
            graph.erase_node(user)
        graph.erase_node(node)
    _attention_dropout_by_mode(graph, module)
    return graph


def _attention_dropout_by_mode(graph: fx.Graph, root: nn.Module) -> None:
    """timm's fused attention passes `dropout_p=self.attn_drop.p if self.training else 0.0`, which fx
    records as the constant of the mode it traced in: where the calling module has a Dropout of that p
    (specc.runtime.tokens.SelfAttention, timm's Attention), the rewritten forward reads the module's
    mode again (`p * training`), so that eval does not drop attention weights."""
    for node in list(graph.nodes):
        p = node.kwargs.get("dropout_p") if node.op == "call_function" else None
        if node.target is not F.scaled_dot_product_attention or not isinstance(p, float) or p == 0.0:
            continue
        stack = node.meta.get("nn_module_stack") or {}
        path = list(stack.values())[-1][0] if stack else None
        if path is None or not any(isinstance(m, nn.Dropout) and m.p == p for m in root.get_submodule(path).children()):
            continue
        with graph.inserting_before(node):
            training = graph.get_attr(f"{path}.training")
            node.update_kwarg("dropout_p", graph.call_function(operator.mul, (p, training)))


# Tensor methods that only read a tensor's metadata: their results are not data.
_META_METHODS = ("size", "dim")


def _qualified(target) -> str:
    return fx.node._get_qualified_name(target) if callable(target) else str(target)


def analysis_graph(graph: fx.Graph, root: nn.Module) -> Graph:
    """The fx graph as an analysis graph (nodes in the same order; `where` is the fx node)."""
    nodes: list[Node] = []
    index: dict[fx.Node, int] = {}
    meta_nodes: set[fx.Node] = set()
    records: dict[str, int] = {}
    output = None
    for fxn in graph.nodes:
        if fxn.op == "placeholder":
            if nodes:  # one tensor input; more placeholders are not data
                meta_nodes.add(fxn)
                continue
            node = Node(len(nodes), "input", [], fxn.name)
        elif fxn.op == "output":
            feature, recorded = _output_parts(fxn.args[0])
            output = index.get(feature)
            for name, value in recorded.items():
                if value in index:
                    records[name] = index[value]
            continue
        elif fxn.op == "get_attr" or (fxn.op == "call_method" and fxn.target in _META_METHODS) or \
                (_arg_nodes(fxn) and all(a in meta_nodes for a in _arg_nodes(fxn))):
            meta_nodes.add(fxn)
            continue
        else:
            inputs = [index[a] for a in _arg_nodes(fxn) if a in index]
            node = _node(fxn, root, len(nodes), inputs)
        node.where = fxn
        index[fxn] = node.id
        nodes.append(node)
    return Graph(nodes, records, output)


def _output_parts(value):
    if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[1], dict):
        return value[0], value[1]
    if isinstance(value, (tuple, list)):
        return value[0], {}
    return value, {}


def _arg_nodes(fxn: fx.Node) -> list[fx.Node]:
    out: list[fx.Node] = []
    fx.node.map_arg((fxn.args, fxn.kwargs), lambda n: out.append(n))
    return list(dict.fromkeys(out))


def _same_operands(fxn: fx.Node) -> bool:
    """`fxn` takes one tensor twice (`x + x`): _arg_nodes, which lists each once, cannot tell."""
    out: list[fx.Node] = []
    fx.node.map_arg((fxn.args, fxn.kwargs), lambda n: out.append(n))
    return len(out) == 2 and out[0] is out[1]


def _kind(fxn: fx.Node, root: nn.Module) -> tuple[Kind | None, str]:
    if fxn.op == "call_module":
        module = root.get_submodule(fxn.target)
        return MODULES.get(type(module).__name__), fxn.target.replace(".", "/")
    if fxn.op == "call_function":
        name = _qualified(fxn.target)
        return FUNCTIONS.get(name), name
    return METHODS.get(fxn.target), f".{fxn.target}()"


def _node(fxn: fx.Node, root: nn.Module, nid: int, inputs: list[int]) -> Node:
    kind, name = _kind(fxn, root)
    role = kind.role if kind else "unknown"
    node = Node(nid, role, inputs, name if fxn.op == "call_module" else fxn.name,
                keeps_zero=kind.keeps_zero if kind else False, module=fxn.op == "call_module")
    if fxn.op == "call_module":
        module = root.get_submodule(fxn.target)
        entry = BY_CLASS.get(type(module).__name__)
        if entry is not None and entry.weighted:
            node.units = module.weight.shape[0]
            node.in_units = module.weight.shape[1] * getattr(module, "groups", 1)
            node.groups = getattr(module, "groups", 1)
            node.meta["view"] = entry.hat_view
        node.meta["affine_norm"] = (entry is not None and entry.wsn_form == "layer_norm" and module.weight is not None
                                    and not _in_token_attention(fxn.target, root))
    elif role == "flatten" and fxn.op == "call_method" and fxn.target in ("view", "reshape"):
        if not _is_batch_flatten(fxn.args[1:]):
            _unit_view(fxn, node)
    elif role == "broadcast" and fxn.target == "unsqueeze":
        dim = fxn.args[1] if len(fxn.args) > 1 else fxn.kwargs.get("dim")
        if not isinstance(dim, int) or 0 <= dim < 2:
            node.role = "unknown"  # a new axis before the units moves them
        node.meta["adds_axes"] = 1
    elif role == "broadcast":  # expand_as(other): the other tensor only gives the size
        node.inputs = inputs[:1]
        node.meta["adds_axes"] = 0
    elif role == "flatten" and fxn.op == "call_function":
        start = fxn.args[1] if len(fxn.args) > 1 else fxn.kwargs.get("start_dim", 0)
        if start != 1:
            node.role = "unknown"
    elif role == "add" and _same_operands(fxn):
        node.role = "scale"  # x + x (a residual group of the identity, `(+ identity)`): 2x, a rescaling
    elif role == "add":
        if len(inputs) != 2:
            node.role = "unknown"  # x + constant moves zeros without tying units
        node.keeps_zero = False
        node.shortcut_operand = _declared_shortcut(fxn)
    elif role == "gate":
        node.meta["main_operand"] = 0  # channel_gate(stream, gate)
    elif role == "scale" and len(inputs) == 2:
        # A product of two tensors: a gate (x * s.view(b, c, 1, 1), SE) when one operand is a
        # broadcast of per-unit values; the other operand is the stream, whose units go on.
        broadcast = [_is_broadcast(a) for a in _arg_nodes(fxn)[:2]]
        if broadcast.count(True) != 1:
            node.role = "unknown"
        else:
            node.role = "gate"
            node.meta["main_operand"] = broadcast.index(False)
    elif role == "scale" and len(inputs) != 1:
        node.role = "unknown"  # a product of two tensors is not a rescaling of one
    elif role == "concat":
        dim = fxn.args[1] if len(fxn.args) > 1 else fxn.kwargs.get("dim", 0)
        if dim != 1:
            node.role = "unknown"
    elif role == "pad":
        node.pad = _channel_pad(fxn)
        if node.pad is None:
            node.role = "unknown"
    elif role == "subsample" and _none_axes(fxn):  # s[:, :, None, None]
        node.role = "broadcast"
        node.meta["adds_axes"] = _none_axes(fxn)
    elif role == "subsample" and not _keeps_channels(fxn):
        node.role = "unknown"
    return node


def _in_token_attention(target: str, root: nn.Module) -> bool:
    """A module of specc.runtime.tokens' attention step (qk-norm's LayerNorms), which the front end
    does not see as a layer of its own (WSN leaves them unscored, as the spec says)."""
    parent = root.get_submodule(target.rpartition(".")[0]) if "." in target else root
    return type(parent).__name__ == "SelfAttention" and type(parent).__module__ == "specc.runtime.tokens"


def _size_ref(arg):
    """k when `arg` is `t.size(k)`, `t.size()[k]` or `t.shape[k]` (t a traced tensor), else None."""
    if not isinstance(arg, fx.Node):
        return None
    if arg.op == "call_method" and arg.target == "size" and len(arg.args) == 2:
        return arg.args[1]
    if arg.op == "call_function" and _qualified(arg.target) == "_operator.getitem" and isinstance(arg.args[1], int):
        src = arg.args[0]
        if isinstance(src, fx.Node) and ((src.op == "call_method" and src.target == "size" and len(src.args) == 1)
                                         or (src.op == "call_function" and _qualified(src.target) == "builtins.getattr"
                                             and src.args[1] == "shape")):
            return arg.args[1]
    return None


def _unit_view(fxn: fx.Node, node: Node) -> None:
    """view(b, c) of a pooled (N, C, 1, 1) value: a flatten; view(b, c, 1, ...): the units stay on
    axis 1 with size-1 axes after them (a broadcast); anything else: no role. b and c are the
    sizes read from a tensor (`b, c, _, _ = x.size()`), batch first, units second."""
    dims = fxn.args[1:]
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    refs = [_size_ref(d) for d in dims[:2]]
    if len(dims) < 2 or refs != [0, 1] or any(d != 1 for d in dims[2:]):
        node.role = "unknown"
    elif len(dims) == 2:
        node.role = "flatten"  # the consumer tells how many features each unit spans (here 1)
    else:
        node.role = "broadcast"
        node.meta["broadcast_view"] = (1, -1) + (1,) * (len(dims) - 2)


def _none_axes(fxn: fx.Node) -> int:
    """How many size-1 axes `s[:, :, None, ...]` adds after the units (0: not that form)."""
    idx = fxn.args[1] if len(fxn.args) > 1 else None
    full = slice(None, None, None)
    if not isinstance(idx, tuple) or len(idx) < 3 or idx[:2] != (full, full) or any(i is not None for i in idx[2:]):
        return 0
    return len(idx) - 2


def _is_broadcast(arg: fx.Node) -> bool:
    """Whether `arg` is per-unit values made to broadcast: view(b, c, 1, 1), unsqueeze, expand_as,
    or the gate call of generated code."""
    if arg.op == "call_method" and arg.target in ("expand_as", "unsqueeze"):
        return True
    if arg.op == "call_function" and _qualified(arg.target) == "_operator.getitem":
        return _none_axes(arg) > 0
    if arg.op == "call_method" and arg.target in ("view", "reshape"):
        dims = arg.args[1:]
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        return len(dims) > 2 and [_size_ref(d) for d in dims[:2]] == [0, 1] and all(d == 1 for d in dims[2:])
    return False


def _is_batch_flatten(shape_args) -> bool:
    """view(batch, -1) / reshape(batch, -1), batch being x.size(0) or x.shape[0]."""
    if len(shape_args) == 1 and isinstance(shape_args[0], (tuple, list)):
        shape_args = tuple(shape_args[0])
    return len(shape_args) == 2 and shape_args[1] == -1 and isinstance(shape_args[0], fx.Node)


def _declared_shortcut(fxn: fx.Node) -> int | None:
    # Generated forwards write `x = x + <branch>`: the second operand is the declared shortcut.
    if fxn.meta.get("spec_position") is not None:
        return 1
    return None


def _channel_pad(fxn: fx.Node) -> tuple[int, int] | None:
    pad = fxn.args[1] if len(fxn.args) > 1 else fxn.kwargs.get("pad")
    if not isinstance(pad, (tuple, list)) or len(pad) != 6 or any(not isinstance(p, int) for p in pad):
        return None
    return pad[4], pad[5]


def _keeps_channels(fxn: fx.Node) -> bool:
    """x[:, :, ::2, ::2] and the like: every channel kept, only spatial positions selected."""
    idx = fxn.args[1] if len(fxn.args) > 1 else None
    if not isinstance(idx, tuple) or len(idx) < 2:
        return False
    full = slice(None, None, None)
    return idx[0] == full and idx[1] == full

