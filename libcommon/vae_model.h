/* vae_model.h — the layout of a loaded VAE decoder (internal to vae.c and its
 * GPU twin vae_cuda.c, which walks the same layers with the same weights):
 * the resnets, the mid-block attention, the up blocks' upsampler convs, and
 * the one block of float32 weights every pointer below points into. */
#ifndef SYNTHCXR_VAE_MODEL_H
#define SYNTHCXR_VAE_MODEL_H

#include "vae.h"

#include <jansson.h>

#define VAE_EPS 1e-6f   /* diffusers' Decoder passes resnet_eps=1e-6 to every GroupNorm */

typedef struct vae_resnet {
    int cin, cout;
    float *norm1_w, *norm1_b;     /* [cin] */
    float *conv1_w, *conv1_b;     /* [cout, cin, 3, 3], [cout] */
    float *norm2_w, *norm2_b;     /* [cout] */
    float *conv2_w, *conv2_b;     /* [cout, cout, 3, 3], [cout] */
    float *short_w, *short_b;     /* [cout, cin, 1, 1], [cout]; NULL when cin == cout */
} vae_resnet;

typedef struct vae_attn {
    float *norm_w, *norm_b;       /* [c] */
    float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b; /* [c, c], [c] */
} vae_attn;

struct vae_decoder {
    vae_config cfg;
    char *source;                 /* the folder, for messages */
    float *params;                /* every weight, one block (NULL: built from a config alone) */
    size_t n_params;              /* its length in floats (64-byte alignment padding included) */
    float *pq_w, *pq_b;           /* post_quant_conv [lc, lc, 1, 1], [lc]; NULL when unused */
    float *in_w, *in_b;           /* decoder.conv_in [ctop, lc, 3, 3], [ctop] */
    vae_resnet mid_res[2];
    vae_attn mid_attn;
    vae_resnet *up_res;           /* [n_blocks][layers_per_block + 1] */
    float *up_w[VAE_MAX_BLOCKS], *up_b[VAE_MAX_BLOCKS]; /* upsamplers.0.conv [c, c, 3, 3], [c] */
    float *out_norm_w, *out_norm_b; /* conv_norm_out [block_out[0]] */
    float *out_w, *out_b;         /* conv_out [out_ch, block_out[0], 3, 3], [out_ch] */
};

/* Elements per latent of each of vae_decode's three ping-pong buffers for
 * h x w latents: the largest activation of the pass (CPU and GPU walks). */
size_t vae_max_activation(const vae_config *c, int h, int w);

/* The decoder's layers from a config alone, no weights (params NULL, every
 * weight pointer NULL; n_params counted as vae_load lays them out): for
 * planning GPU memory. vae_decode dies on it. where names the config in
 * messages; dies like vae_load on an unsupported config. */
vae_decoder *vae_from_config(const json_t *config, const char *where);

/* vae_decode_tiled with each decode (the whole batch, or one tile at batch 1)
 * done by decode(ctx, out, latents, batch, h, w) instead of vae_decode: the
 * GPU's tiled decoding (vae_cuda_decode_tiled) shares the CPU's tiling and
 * blending this way. */
typedef void (*vae_decode_fn)(void *ctx, float *out, const float *latents, int batch, int h, int w);
void vae_decode_tiled_with(const vae_decoder *v, vae_decode_fn decode, void *ctx, float *out, const float *latents,
                           int batch, int h, int w, int tile_px);

#endif
