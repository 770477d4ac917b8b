include "vit_ti16.cl"  # beyond CLArena: WSN on a vision transformer, every linear scored (patch embedding, qkv, proj, fc1, fc2)
backbone WSNMaskViT_Ti16 = ViT_Ti16
mask wsn()
