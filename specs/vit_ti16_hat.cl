include "vit_ti16.cl"  # ViT-Ti/16 with HAT's unit masks, HAT-CL's placement (README "HAT on vision transformers")
backbone HATMaskViT_Ti16 = ViT_Ti16
mask hat()
