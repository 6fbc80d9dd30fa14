/* unet_blocks.h — the layers of diffusers' UNet2DConditionModel (internal to
 * unet.c): ResnetBlock2D, Transformer2DModel with its BasicTransformerBlocks,
 * Downsample2D / Upsample2D convolutions, plus the scratch arena they draw
 * from and the weight registry that names every parameter by its diffusers
 * state-dict key. Layouts are PyTorch's (NCHW; [B, HW, C] inside transformers). */
#ifndef SYNTHCXR_UNET_BLOCKS_H
#define SYNTHCXR_UNET_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

/* ---- scratch arena --------------------------------------------------------
 * Bump allocation with marks. When a call needs more than the arena holds a
 * new chunk is added (earlier pointers stay valid); unet_arena_begin then
 * merges the chunks into one of the peak size, so later calls of the same
 * size never allocate. */
typedef struct unet_arena_chunk { float *p; size_t cap, used; } unet_arena_chunk;
typedef struct unet_arena {
    unet_arena_chunk *c;
    int n, cur;
    size_t live, peak;     /* floats handed out and not released; its maximum */
} unet_arena;
typedef struct unet_arena_mark { int cur; size_t used, live; } unet_arena_mark;

void unet_arena_begin(unet_arena *a);                   /* start of a forward: empty, merged */
float *unet_arena_alloc(unet_arena *a, size_t n);       /* n floats, 64-byte aligned */
unet_arena_mark unet_arena_save(const unet_arena *a);
void unet_arena_restore(unet_arena *a, unet_arena_mark m);
void unet_arena_free(unet_arena *a);

/* ---- weight registry ------------------------------------------------------
 * Layers register each parameter (name, expected shape, where its pointer
 * goes); unet.c then loads them all into one block. */
typedef struct unet_param {
    char *name;
    int ndim;
    int64_t shape[4];
    float **dst;
} unet_param;
typedef struct unet_registry { unet_param *p; int n, cap; } unet_registry;

/* Registers "<prefix>.<what>" with the given shape (ndim 1..4). */
void unet_reg(unet_registry *r, float **dst, const char *prefix, const char *what, int ndim, int64_t d0,
              int64_t d1, int64_t d2, int64_t d3);
void unet_registry_free(unet_registry *r);

/* ---- ResnetBlock2D (time_embedding_norm "default", pre-norm, SiLU) -------- */
typedef struct resnet_block {
    int cin, cout, temb_dim, groups;
    float eps, out_scale;                 /* output_scale_factor */
    float *norm1_w, *norm1_b;             /* [cin] */
    float *conv1_w, *conv1_b;             /* [cout, cin, 3, 3], [cout] */
    float *temb_w, *temb_b;               /* time_emb_proj: [cout, temb_dim], [cout] */
    float *norm2_w, *norm2_b;             /* [cout] */
    float *conv2_w, *conv2_b;             /* [cout, cout, 3, 3], [cout] */
    float *short_w, *short_b;             /* conv_shortcut [cout, cin, 1, 1], [cout]; NULL when cin == cout */
} resnet_block;

void resnet_block_register(unet_registry *r, resnet_block *rb, const char *prefix);
/* out [B, cout, H, W]; inp [B, cin, H, W]; temb_act [B, temb_dim] = SiLU(time embedding).
 * out must not alias inp. */
void resnet_block_forward(float *out, const float *inp, const float *temb_act, const resnet_block *rb, int B,
                          int H, int W, unet_arena *a);

/* ---- Transformer2DModel (continuous input) + BasicTransformerBlock --------- */
typedef struct basic_block {
    float *norm1_w, *norm1_b;                      /* LayerNorm [dim] */
    float *q1, *k1, *v1, *o1_w, *o1_b;             /* attn1: to_q/k/v [dim, dim], to_out.0 [dim, dim] + [dim] */
    float *norm2_w, *norm2_b;
    float *q2, *k2, *v2, *o2_w, *o2_b;             /* attn2: to_q [dim, dim], to_k/v [dim, ctx_dim] */
    float *norm3_w, *norm3_b;
    float *ff1_w, *ff1_b;                          /* ff.net.0.proj (GEGLU) [2*ff, dim], [2*ff] */
    float *ff2_w, *ff2_b;                          /* ff.net.2 [dim, ff], [dim] */
} basic_block;

typedef struct transformer2d {
    int ch;                  /* in/out channels */
    int heads, head_dim, inner;                    /* inner = heads * head_dim */
    int ctx_dim, ff, groups, linear_proj, n_layers;
    float *norm_w, *norm_b;                        /* GroupNorm(groups, ch, eps 1e-6) */
    float *pin_w, *pin_b;                          /* proj_in: [inner, ch] (Linear) or [inner, ch, 1, 1] */
    float *pout_w, *pout_b;                        /* proj_out: [ch, inner] or [ch, inner, 1, 1] */
    basic_block *blocks;                           /* [n_layers] */
} transformer2d;

void transformer2d_register(unet_registry *r, transformer2d *tr, const char *prefix);
/* x [B, ch, H, W] updated in place (the block's residual included);
 * enc [B, T, ctx_dim]. */
void transformer2d_forward(float *x, const float *enc, const transformer2d *tr, int B, int H, int W, int T,
                           unet_arena *a);

/* Convolutions of Downsample2D (3x3, stride 2, padding 1) and of Upsample2D
 * (nearest 2x, then 3x3 padding 1), weights [ch, ch, 3, 3] + [ch].
 *   down: out [B, ch, H/2, W/2], inp [B, ch, H, W] (H, W even)
 *   up:   out [B, ch, 2H, 2W],   inp [B, ch, H, W] */
void unet_downsample_forward(float *out, const float *inp, const float *w, const float *b, int B, int ch,
                             int H, int W);
void unet_upsample_forward(float *out, const float *inp, const float *w, const float *b, int B, int ch, int H,
                           int W, unet_arena *a);

/* torch.nn.Conv2d(cin, cout, k, stride, padding (k-1)/2) on [B, cin, H, W]. */
void unet_conv(float *out, const float *inp, const float *w, const float *b, int B, int cin, int cout, int H,
               int W, int k, int stride);

#endif
