"""Independent plain-PyTorch references of CLArena's HAT backbones (HATMaskMLP, HATMaskResNet*).

Written from ``/work/shared/CONTRACT.md`` and the seed (``/work/shared/seed/base_readable.txt``):
nothing here imports ``specc``. Every formula is computed directly in this file.

Module registration order (it decides ``state_dict`` key order and ``named_modules`` order) follows
CLArena's multiple inheritance (``HATMaskMLP(HATMaskBackbone, MLP)``: ``HATMaskBackbone.__init__``
calls ``super().__init__`` first, which builds the architecture, and only then creates ``gate_fn``
and ``task_embedding_t``); the per-task batch-norm copies are created last, in the module that
owns each batch norm:

* MLP: ``fc``, ``fc_bn`` (opt.), ``fc_activation`` (opt.), ``fc_dropout`` (opt.), ``gate_fn``,
  ``task_embedding_t``, ``fc_bns`` (independent only).
* ResNet: ``conv1``, ``conv_bn1`` (opt.), ``conv_activation1`` (opt.), ``maxpool``, ``conv2x`` ..
  ``conv5x``, ``avepool``, ``gate_fn``, ``task_embedding_t``, ``conv_bn1s`` (independent only).
* Blocks: ``conv1``, ``conv_bn1``, ``conv_activation1``, ``conv2``, ``conv_bn2``,
  ``conv_activation2`` [, ``conv3``, ``conv_bn3``, ``conv_activation3``], ``identity_downsample``
  (opt.), then ``conv_bn1s``, ``conv_bn2s`` [, ``conv_bn3s``] (independent only).

All task embeddings are kept in the top-level ``task_embedding_t`` (keyed by the ``/`` layer name).
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy

import torch
from torch import Tensor, nn

__all__ = [
    "HATMaskMLP",
    "HATMaskResNetBlockSmall",
    "HATMaskResNetBlockLarge",
    "HATMaskResNet",
    "HATMaskResNet18",
    "HATMaskResNet34",
    "HATMaskResNet50",
    "HATMaskResNet101",
    "HATMaskResNet152",
    "ERR_TRAIN",
    "ERR_VALIDATION",
    "ERR_TEST",
    "ERR_GATE",
]

# The seed's messages, word for word (they name `batch_num` / `task_mask`, not the argument names).
ERR_TRAIN = (
    "The `s_max`, `batch_idx` and `batch_num` should be provided at training stage, "
    "instead of the default value `None`."
)
ERR_VALIDATION = "The `s_max` should be provided at validation stage, instead of the default value `None`."
ERR_TEST = "The `task_mask` should be provided at testing stage, instead of the default value `None`."
ERR_GATE = "The gate should be one of: 'sigmoid'."


# ---------------------------------------------------------------------------------------------
# the HAT machinery (own code following the seed's HATMaskBackbone)
# ---------------------------------------------------------------------------------------------


class _HAT(nn.Module):
    """Task ids, gate, task embeddings, masks and independent batch-norm copies."""

    weighted_layer_names: list[str]

    def _init_hat(self, gate: str, batch_normalization: str | None) -> None:
        self.task_id: int | None = None
        self.processed_task_ids: list[int] = []
        self.gate = gate
        if gate == "sigmoid":
            self.gate_fn = nn.Sigmoid()
        self.task_embedding_t = nn.ModuleDict()
        self.masks: dict[int, dict[str, Tensor]] = {}
        self.batch_normalization = batch_normalization
        if gate not in ["sigmoid"]:
            raise ValueError(ERR_GATE)
        # (owner module path, batch-norm attribute) of every independent batch-norm group
        self._bn_groups: list[tuple[str, str]] = []

    def _add_embeddings(self) -> None:
        for name in self.weighted_layer_names:
            units = self.get_layer_by_name(name).weight.size(0)
            self.task_embedding_t[name] = nn.Embedding(1, units)

    def _register_bn_group(self, owner_path: str, owner: nn.Module, attr: str) -> None:
        setattr(owner, attr + "s", nn.ModuleDict())
        setattr(owner, f"original_{attr}_state_dict", deepcopy(getattr(owner, attr).state_dict()))
        self._bn_groups.append((owner_path, attr))

    def _bn_owners(self):
        for path, attr in self._bn_groups:
            yield (self.get_submodule(path) if path else self), attr

    # -- names -------------------------------------------------------------------------------

    def get_layer_by_name(self, layer_name: str | None) -> nn.Module | None:
        if layer_name is None:
            return None
        for name, layer in self.named_modules():
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

    # -- tasks ---------------------------------------------------------------------------------

    def setup_task_id(self, task_id: int) -> None:
        self.task_id = task_id
        self.processed_task_ids.append(task_id)
        for owner, attr in self._bn_owners():
            copies = getattr(owner, attr + "s")
            if str(task_id) not in copies:
                copies[str(task_id)] = deepcopy(getattr(owner, attr))

    def store_bn(self) -> None:
        for owner, attr in self._bn_owners():
            getattr(owner, attr + "s")[str(self.task_id)] = deepcopy(getattr(owner, attr))

    def initialize_independent_bn(self) -> None:
        for owner, attr in self._bn_owners():
            getattr(owner, attr).load_state_dict(getattr(owner, f"original_{attr}_state_dict"))

    def _bn_key(self, stage: str, test_task_id: int | None) -> str | None:
        """None: use the live batch norms; else the key of the per-task copy to use."""
        if self.batch_normalization != "independent" or stage not in ("test", "unlearning_test"):
            return None
        return str(test_task_id if test_task_id is not None else self.task_id)

    # -- masks ---------------------------------------------------------------------------------

    def get_mask(self, stage, s_max=None, batch_idx=None, num_batches=None, test_task_id=None):
        if stage == "train" and (s_max is None or batch_idx is None or num_batches is None):
            raise ValueError(ERR_TRAIN)
        if stage == "validation" and s_max is None:
            raise ValueError(ERR_VALIDATION)
        if stage == "test" and test_task_id is None:
            raise ValueError(ERR_TEST)
        mask: dict[str, Tensor] = {}
        if stage == "train":
            # HAT Eq. (3): s = 1/s_max + (s_max - 1/s_max) (b - 1) / (B - 1)
            s = 1 / s_max + (s_max - 1 / s_max) * (batch_idx - 1) / (num_batches - 1)
            for name in self.weighted_layer_names:
                mask[name] = torch.sigmoid(self.task_embedding_t[name].weight * s).squeeze()
        elif stage == "validation":
            for name in self.weighted_layer_names:
                mask[name] = torch.sigmoid(self.task_embedding_t[name].weight * s_max).squeeze()
        elif stage == "test":
            mask = self.masks[test_task_id]  # the stored dict itself (seed semantics)
        elif stage == "unlearning_test":
            for name in self.weighted_layer_names:
                w = self.get_layer_by_name(name).weight
                mask[name] = torch.ones(w.size(0), device=w.device)
        return mask

    def te_to_binary_mask(self) -> dict[str, Tensor]:
        return {
            name: (self.task_embedding_t[name].weight > 0).float().squeeze().detach()
            for name in self.weighted_layer_names
        }

    def store_mask(self) -> dict[str, Tensor]:
        mask_t = self.te_to_binary_mask()
        self.masks[self.task_id] = mask_t
        return mask_t

    def get_layer_measure_parameter_wise(self, neuron_wise_measure, layer_name, aggregation_mode):
        agg = {
            "min": torch.minimum,
            "max": torch.maximum,
            "mean": lambda a, b: (a + b) / 2,
        }.get(aggregation_mode)
        if agg is None:
            raise ValueError(f"The aggregation method {aggregation_mode} is not supported.")
        w = self.get_layer_by_name(layer_name).weight
        extra = (1,) * (w.dim() - 2)
        own = neuron_wise_measure[layer_name]
        weight_measure = own.view(-1, 1, *extra).expand(w.size())
        prev = self.preceding_layer_name(layer_name)
        if prev is not None:
            weight_measure = agg(
                weight_measure, neuron_wise_measure[prev].view(1, -1, *extra).expand(w.size())
            )
        return weight_measure, own


# ---------------------------------------------------------------------------------------------
# MLP
# ---------------------------------------------------------------------------------------------


class HATMaskMLP(_HAT):
    def __init__(
        self,
        input_dim: int,
        hidden_dims: list[int],
        output_dim: int,
        gate: str,
        activation_layer: Callable[[], nn.Module] | None = nn.ReLU,
        batch_normalization: str | None = None,
        bias: bool = True,
        dropout: float | None = None,
    ) -> None:
        super().__init__()
        self.output_dim = output_dim
        dims = [input_dim, *hidden_dims, output_dim]
        n = len(dims) - 1
        self.num_fc_layers = n
        self.fc = nn.ModuleList(nn.Linear(dims[i], dims[i + 1], bias=bias) for i in range(n))
        if batch_normalization:
            self.fc_bn = nn.ModuleList(nn.BatchNorm1d(dims[i + 1]) for i in range(n))
        if activation_layer is not None:
            self.fc_activation = nn.ModuleList(activation_layer() for _ in range(n))
        if dropout is not None:
            self.fc_dropout = nn.ModuleList(nn.Dropout(dropout) for _ in range(n))
        self.weighted_layer_names = [f"fc/{i}" for i in range(n)]
        self._init_hat(gate, batch_normalization)
        self._add_embeddings()
        if batch_normalization == "independent":
            self._register_bn_group("", self, "fc_bn")

    def forward(self, input, stage, s_max=None, batch_idx=None, num_batches=None, test_task_id=None):
        mask = self.get_mask(stage, s_max, batch_idx, num_batches, test_task_id)
        key = self._bn_key(stage, test_task_id)
        activations: dict[str, Tensor] = {}
        x = input.view(input.size(0), -1)
        for i, name in enumerate(self.weighted_layer_names):
            x = self.fc[i](x)
            if self.batch_normalization:
                x = (self.fc_bn if key is None else self.fc_bns[key])[i](x)
            x = x * mask[name]
            if hasattr(self, "fc_activation"):
                x = self.fc_activation[i](x)
            activations[name] = x
            if hasattr(self, "fc_dropout"):
                x = self.fc_dropout[i](x)
        return x, mask, activations


# ---------------------------------------------------------------------------------------------
# ResNet
# ---------------------------------------------------------------------------------------------


def _view4(m: Tensor) -> Tensor:
    return m.view(1, -1, 1, 1)


class _Block(nn.Module):
    """A HAT ResNet block. ``prefix`` is its '/' name ('conv2x/0'); ``n_convs`` 2 or 3."""

    n_convs: int

    def _bn(self, k: int, key: str | None) -> nn.Module:
        return getattr(self, f"conv_bn{k}") if key is None else getattr(self, f"conv_bn{k}s")[key]

    def _finish(self, independent: bool, root: _HAT, path: str) -> None:
        if independent:
            for k in range(1, self.n_convs + 1):
                root._register_bn_group(path, self, f"conv_bn{k}")

    def run(self, x: Tensor, mask, key: str | None, activations: dict) -> Tensor:
        identity = self.identity_downsample(x) if self.identity_downsample is not None else x
        for k in range(1, self.n_convs + 1):
            name = f"{self.prefix}/conv{k}"
            x = getattr(self, f"conv{k}")(x)
            if self.bn:
                x = self._bn(k, key)(x)
            if k == self.n_convs:
                x = x + identity
            x = x * _view4(mask[name])
            if self.act:
                x = getattr(self, f"conv_activation{k}")(x)
            activations[name] = x
        return x


class HATMaskResNetBlockSmall(_Block):
    expansion = 1
    n_convs = 2

    def __init__(self, prefix, c_in, width, stride, activation_layer, batch_normalization, bias):
        super().__init__()
        self.prefix = prefix
        self.bn = bool(batch_normalization)
        self.act = activation_layer is not None
        self.conv1 = nn.Conv2d(c_in, width, 3, stride=1, padding=1, bias=bias)
        if self.bn:
            self.conv_bn1 = nn.BatchNorm2d(width)
        if self.act:
            self.conv_activation1 = activation_layer()
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=bias)
        if self.bn:
            self.conv_bn2 = nn.BatchNorm2d(width)
        if self.act:
            self.conv_activation2 = activation_layer()
        if c_in != width or stride != 1:
            self.identity_downsample = nn.Conv2d(c_in, width, 1, stride=stride, bias=False)
        else:
            self.identity_downsample = None
        self.weighted_layer_names = [f"{prefix}/conv1", f"{prefix}/conv2"]


class HATMaskResNetBlockLarge(_Block):
    expansion = 4
    n_convs = 3

    def __init__(self, prefix, c_in, width, stride, activation_layer, batch_normalization, bias):
        super().__init__()
        self.prefix = prefix
        self.bn = bool(batch_normalization)
        self.act = activation_layer is not None
        out = 4 * width
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=bias)
        if self.bn:
            self.conv_bn1 = nn.BatchNorm2d(width)
        if self.act:
            self.conv_activation1 = activation_layer()
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=bias)
        if self.bn:
            self.conv_bn2 = nn.BatchNorm2d(width)
        if self.act:
            self.conv_activation2 = activation_layer()
        self.conv3 = nn.Conv2d(width, out, 1, bias=bias)
        if self.bn:
            self.conv_bn3 = nn.BatchNorm2d(out)
        if self.act:
            self.conv_activation3 = activation_layer()
        if c_in != out or stride != 1:
            self.identity_downsample = nn.Conv2d(c_in, out, 1, stride=stride, bias=False)
        else:
            self.identity_downsample = None
        self.weighted_layer_names = [f"{prefix}/conv{k}" for k in (1, 2, 3)]


RESNET_CONFIGS = {
    18: (HATMaskResNetBlockSmall, (2, 2, 2, 2)),
    34: (HATMaskResNetBlockSmall, (3, 4, 6, 3)),
    50: (HATMaskResNetBlockLarge, (3, 4, 6, 3)),
    101: (HATMaskResNetBlockLarge, (3, 4, 23, 3)),
    152: (HATMaskResNetBlockLarge, (3, 8, 36, 3)),
}


class HATMaskResNet(_HAT):
    depth: int

    def __init__(
        self,
        input_channels: int,
        output_dim: int,
        gate: str,
        activation_layer: Callable[[], nn.Module] | None = nn.ReLU,
        batch_normalization: str | None = None,
        bias: bool = False,
    ) -> None:
        super().__init__()
        block_cls, counts = RESNET_CONFIGS[self.depth]
        self.output_dim = output_dim
        bn = bool(batch_normalization)
        self.bn = bn
        self.act = activation_layer is not None
        self.conv1 = nn.Conv2d(input_channels, 64, 7, stride=2, padding=3, bias=bias)
        if bn:
            self.conv_bn1 = nn.BatchNorm2d(64)
        if self.act:
            self.conv_activation1 = activation_layer()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        names = ["conv1"]
        c_in = 64
        for stage_idx, (width, count) in enumerate(zip((64, 128, 256, 512), counts)):
            stage_name = f"conv{stage_idx + 2}x"
            blocks = []
            for b in range(count):
                stride = (1 if stage_idx == 0 else 2) if b == 0 else 1
                block = block_cls(f"{stage_name}/{b}", c_in, width, stride, activation_layer,
                                  batch_normalization, bias)
                blocks.append(block)
                names += block.weighted_layer_names
                c_in = width * block_cls.expansion
            setattr(self, stage_name, nn.Sequential(*blocks))
        self.avepool = nn.AdaptiveAvgPool2d((1, 1))
        self.weighted_layer_names = names
        self._init_hat(gate, batch_normalization)
        self._add_embeddings()
        if batch_normalization == "independent":
            for stage_name in ("conv2x", "conv3x", "conv4x", "conv5x"):
                for b, block in enumerate(getattr(self, stage_name)):
                    block._finish(True, self, f"{stage_name}.{b}")
            self._register_bn_group("", self, "conv_bn1")

    def forward(self, input, stage, s_max=None, batch_idx=None, num_batches=None, test_task_id=None):
        mask = self.get_mask(stage, s_max, batch_idx, num_batches, test_task_id)
        key = self._bn_key(stage, test_task_id)
        activations: dict[str, Tensor] = {}
        x = self.conv1(input)
        if self.bn:
            x = (self.conv_bn1 if key is None else self.conv_bn1s[key])(x)
        x = x * _view4(mask["conv1"])
        if self.act:
            x = self.conv_activation1(x)
        activations["conv1"] = x
        x = self.maxpool(x)
        for stage_name in ("conv2x", "conv3x", "conv4x", "conv5x"):
            for block in getattr(self, stage_name):
                x = block.run(x, mask, key, activations)
        x = self.avepool(x)
        return x.view(x.size(0), -1), mask, activations


class HATMaskResNet18(HATMaskResNet):
    depth = 18


class HATMaskResNet34(HATMaskResNet):
    depth = 34


class HATMaskResNet50(HATMaskResNet):
    depth = 50


class HATMaskResNet101(HATMaskResNet):
    depth = 101


class HATMaskResNet152(HATMaskResNet):
    depth = 152


# ---------------------------------------------------------------------------------------------
# HAT on any network: masks, their point of application and parameter-wise measures as plain
# functions (used by the HAT variants of the peer backbones in reference/peers and by
# tests/test_peer_specs.py). Same formulas as above, written without a backbone class.
# ---------------------------------------------------------------------------------------------


def annealed_scale(s_max: float, batch_idx: int, num_batches: int) -> float:
    """HAT Eq. (3): s = 1/s_max + (s_max - 1/s_max) (b - 1) / (B - 1) (a Python float)."""
    return 1 / s_max + (s_max - 1 / s_max) * (batch_idx - 1) / (num_batches - 1)


def new_embeddings(units: dict[str, int], generator: torch.Generator | None = None) -> dict[str, nn.Parameter]:
    """One (1, units) task embedding per weighted layer, N(0, 1) (so the sigmoid gate is fractional
    for small scales and nearly binary for large ones)."""
    return {name: nn.Parameter(torch.randn(1, n, generator=generator)) for name, n in units.items()}


def gate_masks(embeddings: dict[str, Tensor], scale: float) -> dict[str, Tensor]:
    """The unit masks sigmoid(embedding * scale), one vector per layer (train: the annealed scale,
    validation: s_max)."""
    return {name: torch.sigmoid(e * scale).squeeze() for name, e in embeddings.items()}


def binary_masks(embeddings: dict[str, Tensor]) -> dict[str, Tensor]:
    """The stored (test) masks: 1 where the embedding is positive, else 0."""
    return {name: (e > 0).float().squeeze().detach() for name, e in embeddings.items()}


def apply_unit_mask(x: Tensor, mask: Tensor) -> Tensor:
    """Multiply each unit (dim 1: a feature, or a channel of an image) by its mask."""
    return x * mask.view(1, -1, *([1] * (x.dim() - 2)))


def parameter_wise_measure(weight: Tensor, own: Tensor, inputs: Tensor | None, mode: str,
                           groups: int = 1) -> tuple[Tensor, Tensor]:
    """(weight measure, bias measure) of a weighted layer, entry by entry:

    weight[i, j, ...] -> Agg(own[i], inputs[c(i, j)]) where c(i, j) is the network input unit that
    weight entry (i, j) reads: j for an ungrouped layer, (i // (out / groups)) * (in / groups) + j
    for a grouped convolution; own[i] alone where the inputs carry no layer's units (``inputs`` is
    None, or the entry of ``inputs`` is NaN: network input, zero padding). Agg: 'min', 'max', or the
    elementwise mean (a + b) / 2. The bias measure is ``own``."""
    agg = {"min": min, "max": max, "mean": lambda a, b: (a + b) / 2}[mode]
    out_units, in_per_group = weight.shape[0], weight.shape[1]
    per_group_out = out_units // groups
    own_l = own.tolist()
    in_l = inputs.tolist() if inputs is not None else None
    rows = []
    for i in range(out_units):
        row = []
        for j in range(in_per_group):
            c = (i // per_group_out) * in_per_group + j
            v = in_l[c] if in_l is not None else float("nan")
            row.append(own_l[i] if v != v else agg(own_l[i], v))
        rows.append(row)
    table = torch.tensor(rows, dtype=own.dtype)
    return table.view(out_units, in_per_group, *([1] * (weight.dim() - 2))).expand(weight.shape), own
