"""Independent plain-PyTorch references of AmnesiacHAT's routed backup path ('train_with_backup').

Written from ``/work/shared/CONTRACT.md`` (AmnesiacHATMLP, AmnesiacHATResNet*): nothing here
imports ``specc``. Modules, stored masks and the current mask are passed in explicitly; the
``*_modules`` helpers only read modules off a network by the contract's attribute names.

Routing, for backup task b at a weighted layer with stored binary mask ``m_b`` (task b's mask of
that layer) and current mask ``m`` (this forward's mask of that layer)::

    y = m_b * (backup layer [+ backup bn])(x_b) + (1 - m_b) * (main layer [+ main bn])(x_b)
    y = y * m                      # for a block's last conv: after adding the routed shortcut
    x_b = dropout(activation(y))   # the MAIN network's activation / dropout modules

A block's shortcut conv is routed with the stored mask of the block's last conv:
``m_b * backup_shortcut(x_in) + (1 - m_b) * main_shortcut(x_in)``; no shortcut conv: identity.

The main path (HAT, no folding of anything) is given too: layer -> bn -> * m (after the add for a
block's last conv) -> activation -> record -> dropout.

The arithmetic order (``m_b * backup + (1 - m_b) * main``, then ``* m``; ``main + shortcut``)
is the contract's formula written left to right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

__all__ = [
    "route",
    "route_shortcut",
    "mlp_backup_path",
    "mlp_main_path",
    "mlp_modules",
    "mlp_reference",
    "small_block_backup_path",
    "large_block_backup_path",
    "block_backup_path",
    "block_main_path",
    "block_modules",
    "resnet_backup_path",
    "resnet_main_path",
    "resnet_reference",
]

RESNET_STAGES = ("conv2x", "conv3x", "conv4x", "conv5x")


def _apply(module: nn.Module | None, x: Tensor) -> Tensor:
    return x if module is None else module(x)


def _per_unit(m: Tensor, like: Tensor) -> Tensor:
    """A unit (channel) mask shaped to broadcast over `like` (batch, units[, h, w])."""
    if like.dim() <= 2:
        return m
    return m.view(1, -1, *([1] * (like.dim() - 2)))


# ---------------------------------------------------------------------------------------------
# one routed layer
# ---------------------------------------------------------------------------------------------


def route(x: Tensor, main_layer: nn.Module, main_bn: nn.Module | None, backup_layer: nn.Module,
          backup_bn: nn.Module | None, m_b: Tensor) -> Tensor:
    """``m_b * (backup_layer [+ backup_bn])(x) + (1 - m_b) * (main_layer [+ main_bn])(x)``."""
    main = _apply(main_bn, main_layer(x))
    backup = _apply(backup_bn, backup_layer(x))
    m = _per_unit(m_b, main)
    return m * backup + (1 - m) * main


def route_shortcut(x_in: Tensor, main_shortcut: nn.Module | None, backup_shortcut: nn.Module | None,
                   m_b_last: Tensor) -> Tensor:
    """A block's shortcut on the backup path: the identity without a shortcut conv, else the
    routed mix under the stored mask of the block's last conv."""
    if main_shortcut is None:
        assert backup_shortcut is None, "main and backup blocks must have the same shape"
        return x_in
    main = main_shortcut(x_in)
    backup = backup_shortcut(x_in)
    m = _per_unit(m_b_last, main)
    return m * backup + (1 - m) * main


# ---------------------------------------------------------------------------------------------
# MLP
# ---------------------------------------------------------------------------------------------


def mlp_backup_path(x: Tensor, main_layers: Sequence[nn.Module], main_bns: Sequence[nn.Module | None],
                    backup_layers: Sequence[nn.Module], backup_bns: Sequence[nn.Module | None],
                    activations: Sequence[nn.Module | None], dropouts: Sequence[nn.Module | None],
                    m_b: Sequence[Tensor], mask: Sequence[Tensor]) -> Tensor:
    """The backup path of one backup task through an MLP; lists are per layer, input to output
    (``activations``/``dropouts``: the main network's modules)."""
    x = x.reshape(x.size(0), -1)
    for i in range(len(main_layers)):
        x = route(x, main_layers[i], main_bns[i], backup_layers[i], backup_bns[i], m_b[i])
        x = x * mask[i]
        x = _apply(activations[i], x)
        x = _apply(dropouts[i], x)
    return x


def mlp_main_path(x: Tensor, layers, bns, activations, dropouts, mask: Sequence[Tensor]
                  ) -> tuple[Tensor, list[Tensor]]:
    """HAT's main path: (feature, recorded activations per layer)."""
    x = x.reshape(x.size(0), -1)
    recorded = []
    for i in range(len(layers)):
        x = _apply(bns[i], layers[i](x)) * mask[i]
        x = _apply(activations[i], x)
        recorded.append(x)
        x = _apply(dropouts[i], x)
    return x, recorded


def mlp_modules(net: nn.Module) -> dict[str, list]:
    """Per-layer module lists of an MLP-family network, by the contract's names (None if absent)."""
    n = len(net.fc)

    def per_layer(attr):
        lst = getattr(net, attr, None)
        return [None] * n if lst is None else list(lst)

    return {"fc": list(net.fc), "fc_bn": per_layer("fc_bn"), "fc_activation": per_layer("fc_activation"),
            "fc_dropout": per_layer("fc_dropout")}


def mlp_reference(x: Tensor, main_net: nn.Module, backup_nets: Mapping[int, nn.Module],
                  stored_masks: Mapping[int, Mapping[str, Tensor]], mask: Mapping[str, Tensor]
                  ) -> tuple[Tensor, dict[int, Tensor], dict[str, Tensor]]:
    """(feature, {b: backup feature}, activations) of an AmnesiacHATMLP in 'train_with_backup'
    for the given current mask (the main path runs first, then the backups in order)."""
    main = mlp_modules(main_net)
    names = [f"fc/{i}" for i in range(len(main["fc"]))]
    cur = [mask[n] for n in names]
    feature, recorded = mlp_main_path(x, main["fc"], main["fc_bn"], main["fc_activation"], main["fc_dropout"], cur)
    backup_features = {}
    for b, net in backup_nets.items():
        bk = mlp_modules(net)
        backup_features[b] = mlp_backup_path(
            x, main["fc"], main["fc_bn"], bk["fc"], bk["fc_bn"], main["fc_activation"], main["fc_dropout"],
            [stored_masks[b][n] for n in names], cur)
    return feature, backup_features, dict(zip(names, recorded))


# ---------------------------------------------------------------------------------------------
# ResNet blocks
# ---------------------------------------------------------------------------------------------


def block_modules(block: nn.Module) -> dict[str, nn.Module | None]:
    """A block's modules by the contract's names (None if absent): conv1..3, conv_bn1..3,
    conv_activation1..3, identity_downsample."""
    names = [f"{p}{k}" for k in (1, 2, 3) for p in ("conv", "conv_bn", "conv_activation")]
    return {n: getattr(block, n, None) for n in names + ["identity_downsample"]}


def _n_convs(mods: Mapping[str, nn.Module | None]) -> int:
    return 3 if mods.get("conv3") is not None else 2


def block_backup_path(x: Tensor, main: Mapping[str, nn.Module | None], backup: Mapping[str, nn.Module | None],
                      m_b: Sequence[Tensor], mask: Sequence[Tensor]) -> Tensor:
    """One block (small: 2 convs, large: 3 convs) on the backup path. ``main``/``backup``: the
    blocks' modules by name (see block_modules); ``m_b``/``mask``: stored and current masks of the
    block's convs, in order. Activations are the main block's."""
    n = _n_convs(main)
    assert len(m_b) == len(mask) == n
    h = x
    for k in range(1, n + 1):
        h = route(h, main[f"conv{k}"], main[f"conv_bn{k}"], backup[f"conv{k}"], backup[f"conv_bn{k}"], m_b[k - 1])
        if k == n:
            h = h + route_shortcut(x, main["identity_downsample"], backup["identity_downsample"], m_b[n - 1])
        h = h * _per_unit(mask[k - 1], h)
        h = _apply(main[f"conv_activation{k}"], h)
    return h


def small_block_backup_path(x, main, backup, m_b, mask) -> Tensor:
    """Small block (ResNet-18/34): conv1 -> bn1 -> *m -> act1; conv2 -> bn2 (+ shortcut) -> *m -> act2."""
    assert _n_convs(main) == 2
    return block_backup_path(x, main, backup, m_b, mask)


def large_block_backup_path(x, main, backup, m_b, mask) -> Tensor:
    """Large (bottleneck) block (ResNet-50+): three routed convs, the shortcut added after the third."""
    assert _n_convs(main) == 3
    return block_backup_path(x, main, backup, m_b, mask)


def block_main_path(x: Tensor, main: Mapping[str, nn.Module | None], mask: Sequence[Tensor]
                    ) -> tuple[Tensor, list[Tensor]]:
    """HAT's block: (output, recorded activation of each conv)."""
    n = _n_convs(main)
    h = x
    recorded = []
    for k in range(1, n + 1):
        h = _apply(main[f"conv_bn{k}"], main[f"conv{k}"](h))
        if k == n:
            h = h + _apply(main["identity_downsample"], x)
        h = h * _per_unit(mask[k - 1], h)
        h = _apply(main[f"conv_activation{k}"], h)
        recorded.append(h)
    return h, recorded


# ---------------------------------------------------------------------------------------------
# full ResNet
# ---------------------------------------------------------------------------------------------


def _blocks(net: nn.Module):
    for stage in RESNET_STAGES:
        for i, block in enumerate(getattr(net, stage)):
            yield f"{stage}/{i}", block


def resnet_backup_path(x: Tensor, main_net: nn.Module, backup_net: nn.Module, m_b: Mapping[str, Tensor],
                       mask: Mapping[str, Tensor]) -> Tensor:
    """The backup path through a whole ResNet (stem, four stages, pooling, flatten)."""
    h = route(x, main_net.conv1, getattr(main_net, "conv_bn1", None), backup_net.conv1,
              getattr(backup_net, "conv_bn1", None), m_b["conv1"])
    h = h * _per_unit(mask["conv1"], h)
    h = _apply(getattr(main_net, "conv_activation1", None), h)
    h = main_net.maxpool(h)
    backup_blocks = dict(_blocks(backup_net))
    for prefix, block in _blocks(main_net):
        mods = block_modules(block)
        names = [f"{prefix}/conv{k}" for k in range(1, _n_convs(mods) + 1)]
        h = block_backup_path(h, mods, block_modules(backup_blocks[prefix]), [m_b[n] for n in names],
                              [mask[n] for n in names])
    h = main_net.avepool(h)
    return h.reshape(h.size(0), -1)


def resnet_main_path(x: Tensor, main_net: nn.Module, mask: Mapping[str, Tensor]
                     ) -> tuple[Tensor, dict[str, Tensor]]:
    """HAT's main path through a whole ResNet: (feature, activations)."""
    acts = {}
    h = _apply(getattr(main_net, "conv_bn1", None), main_net.conv1(x))
    h = h * _per_unit(mask["conv1"], h)
    h = _apply(getattr(main_net, "conv_activation1", None), h)
    acts["conv1"] = h
    h = main_net.maxpool(h)
    for prefix, block in _blocks(main_net):
        mods = block_modules(block)
        names = [f"{prefix}/conv{k}" for k in range(1, _n_convs(mods) + 1)]
        h, rec = block_main_path(h, mods, [mask[n] for n in names])
        acts.update(zip(names, rec))
    h = main_net.avepool(h)
    return h.reshape(h.size(0), -1), acts


def resnet_reference(x: Tensor, main_net: nn.Module, backup_nets: Mapping[int, nn.Module],
                     stored_masks: Mapping[int, Mapping[str, Tensor]], mask: Mapping[str, Tensor]
                     ) -> tuple[Tensor, dict[int, Tensor], dict[str, Tensor]]:
    """(feature, {b: backup feature}, activations) of an AmnesiacHATResNet in 'train_with_backup'."""
    feature, acts = resnet_main_path(x, main_net, mask)
    backup_features = {b: resnet_backup_path(x, main_net, net, stored_masks[b], mask)
                       for b, net in backup_nets.items()}
    return feature, backup_features, acts
