"""Assembly: turn an nn.Module instance into the network a Program describes, for given arguments.

Both the runtime modules of `specc.build` and the generated classes under generated/ construct
themselves through `assemble`, so the two cannot drift apart: elaborate -> analyse -> build the
module tree -> build the fx graph -> install its compiled code as the forward."""
from __future__ import annotations

from torch import nn

from .frontend.facts import analyse
from .frontend.elaborate import elaborate
from .frontend.load import Program
from .lower import build_graph, build_modules, compile_graph
from .passes.amnesiac import amnesiac_pass
from .passes.hat import hat_pass
from .passes.wsn import wsn_pass

PASSES = {"hat": hat_pass, "wsn": wsn_pass, "amnesiac_hat": hat_pass}


def assemble(module: nn.Module, program: Program, args: dict) -> None:
    net = analyse(elaborate(program, args))
    for p in net.params:
        # Constructor arguments are kept as attributes, as CLArena's classes do (`self.input_dim`).
        # Activation parameters keep the class the caller passed.
        setattr(module, p.name, args.get(p.name, p.value) if _is_activation(p) else p.value)
    build_modules(module, net)
    module.weighted_layer_names = list(net.weighted_layer_names)
    module.specc_network = net
    module.specc_arguments = dict(args)  # as the caller passed them (activation classes included)
    if net.mask_scheme is not None:
        module.specc_setup_scheme(net, program)
    module._specc_forward = compiled_forward(net)


def compiled_forward(net):
    """The forward of `net`: its fx graph, rewritten by its masking scheme's pass, compiled."""
    graph = build_graph(net)
    if net.mask_scheme is not None:
        graph = PASSES[net.mask_scheme](graph, net)
    return compile_graph(graph)


def backup_forward(net, backup_ids: list[str]):
    """The compiled forward of an AmnesiacHAT network with backup paths for `backup_ids`."""
    return compile_graph(amnesiac_pass(hat_pass(build_graph(net), net), net, backup_ids))


def _is_activation(p) -> bool:
    return p.type.startswith("activation")
