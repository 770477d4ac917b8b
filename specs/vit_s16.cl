include "lib/vit.cl"  # the layout of timm's vit_small_patch16_224 (ViT-S/16): patch 16, 384 features, 12 blocks of 6 heads
backbone ViT_S16 = ViT(patch_size=16, embed_dim=384, depth=12, num_heads=6)
