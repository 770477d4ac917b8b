"""Batch norms folded into the projection before them (eval-mode inference only): `bn(conv(x))`
becomes one convolution with weight `w * g / sqrt(var + eps)` and bias `(b - mean) * g /
sqrt(var + eps) + beta`, per output channel (torch.nn.utils.fusion's formulas). A task network is
for inference; its batch norms never update statistics. The results differ from the unfused ones
by rounding only (the tests hold them to 1e-5 relative)."""
from __future__ import annotations

from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval


def fuse_batch_norms(network: fx.GraphModule) -> fx.GraphModule:
    modules = dict(network.named_modules())
    for node in list(network.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.modules.batchnorm._BatchNorm):
            continue
        bn = modules[node.target]
        source = node.args[0]
        if not (isinstance(source, fx.Node) and source.op == "call_module" and len(source.users) == 1) \
                or not bn.track_running_stats:
            continue
        layer = modules[source.target]
        if isinstance(layer, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            fused = fuse_conv_bn_eval(layer.eval(), bn.eval())
        elif isinstance(layer, nn.Linear) and isinstance(bn, nn.BatchNorm1d):
            fused = fuse_linear_bn_eval(layer.eval(), bn.eval())
        else:
            continue
        setattr(network, source.target, fused)
        node.replace_all_uses_with(source)
        network.graph.erase_node(node)
        network.delete_submodule(node.target)
    network.graph.lint()
    network.recompile()
    return network
