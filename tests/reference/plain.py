"""Independent plain-PyTorch references of CLArena's MLP and ResNet backbones.

Written from ``/work/shared/CONTRACT.md`` only; nothing here imports ``specc``. The generated
classes are compared against these (same state_dict keys in the same order, same
``weighted_layer_names``, same outputs for the same weights).

Module registration order (which decides ``state_dict`` key order) follows CLArena:

* MLP: ``fc``, ``fc_bn`` (opt.), ``fc_activation`` (opt.), ``fc_dropout`` (opt.).
* ResNet: ``conv1``, ``conv_bn1`` (opt.), ``conv_activation1`` (opt.), ``maxpool``, ``conv2x``,
  ``conv3x``, ``conv4x``, ``conv5x``, ``avepool``.
* Blocks: ``conv1``, ``conv_bn1``, ``conv_activation1``, ``conv2``, ``conv_bn2``,
  ``conv_activation2`` [, ``conv3``, ``conv_bn3``, ``conv_activation3``], ``identity_downsample``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

__all__ = [
    "MLP",
    "CLMLP",
    "ResNetBlockSmall",
    "ResNetBlockLarge",
    "ResNetBase",
    "ResNet18",
    "ResNet34",
    "ResNet50",
    "ResNet101",
    "ResNet152",
    "CLResNet18",
    "CLResNet34",
    "CLResNet50",
    "CLResNet101",
    "CLResNet152",
    "RESNET_CONFIGS",
    "copy_weights",
]


# ---------------------------------------------------------------------------------------------
# small helpers shared by every reference (own code, not the project's base classes)
# ---------------------------------------------------------------------------------------------


class _LayerNames:
    """Name look-ups over ``weighted_layer_names`` (the contract's seed semantics)."""

    weighted_layer_names: list[str]

    def get_layer_by_name(self, layer_name: str | None) -> nn.Module | None:
        if layer_name is None:
            return None
        for name, layer in self.named_modules():  # type: ignore[attr-defined]
            if name == layer_name.replace("/", "."):
                return layer
        return None

    def preceding_layer_name(self, layer_name: str | None) -> str | None:
        if layer_name is None:
            return None
        if layer_name not in self.weighted_layer_names:
            raise ValueError(f"The layer name {layer_name} doesn't exist in weighted layer names.")
        idx = self.weighted_layer_names.index(layer_name)
        return None if idx == 0 else self.weighted_layer_names[idx - 1]

    def next_layer_name(self, layer_name: str) -> str | None:
        if layer_name not in self.weighted_layer_names:
            raise ValueError(f"The layer name {layer_name} doesn't exist.")
        idx = self.weighted_layer_names.index(layer_name)
        if idx == len(self.weighted_layer_names) - 1:
            return None
        return self.weighted_layer_names[idx + 1]


class _CLTaskIds:
    """The task-id bookkeeping of a CL backbone (no modules, so no state_dict entries)."""

    def _init_cl(self) -> None:
        self.task_id: int | None = None
        self.processed_task_ids: list[int] = []

    def setup_task_id(self, task_id: int) -> None:
        self.task_id = task_id
        self.processed_task_ids.append(task_id)


# ---------------------------------------------------------------------------------------------
# MLP
# ---------------------------------------------------------------------------------------------


class MLP(_LayerNames, nn.Module):
    """``MLP(input_dim, hidden_dims, output_dim, activation_layer=nn.ReLU,
    batch_normalization=False, bias=True, dropout=None)``."""

    def __init__(
        self,
        input_dim: int,
        hidden_dims: list[int],
        output_dim: int,
        activation_layer: Callable[[], nn.Module] | None = nn.ReLU,
        batch_normalization: bool = False,
        bias: bool = True,
        dropout: float | None = None,
    ) -> None:
        nn.Module.__init__(self)
        self.input_dim = input_dim
        self.hidden_dims = list(hidden_dims)
        self.output_dim = output_dim
        self.num_fc_layers = len(self.hidden_dims) + 1
        self.weighted_layer_names: list[str] = []

        def in_dim(i: int) -> int:
            return input_dim if i == 0 else self.hidden_dims[i - 1]

        def out_dim(i: int) -> int:
            return self.hidden_dims[i] if i < len(self.hidden_dims) else output_dim

        n = self.num_fc_layers
        # registration order: fc, fc_bn, fc_activation, fc_dropout
        self.fc = nn.ModuleList(nn.Linear(in_dim(i), out_dim(i), bias=bias) for i in range(n))
        self.weighted_layer_names = [f"fc/{i}" for i in range(n)]
        if batch_normalization:
            self.fc_bn = nn.ModuleList(nn.BatchNorm1d(out_dim(i)) for i in range(n))
        if activation_layer is not None:
            self.fc_activation = nn.ModuleList(activation_layer() for _ in range(n))
        if dropout is not None:
            self.fc_dropout = nn.ModuleList(nn.Dropout(dropout) for _ in range(n))

    def _forward(self, input: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        activations: dict[str, Tensor] = {}
        x = input.view(input.size(0), -1)
        for i in range(self.num_fc_layers):
            x = self.fc[i](x)
            if hasattr(self, "fc_bn"):
                x = self.fc_bn[i](x)
            if hasattr(self, "fc_activation"):
                x = self.fc_activation[i](x)
            activations[self.weighted_layer_names[i]] = x
            if hasattr(self, "fc_dropout"):
                x = self.fc_dropout[i](x)
        return x, activations

    def forward(self, input: Tensor, stage: str | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        return self._forward(input)


class CLMLP(_CLTaskIds, MLP):
    """Same modules as :class:`MLP`; ``forward(input, stage=None, task_id=None)`` ignores task_id."""

    def __init__(
        self,
        input_dim: int,
        hidden_dims: list[int],
        output_dim: int,
        activation_layer: Callable[[], nn.Module] | None = nn.ReLU,
        batch_normalization: bool = False,
        bias: bool = True,
        dropout: float | None = None,
    ) -> None:
        MLP.__init__(
            self,
            input_dim=input_dim,
            hidden_dims=hidden_dims,
            output_dim=output_dim,
            activation_layer=activation_layer,
            batch_normalization=batch_normalization,
            bias=bias,
            dropout=dropout,
        )
        self._init_cl()

    def forward(  # type: ignore[override]
        self, input: Tensor, stage: str | None = None, task_id: int | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        return self._forward(input)


# ---------------------------------------------------------------------------------------------
# ResNet blocks
# ---------------------------------------------------------------------------------------------


class ResNetBlockSmall(nn.Module):
    """Basic block (ResNet-18/34).

    ``preceding_output_channels`` is the block's input channel count c_in, ``input_channels``
    its width w (output channels = w), ``overall_stride`` the stride s (on ``conv2``).
    """

    expansion = 1

    def __init__(
        self,
        outer_layer_name: str,
        block_idx: int,
        preceding_output_channels: int,
        input_channels: int,
        overall_stride: int,
        activation_layer: Callable[[], nn.Module] | None = nn.ReLU,
        batch_normalization: bool = True,
        bias: bool = False,
    ) -> None:
        super().__init__()
        c_in, w, s = preceding_output_channels, input_channels, overall_stride
        self.output_channels = w
        prefix = f"{outer_layer_name}/{block_idx}"

        self.conv1 = nn.Conv2d(c_in, w, kernel_size=3, stride=1, padding=1, bias=bias)
        if batch_normalization:
            self.conv_bn1 = nn.BatchNorm2d(w)
        if activation_layer is not None:
            self.conv_activation1 = activation_layer()
        self.conv2 = nn.Conv2d(w, w, kernel_size=3, stride=s, padding=1, bias=bias)
        if batch_normalization:
            self.conv_bn2 = nn.BatchNorm2d(w)
        if activation_layer is not None:
            self.conv_activation2 = activation_layer()
        self.identity_downsample: nn.Module | None = (
            nn.Conv2d(c_in, w, kernel_size=1, stride=s, bias=False) if (c_in != w or s != 1) else None
        )
        self.weighted_layer_names = [f"{prefix}/conv1", f"{prefix}/conv2"]

    def forward(self, input: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        activations: dict[str, Tensor] = {}
        identity = self.identity_downsample(input) if self.identity_downsample is not None else input

        x = self.conv1(input)
        if hasattr(self, "conv_bn1"):
            x = self.conv_bn1(x)
        if hasattr(self, "conv_activation1"):
            x = self.conv_activation1(x)
        activations[self.weighted_layer_names[0]] = x

        x = self.conv2(x)
        if hasattr(self, "conv_bn2"):
            x = self.conv_bn2(x)
        x = x + identity
        if hasattr(self, "conv_activation2"):
            x = self.conv_activation2(x)
        activations[self.weighted_layer_names[1]] = x
        return x, activations


class ResNetBlockLarge(nn.Module):
    """Bottleneck block (ResNet-50/101/152): 1x1 (c_in->w), 3x3 (w->w, stride s), 1x1 (w->4w)."""

    expansion = 4

    def __init__(
        self,
        outer_layer_name: str,
        block_idx: int,
        preceding_output_channels: int,
        input_channels: int,
        overall_stride: int,
        activation_layer: Callable[[], nn.Module] | None = nn.ReLU,
        batch_normalization: bool = True,
        bias: bool = False,
    ) -> None:
        super().__init__()
        c_in, w, s = preceding_output_channels, input_channels, overall_stride
        c_out = 4 * w
        self.output_channels = c_out
        prefix = f"{outer_layer_name}/{block_idx}"

        self.conv1 = nn.Conv2d(c_in, w, kernel_size=1, stride=1, padding=0, bias=bias)
        if batch_normalization:
            self.conv_bn1 = nn.BatchNorm2d(w)
        if activation_layer is not None:
            self.conv_activation1 = activation_layer()
        self.conv2 = nn.Conv2d(w, w, kernel_size=3, stride=s, padding=1, bias=bias)
        if batch_normalization:
            self.conv_bn2 = nn.BatchNorm2d(w)
        if activation_layer is not None:
            self.conv_activation2 = activation_layer()
        self.conv3 = nn.Conv2d(w, c_out, kernel_size=1, stride=1, padding=0, bias=bias)
        if batch_normalization:
            self.conv_bn3 = nn.BatchNorm2d(c_out)
        if activation_layer is not None:
            self.conv_activation3 = activation_layer()
        self.identity_downsample: nn.Module | None = (
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=s, bias=False)
            if (c_in != c_out or s != 1)
            else None
        )
        self.weighted_layer_names = [f"{prefix}/conv1", f"{prefix}/conv2", f"{prefix}/conv3"]

    def forward(self, input: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        activations: dict[str, Tensor] = {}
        identity = self.identity_downsample(input) if self.identity_downsample is not None else input

        x = self.conv1(input)
        if hasattr(self, "conv_bn1"):
            x = self.conv_bn1(x)
        if hasattr(self, "conv_activation1"):
            x = self.conv_activation1(x)
        activations[self.weighted_layer_names[0]] = x

        x = self.conv2(x)
        if hasattr(self, "conv_bn2"):
            x = self.conv_bn2(x)
        if hasattr(self, "conv_activation2"):
            x = self.conv_activation2(x)
        activations[self.weighted_layer_names[1]] = x

        x = self.conv3(x)
        if hasattr(self, "conv_bn3"):
            x = self.conv_bn3(x)
        x = x + identity
        if hasattr(self, "conv_activation3"):
            x = self.conv_activation3(x)
        activations[self.weighted_layer_names[2]] = x
        return x, activations


# ---------------------------------------------------------------------------------------------
# ResNet networks
# ---------------------------------------------------------------------------------------------

#: depth -> (block class, block counts of conv2x..conv5x)
RESNET_CONFIGS: dict[int, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    18: (ResNetBlockSmall, (2, 2, 2, 2)),
    34: (ResNetBlockSmall, (3, 4, 6, 3)),
    50: (ResNetBlockLarge, (3, 4, 6, 3)),
    101: (ResNetBlockLarge, (3, 4, 23, 3)),
    152: (ResNetBlockLarge, (3, 8, 36, 3)),
}

_STAGES = (("conv2x", 64, 1), ("conv3x", 128, 2), ("conv4x", 256, 2), ("conv5x", 512, 2))


class ResNetBase(_LayerNames, nn.Module):
    """Shared construction of ResNet18..152 (``depth`` selects the block type and counts)."""

    depth: int

    def __init__(
        self,
        input_channels: int,
        output_dim: int,
        activation_layer: Callable[[], nn.Module] | None = nn.ReLU,
        batch_normalization: bool = True,
        bias: bool = False,
    ) -> None:
        nn.Module.__init__(self)
        self.input_channels = input_channels
        self.output_dim = output_dim
        self.weighted_layer_names: list[str] = ["conv1"]

        block_cls, counts = RESNET_CONFIGS[self.depth]

        # stem: conv1, conv_bn1, conv_activation1, maxpool
        self.conv1 = nn.Conv2d(input_channels, 64, kernel_size=7, stride=2, padding=3, bias=bias)
        if batch_normalization:
            self.conv_bn1 = nn.BatchNorm2d(64)
        if activation_layer is not None:
            self.conv_activation1 = activation_layer()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        # stages conv2x..conv5x
        channels = 64
        for (stage_name, width, stride), count in zip(_STAGES, counts):
            blocks = []
            for b in range(count):
                block = block_cls(
                    outer_layer_name=stage_name,
                    block_idx=b,
                    preceding_output_channels=channels,
                    input_channels=width,
                    overall_stride=stride if b == 0 else 1,
                    activation_layer=activation_layer,
                    batch_normalization=batch_normalization,
                    bias=bias,
                )
                channels = block.output_channels
                self.weighted_layer_names.extend(block.weighted_layer_names)
                blocks.append(block)
            setattr(self, stage_name, nn.Sequential(*blocks))

        self.avepool = nn.AdaptiveAvgPool2d((1, 1))

    def _forward(self, input: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        activations: dict[str, Tensor] = {}
        x = self.conv1(input)
        if hasattr(self, "conv_bn1"):
            x = self.conv_bn1(x)
        if hasattr(self, "conv_activation1"):
            x = self.conv_activation1(x)
        activations["conv1"] = x
        x = self.maxpool(x)
        for stage_name, _, _ in _STAGES:
            for block in getattr(self, stage_name):
                x, block_activations = block(x)
                activations.update(block_activations)
        x = self.avepool(x)
        x = x.view(x.size(0), -1)
        return x, activations

    def forward(self, input: Tensor, stage: str | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        return self._forward(input)


class _CLResNetBase(_CLTaskIds, ResNetBase):
    def __init__(
        self,
        input_channels: int,
        output_dim: int,
        activation_layer: Callable[[], nn.Module] | None = nn.ReLU,
        batch_normalization: bool = True,
        bias: bool = False,
    ) -> None:
        ResNetBase.__init__(
            self,
            input_channels=input_channels,
            output_dim=output_dim,
            activation_layer=activation_layer,
            batch_normalization=batch_normalization,
            bias=bias,
        )
        self._init_cl()

    def forward(  # type: ignore[override]
        self, input: Tensor, stage: str | None = None, task_id: int | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        return self._forward(input)


class ResNet18(ResNetBase):
    depth = 18


class ResNet34(ResNetBase):
    depth = 34


class ResNet50(ResNetBase):
    depth = 50


class ResNet101(ResNetBase):
    depth = 101


class ResNet152(ResNetBase):
    depth = 152


class CLResNet18(_CLResNetBase):
    depth = 18


class CLResNet34(_CLResNetBase):
    depth = 34


class CLResNet50(_CLResNetBase):
    depth = 50


class CLResNet101(_CLResNetBase):
    depth = 101


class CLResNet152(_CLResNetBase):
    depth = 152


# ---------------------------------------------------------------------------------------------
# weight transfer
# ---------------------------------------------------------------------------------------------


def copy_weights(src: nn.Module, dst: nn.Module) -> nn.Module:
    """Load ``src.state_dict()`` into ``dst`` (strict), after checking that both modules have
    the same state_dict keys in the same order and the same shapes. Returns ``dst``."""
    src_sd = src.state_dict()
    dst_sd = dst.state_dict()
    src_keys, dst_keys = list(src_sd.keys()), list(dst_sd.keys())
    if src_keys != dst_keys:
        first = next(
            (i for i, (a, b) in enumerate(zip(src_keys, dst_keys)) if a != b),
            min(len(src_keys), len(dst_keys)),
        )
        only_src = [k for k in src_keys if k not in dst_sd]
        only_dst = [k for k in dst_keys if k not in src_sd]
        raise AssertionError(
            "state_dict keys differ "
            f"(src {len(src_keys)} keys, dst {len(dst_keys)} keys; first difference at index {first}: "
            f"src={src_keys[first] if first < len(src_keys) else None!r}, "
            f"dst={dst_keys[first] if first < len(dst_keys) else None!r}; "
            f"only in src: {only_src[:10]}; only in dst: {only_dst[:10]})"
        )
    bad = [(k, tuple(src_sd[k].shape), tuple(dst_sd[k].shape)) for k in src_keys if src_sd[k].shape != dst_sd[k].shape]
    if bad:
        raise AssertionError(f"state_dict shapes differ: {bad[:10]}")
    dst.load_state_dict(src_sd, strict=True)
    return dst
