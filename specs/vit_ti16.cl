include "lib/vit.cl"  # the layout of timm's vit_tiny_patch16_224 (ViT-Ti/16): patch 16, 192 features, 12 blocks of 3 heads
backbone ViT_Ti16 = ViT(patch_size=16, embed_dim=192, depth=12, num_heads=3)
