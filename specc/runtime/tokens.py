"""Token modules for vision transformers, in timm's VisionTransformer layout (child and parameter
names `proj`, `qkv`, `cls_token`, `pos_embed`), so that a timm state dict loads into them unchanged.

They are the torch side of the transformer layer kinds of issue 21 (their catalogue entries are in
specc/core/layers.py), with the two residual-branch modules transformers and EfficientNets use,
`DropPath` (stochastic depth) and `LayerScale`, which take any shape. Values of the token modules are
batches of tokens (B, L, D): the units are the D features on the last axis, as nn.Linear and
nn.LayerNorm read them.

What a unit is (HAT's unit masks, specc/runtime/schemes/hat.py): a unit of `qkv`'s output is one of its
3*D output features, laid out as (3, heads, head_dim), i.e. q, k and v each own D consecutive units and
each head owns head_dim consecutive units of each; a unit of the heads' output (before `proj`) is one
of D features in heads-major order, and it is unit 2*D + i of `qkv` (v's unit i) that makes it:
output feature i is a weighted sum over tokens of v's feature i, so a v unit that is 0 gives exactly 0
there, whatever the attention weights. A q or k unit that is 0 adds exactly 0 to every score.
Attention mixes tokens (rows), never features across heads.

The steps between the weighted layers are functions (`attend`, `to_tokens`, `prepend_token`,
`add_embedding`, `select_token`, `mean_tokens`, `check_patches`) that torch.fx records as single calls
(fx.wrap), so that a traced network shows qkv, proj and the patch projection as the linear and
convolution they are, and the analysis reads each step by its role (specc/core/roles.py).
"""
from __future__ import annotations

import torch
from torch import Tensor, fx, nn
from torch.nn import functional as F

from . import positions


def check_patches(x: Tensor, patch_size: int) -> Tensor:
    """`x` itself, once its height and width are found divisible into patches."""
    h, w = x.shape[-2:]
    if h % patch_size or w % patch_size:
        at = positions.nearest()  # the spec line calling it: the image size is the caller's
        raise ValueError(f"PatchEmbed: image {h}x{w} is not divisible into {patch_size}x{patch_size} patches"
                         + (f" (at {at})" if at else ""))
    return x


def to_tokens(x: Tensor) -> Tensor:
    """Feature maps (B, D, H', W') as tokens (B, H' * W', D), patches in row-major order."""
    return x.flatten(2).transpose(1, 2)


def prepend_token(x: Tensor, token: Tensor) -> Tensor:
    """The class token (1, 1, D) put before every sample's tokens."""
    return torch.cat([token.expand(x.shape[0], -1, -1), x], dim=1)


def add_embedding(x: Tensor, embedding: Tensor) -> Tensor:
    """The position embedding (1, L, D) added to the tokens."""
    return x + embedding


def select_token(x: Tensor, index: int) -> Tensor:
    """The features (B, D) of token `index`."""
    return x[:, index]


def mean_tokens(x: Tensor, start: int) -> Tensor:
    """The mean (B, D) of the tokens from `start` on."""
    return x[:, start:].mean(dim=1)


def attend(qkv: Tensor, num_heads: int, q_norm: nn.Module, k_norm: nn.Module, attn_drop: nn.Dropout,
           fused: bool) -> Tensor:
    """Multi-head scaled dot-product attention on `qkv`'s output (B, L, 3D): (B, L, D), heads joined
    in heads-major order. The modules are passed (a traced graph reads them as attributes), so that
    `attn_drop` drops attention weights only while it is training."""
    b, n, width = qkv.shape
    dim = width // 3
    head_dim = dim // num_heads
    # (B, L, 3D) -> (3, B, heads, L, head_dim): the qkv layout the module docstring describes.
    q, k, v = qkv.reshape(b, n, 3, num_heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = q_norm(q), k_norm(k)
    if fused:
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=attn_drop.p if attn_drop.training else 0.0)
    else:
        weights = ((q * head_dim ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        y = attn_drop(weights) @ v
    return y.transpose(1, 2).reshape(b, n, dim)


for _step in ("check_patches", "to_tokens", "prepend_token", "add_embedding", "select_token", "mean_tokens",
              "attend"):
    fx.wrap(_step)


class PatchEmbed(nn.Module):
    """An image (B, C, H, W) cut into patch_size x patch_size patches, each projected to embed_dim
    features by one convolution (`proj`, kernel = stride = patch_size): tokens (B, H/p * W/p, D) in
    row-major patch order."""

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int, bias: bool = True) -> None:
        super().__init__()
        if patch_size <= 0 or embed_dim <= 0:
            raise ValueError(f"PatchEmbed needs patch_size and embed_dim > 0, got {patch_size} and {embed_dim}")
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return to_tokens(self.proj(check_patches(x, self.patch_size)))


def class_token(dim: int) -> nn.Parameter:
    """timm's `cls_token`: (1, 1, dim), normal with std 1e-6 (timm's init_weights). The spec's
    `class_token` prepends it to every sample's tokens."""
    return nn.Parameter(nn.init.normal_(torch.empty(1, 1, dim), std=1e-6))


def position_embedding(length: int, dim: int) -> nn.Parameter:
    """timm's `pos_embed`: (1, length, dim), truncated normal with std 0.02. The spec's
    `position_embedding` adds it to the tokens."""
    return nn.Parameter(nn.init.trunc_normal_(torch.empty(1, length, dim), std=0.02))


class SelfAttention(nn.Module):
    """Multi-head self-attention on (B, L, D) tokens: `qkv` (D -> 3D), split into q, k, v of
    `num_heads` heads of D / num_heads features, scaled dot-product attention per head, heads joined,
    `proj` (D -> D). `fused`: torch's scaled_dot_product_attention; otherwise the explicit softmax
    (q scaled by head_dim ** -0.5 first). `qk_norm`: a LayerNorm over head_dim on q and on k.
    `attn_drop` drops attention weights, `proj_drop` the output."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, proj_bias: bool = True,
                 qk_norm: bool = False, attn_drop: float = 0.0, proj_drop: float = 0.0, fused: bool = True) -> None:
        super().__init__()
        if num_heads <= 0 or dim % num_heads:
            raise ValueError(f"SelfAttention: num_heads={num_heads} must be > 0 and divide dim={dim}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.fused = fused
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.q_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        y = attend(self.qkv(x), self.num_heads, self.q_norm, self.k_norm, self.attn_drop, self.fused)
        return self.proj_drop(self.proj(y))


class DropPath(nn.Module):
    """Stochastic depth per sample, as timm's DropPath (timm/layers/drop.py) and torchvision's
    StochasticDepth(p, "row") compute it: in training, each sample of the batch is kept with
    probability 1 - p and then (scale_by_keep, both projects' default) divided by 1 - p; the
    identity in eval and at p = 0 (the input itself is returned). The draw is theirs, so results are
    bit-identical under one seed: a (B, 1, ..., 1) tensor of the input's dtype filled by
    `bernoulli_(1 - p)` from torch's default generator, divided in place by 1 - p when 1 - p > 0.

    `step`, `steps` (both or neither): block `step` of `steps` gets a share of p by `schedule`:
    "linspace", timm's decay rule `torch.linspace(0, p, steps)[step]` as a Python float (float32
    values: double arithmetic p * step / (steps - 1) differs from them in the last bits, and so
    would the scale 1 / (1 - p)), or "fraction", torchvision's EfficientNet rule p * step / steps
    in double.

    An fx leaf (specc.runtime.fx_graph): the traced graph calls it, so its `training` flag is read
    when it runs, not when it is traced."""

    def __init__(self, p: float, scale_by_keep: bool = True, step: int | None = None, steps: int | None = None,
                 schedule: str = "linspace") -> None:
        super().__init__()
        if (step is None) != (steps is None):
            raise ValueError("DropPath takes step and steps together (a per-block rate) or neither")
        if schedule not in ("linspace", "fraction"):
            raise ValueError(f"DropPath schedule must be 'linspace' or 'fraction', got {schedule!r}")
        if step is not None and steps is not None:
            if not 0 <= step < steps:
                raise ValueError(f"DropPath needs 0 <= step < steps, got step={step}, steps={steps}")
            p = torch.linspace(0, p, steps)[step].item() if schedule == "linspace" else p * float(step) / steps
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"DropPath probability must be in [0, 1], got {p}")
        self.p = p
        self.scale_by_keep = scale_by_keep

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        noise = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        if keep > 0.0 and self.scale_by_keep:
            noise.div_(keep)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}, scale_by_keep={self.scale_by_keep}"


class LayerScale(nn.Module):
    """timm's LayerScale (timm.models.vision_transformer): the input times a learned per-unit
    `gamma` of shape (dim,), initialised to init_values; it multiplies the last axis (the units of
    tokens and features). Not in place (timm's default)."""

    def __init__(self, dim: int, init_values: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma
