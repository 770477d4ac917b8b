include "lib/vit.cl"  # the layout of timm's vit_base_patch16_224 (ViT-B/16): patch 16, 768 features, 12 blocks of 12 heads
backbone ViT_B16 = ViT(patch_size=16, embed_dim=768, depth=12, num_heads=12)
