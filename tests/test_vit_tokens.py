"""specc.runtime.tokens (patch embedding, class token and position embedding, multi-head self-attention)
against timm 1.0.15's VisionTransformer modules with the same weights: state_dict keys and order
equal, forward equal (torch.equal) in eval and train (dropout 0), gradients equal. timm is the
independent reference (pyproject's `test` extra); it is imported under the torchvision stub of
tests/clarena_client/stub.py, see tests/timm_reference.py."""
from __future__ import annotations

import pytest
import torch
from timm_reference import vision_transformer

from specc.runtime.tokens import PatchEmbed, SelfAttention, class_token, position_embedding

vt = vision_transformer()
pytestmark = pytest.mark.skipif(vt is None, reason="timm is not installed (pyproject's `test` extra)")


def _same(ours, theirs, x, train: bool):
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.train(train), theirs.train(train)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), theirs(xb)
    assert torch.equal(ya, yb)
    g = torch.randn_like(ya)
    ya.backward(g), yb.backward(g)
    assert torch.equal(xa.grad, xb.grad)
    for (na, pa), (nb, pb) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        assert na == nb and torch.equal(pa.grad, pb.grad), na


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("qk_norm", [False, True])
def test_self_attention_equals_timm(train, fused, qk_norm):
    torch.manual_seed(0)
    theirs = vt.Attention(48, num_heads=3, qkv_bias=True, qk_norm=qk_norm)
    theirs.fused_attn = fused
    ours = SelfAttention(48, num_heads=3, qk_norm=qk_norm, fused=fused)
    if qk_norm:  # LayerNorm initialises to ones/zeros: make the copy meaningful
        with torch.no_grad():
            for p in theirs.parameters():
                p.add_(torch.randn_like(p) * 0.1)
    _same(ours, theirs, torch.randn(2, 5, 48), train)


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("img, patch", [(32, 16), (32, 8), (24, 8)])
def test_patch_embedding_equals_timm(img, patch, train):
    torch.manual_seed(1)
    vit = vt.VisionTransformer(img_size=img, patch_size=patch, embed_dim=48, depth=1, num_heads=3,
                               num_classes=0, global_pool="token", class_token=True)
    _same(PatchEmbed(3, 48, patch), vit.patch_embed, torch.randn(2, 3, img, img), train)
    length = (img // patch) ** 2 + 1
    assert class_token(48).shape == vit.cls_token.shape and position_embedding(length, 48).shape == vit.pos_embed.shape


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="divide dim"):
        SelfAttention(48, num_heads=5)
    with pytest.raises(ValueError, match="not divisible"):
        PatchEmbed(3, 8, 16)(torch.zeros(1, 3, 20, 20))
