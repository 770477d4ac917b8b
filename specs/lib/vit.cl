# timm's VisionTransformer (timm.models.vision_transformer, timm 1.0.15) as a backbone: num_classes=0,
# class_token=True, pre-norm blocks, LayerNorm eps 1e-6, GELU MLP. The feature is the class token after
# the final norm (global_pool "token") or the mean of the patch tokens after fc_norm ("avg"), embed_dim
# features; `output_dim` is recorded as CLArena's backbones do. State dict keys and their order are
# timm's (cls_token, pos_embed, patch_embed.proj, blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1,
# mlp.fc2}, norm / fc_norm; with init_values, blocks.N.ls1.gamma after attn and ls2.gamma after mlp), so a
# timm state dict loads with strict=True. Stochastic depth: block i drops its two residual branches with
# timm's rate torch.linspace(0, drop_path_rate, depth)[i] (drop_path's step/steps: float32 values, as
# timm's), a DropPath only where timm makes one (that rate > 0; drop_path_rate 0: none). Layer scale:
# timm's LayerScale where init_values is given and not 0 (timm tests `if init_values`). Not written:
# register tokens, a float mlp_ratio (the hidden width is mlp_ratio * embed_dim).

block vit_mlp(hidden: int) {
    fc1: linear(hidden) -> act: GELU() -> drop1: dropout(proj_drop_rate)
    fc2: linear(in.features) -> drop2: dropout(proj_drop_rate)
}

# block i of depth: timm's drop-path rate is linspace(0, drop_path_rate, depth)[i], > 0 exactly when
# drop_path_rate > 0 and i > 0
block vit_block(i: int) {
    (+ norm1: layernorm(eps=1e-6)
        -> attn: attention(num_heads, qkv_bias=qkv_bias, qk_norm=qk_norm, attn_drop=attn_drop_rate,
                           proj_drop=proj_drop_rate, fused=fused_attn)
        -> (ls1: layer_scale(init_values) if init_values != none and init_values != 0.0)
        -> (drop_path1: drop_path(drop_path_rate, step=i, steps=depth) if drop_path_rate > 0.0 and i > 0))
    (+ norm2: layernorm(eps=1e-6) -> mlp: vit_mlp(mlp_ratio * in.features)
        -> (ls2: layer_scale(init_values) if init_values != none and init_values != 0.0)
        -> (drop_path2: drop_path(drop_path_rate, step=i, steps=depth) if drop_path_rate > 0.0 and i > 0))
}

network ViT(
    output_dim: int, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768,
    depth: int = 12, num_heads: int = 12, mlp_ratio: int = 4, qkv_bias: bool = true, qk_norm: bool = false,
    global_pool: str = "token",  # "token": the class token; "avg": the mean of the patch tokens
    drop_rate: float = 0.0, proj_drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,  # stochastic depth: block i's rate is linspace(0, drop_path_rate, depth)[i]
    init_values: float? = none,  # layer scale's initial gamma (none: no layer scale)
    fused_attn: bool = true,  # torch's scaled_dot_product_attention, as timm uses it; false: softmax(q k^T) v
    pretrained_weights: str? = none,  # the path of a timm-layout state dict saved with torch.save
) {
    input image(in_chans, img_size, img_size)
    patch_embed: patch_embed(embed_dim, patch_size)
        -> cls_token: class_token() -> pos_embed: position_embedding() -> pos_drop: dropout(drop_rate)
    for i in range(depth) {
        blocks[i]: vit_block(i)
    }
    (norm: layernorm(eps=1e-6) -> select_token()) if global_pool == "token"
    (mean_tokens(1) -> fc_norm: layernorm(eps=1e-6)) if global_pool == "avg"
    # timm's keys are the spec's: nothing renamed (a classifier `head`, if any, is dropped)
    pretrained pretrained_weights from "file" { "head" -> none }
}
