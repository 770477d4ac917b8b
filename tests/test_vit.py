"""The vision transformer spec (specs/lib/vit.cl, backbones specs/vit_{ti16,s16,b16}.cl) against timm
1.0.15's VisionTransformer with the same weights: state_dict keys and order equal, forward equal
(torch.equal) in eval and in train mode (dropout 0; stochastic depth and layer scale in train mode
under one seed), gradients equal, for the class-token and the average-pooled feature, several image
and patch sizes, the fused and the explicit attention.
timm is the independent reference (installed with --no-deps by scripts/venv.sh; without it these
tests skip); it is imported under the torchvision stub of tests/clarena_client/stub.py, reused by
tests/timm_reference.py (torchvision does not import against the CPU torch here)."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch
from peer_checks import assert_drop_paths_draw
from timm_reference import vision_transformer

from conftest import REPO

import specc

vt = vision_transformer()
needs_timm = pytest.mark.skipif(vt is None, reason="timm is not installed (scripts/venv.sh installs it)")
VIT = REPO / "specs" / "lib" / "vit.cl"


def _timm(**kw):
    return vt.VisionTransformer(num_classes=0, class_token=True, **kw)


def _randomize(model) -> None:
    """Weights away from their initialisation (LayerNorm's ones and zeros hide a swapped affine)."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def _equal(ours, theirs, x) -> None:
    assert list(ours.state_dict()) == list(theirs.state_dict())
    _randomize(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    for train in (False, True):
        ours.train(train), theirs.train(train)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        torch.manual_seed(9)  # stochastic depth and dropout draw the same under one seed
        ya, _ = ours(xa)
        torch.manual_seed(9)
        yb = theirs(xb)
        assert torch.equal(ya, yb), train
        g = torch.randn(ya.shape, generator=torch.Generator().manual_seed(4))
        ya.backward(g), yb.backward(g)
        assert torch.equal(xa.grad, xb.grad)
        for (na, pa), (nb, pb) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
            assert na == nb and torch.equal(pa.grad, pb.grad), (train, na)
        ours.zero_grad(), theirs.zero_grad()


@needs_timm
@pytest.mark.parametrize("img, patch, pool, fused", [(32, 16, "token", True), (32, 8, "token", False),
                                                     (24, 8, "avg", True)])
def test_vit_spec_equals_timm(img, patch, pool, fused):
    torch.manual_seed(0)
    theirs = _timm(img_size=img, patch_size=patch, embed_dim=48, depth=2, num_heads=3, global_pool=pool)
    for block in theirs.blocks:
        block.attn.fused_attn = fused
    ours = specc.build(VIT, output_dim=48, img_size=img, patch_size=patch, embed_dim=48, depth=2, num_heads=3,
                       global_pool=pool, fused_attn=fused)
    _equal(ours, theirs, torch.randn(3, 3, img, img, generator=torch.Generator().manual_seed(1)))


@needs_timm
@pytest.mark.parametrize("rate, init_values, depth", [(0.1, None, 12), (0.5, 1e-5, 3), (0.0, 0.3, 2)])
def test_stochastic_depth_and_layer_scale_equal_timm_in_training(rate, init_values, depth):
    """timm's drop_path_rate (block i: linspace(0, rate, depth)[i], float32) and init_values (ls1/ls2
    gamma): keys, initial gamma, forward and gradients bit-equal in train mode under one seed."""
    torch.manual_seed(0)
    theirs = _timm(img_size=16, patch_size=8, embed_dim=12, depth=depth, num_heads=2, drop_path_rate=rate,
                   init_values=init_values)
    ours = specc.build(VIT, output_dim=12, img_size=16, patch_size=8, embed_dim=12, depth=depth, num_heads=2,
                       drop_path_rate=rate, init_values=init_values)
    assert [getattr(b, "drop_path1", None) and b.drop_path1.p for b in ours.blocks] == [
        getattr(b.drop_path1, "drop_prob", None) for b in theirs.blocks]
    if init_values is not None:
        assert torch.equal(ours.blocks[0].ls2.gamma, theirs.blocks[0].ls2.gamma)
    x = torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    _equal(ours, theirs, x)
    if rate:
        assert_drop_paths_draw(ours, x, 9)


@needs_timm
def test_vit_ti16_backbone_equals_timms_vit_tiny_at_32_pixels():
    torch.manual_seed(0)
    theirs = _timm(img_size=32, patch_size=16, embed_dim=192, depth=12, num_heads=3)
    ours = specc.build(REPO / "specs" / "vit_ti16.cl", output_dim=192, img_size=32)
    _equal(ours, theirs, torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)))


@needs_timm
def test_a_saved_timm_state_dict_loads_strictly_and_through_the_pretrained_declaration(tmp_path):
    """No network: timm's state dict saved to a file loads with load_state_dict(strict=True), and through
    the spec's `pretrained pretrained_weights from "file"` (a classifier head of 10 classes dropped)."""
    theirs = _timm(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3)
    _randomize(theirs)
    path = tmp_path / "vit.pt"
    torch.save(theirs.state_dict(), path)
    ours = specc.build(VIT, output_dim=48, img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3)
    ours.load_state_dict(torch.load(path, weights_only=True), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
    with_head = vt.VisionTransformer(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=10)
    _randomize(with_head)
    torch.save(with_head.state_dict(), path)
    loaded = specc.build(VIT, output_dim=48, img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3,
                         pretrained_weights=str(path))
    expected = {k: v for k, v in with_head.state_dict().items() if not k.startswith("head.")}
    assert list(loaded.state_dict()) == list(expected)
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())


@needs_timm
@pytest.mark.parametrize("spec, embed, heads", [("vit_ti16", 192, 3), ("vit_s16", 384, 6), ("vit_b16", 768, 12)])
def test_backbones_have_timms_keys_and_sizes(spec, embed, heads):
    """timm's vit_{tiny,small,base}_patch16_224 configurations (at 32 pixels, to stay cheap): the same
    keys, in order, with the same shapes."""
    theirs = _timm(img_size=32, patch_size=16, embed_dim=embed, depth=12, num_heads=heads)
    ours = specc.build(REPO / "specs" / f"{spec}.cl", output_dim=embed, img_size=32)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
        [(k, v.shape) for k, v in theirs.state_dict().items()]


@pytest.mark.parametrize("spec, embed", [("vit_ti16", 192), ("vit_b16", 768)])
def test_show_prints_the_token_shapes(spec, embed):
    """197 tokens (196 patches of a 224x224 image and the class token) of embed_dim features."""
    out = subprocess.run([sys.executable, "-m", "specc.cli", "show", f"specs/{spec}.cl", "-D", f"output_dim={embed}"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert re.search(rf"blocks/0/mlp/fc1\s+Linear\s+\(197, {embed}\)\s+\(197, {4 * embed}\)", out), out


def _show(*args):
    return subprocess.run([sys.executable, "-m", "specc.cli", "show", *args], cwd=REPO, capture_output=True, text=True)


def test_misuse_is_a_positioned_error(tmp_path):
    from specc.frontend.errors import SpecError

    out = _show("specs/lib/vit.cl", "-D", "output_dim=4", "-D", "img_size=40")
    assert out.returncode != 0 and "vit.cl:42:18: error: patch_embed cannot cut the image (3, 40, 40) into 16x16" \
        in out.stderr + out.stdout
    out = _show("specs/lib/vit.cl", "-D", "output_dim=4", "-D", "num_heads=5")
    assert "vit.cl:22:18: error: attention needs num_heads > 0 dividing the 768 features" in out.stderr + out.stdout
    with pytest.raises(ValueError, match=r"cannot cut the image \(3, 40, 40\) into 16x16 patches \(at vit.cl:42\)"):
        specc.build(VIT, output_dim=48, img_size=40, embed_dim=48, depth=1, num_heads=3)
    for scheme in ("amnesiac_hat",):  # HAT and WSN mask transformers (tests/test_hat_vit.py, test_wsn_vit.py)
        p = tmp_path / f"{scheme}.cl"
        p.write_text(f'include "{VIT}"\nbackbone V = ViT(img_size=32, embed_dim=48, depth=1, num_heads=3)\n'
                     f"mask {scheme}()\n", encoding="utf-8")
        with pytest.raises(SpecError, match=f"`mask {scheme}\\(\\)` cannot mask 'patch_embed' yet") as e:
            specc.build(p, output_dim=48)
        assert e.value.pos.file.endswith("vit.cl") and e.value.pos.line == 42
