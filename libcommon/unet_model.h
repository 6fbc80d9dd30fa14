/* unet_model.h — the layout of a loaded UNet (internal to unet.c and its GPU
 * twin unet_cuda.c, which walks the same blocks with the same weights): the
 * levels of down and up blocks, the mid block, the time embedding, and the
 * one block of float32 weights every pointer below points into. */
#ifndef SYNTHCXR_UNET_MODEL_H
#define SYNTHCXR_UNET_MODEL_H

#include "unet.h"
#include "unet_blocks.h"

#include <jansson.h>

#define UNET_MAX_LEVELS 8

typedef struct unet_level {
    int cross;                 /* CrossAttn*Block2D (else plain Down/UpBlock2D) */
    int n;                     /* resnets (and transformers when cross) */
    int cout;
    resnet_block *res;         /* [n] */
    transformer2d *attn;       /* [n] or NULL */
    int resample;              /* has a downsampler / upsampler */
    float *rs_w, *rs_b;        /* its conv: [cout, cout, 3, 3], [cout] */
} unet_level;

struct unet_model {
    unet_info info;
    int levels, c0, tdim, groups;
    float eps;
    int flip_sin_to_cos, center_input, conv_in_k, conv_out_k;
    float freq_shift;
    int boc[UNET_MAX_LEVELS];
    float *t1_w, *t1_b, *t2_w, *t2_b;      /* time_embedding.linear_1 [tdim, c0], linear_2 [tdim, tdim] */
    float *cin_w, *cin_b;                  /* conv_in [c0, in, k, k] */
    float *nout_w, *nout_b;                /* conv_norm_out [c0] */
    float *cout_w, *cout_b;                /* conv_out [out, c0, k, k] */
    unet_level down[UNET_MAX_LEVELS], up[UNET_MAX_LEVELS];
    resnet_block mid_res[2];
    transformer2d mid_attn;
    float *params;                         /* every weight, one block (NULL: built from a config alone) */
    size_t params_floats;                  /* its length in floats (alignment padding included) */
    unet_arena arena;
};

/* diffusers' get_timestep_embedding (float32): out [B, dim]; t [B]. */
void unet_timestep_embedding(float *out, const float *t, int B, int dim, int flip, float shift);

/* Elements of each of the two ping-pong buffers of a pass of B samples at
 * H x W latents: the widest hidden state at any level (CPU and GPU walks). */
size_t unet_pingpong_elems(const unet_model *m, int B, int H, int W);

/* The model's blocks from a config alone, no weights (params NULL, every
 * weight pointer NULL; n_params counted): for planning memory, as
 * unet_cuda_plan does. unet_forward dies on it. Dies like unet_load on an
 * unsupported config. */
unet_model *unet_from_config(const json_t *config, const char *config_path);

#endif
