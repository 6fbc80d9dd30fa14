/* unet.h — diffusers' UNet2DConditionModel (the denoiser of Stable Diffusion
 * 1.x / 2.x and RoentGen) on the CPU in float32: loaded from a model folder's
 * unet/config.json + safetensors, forward pass equal to diffusers 0.42's.
 * Supported: the SD family of configs — CrossAttnDownBlock2D / DownBlock2D,
 * UNetMidBlock2DCrossAttn, CrossAttnUpBlock2D / UpBlock2D, positional timestep
 * embedding, proj_in/out as 1x1 conv or Linear, attention_head_dim as a number
 * or per-block list (diffusers' legacy meaning: the head count). Any other
 * config value is refused at load with an error naming the key and value.
 * Layers live in unet_blocks.c, the model in unet.c. */
#ifndef SYNTHCXR_UNET_H
#define SYNTHCXR_UNET_H

#include "diffusers.h"

#include <stddef.h>

typedef struct unet_model unet_model;

/* Config facts the schedulers and the denoise loop need. */
typedef struct unet_info {
    int in_channels, out_channels;
    int sample_size;          /* latent side the model was trained at (0 if absent) */
    int cross_attention_dim;  /* width of the text states it takes */
    int downscale;            /* H and W must be multiples of this (2^(levels-1)) */
    size_t n_params;
} unet_info;

/* From a resolved diffusers part ("unet"): config + weights (one file or
 * shards, f32/f16/bf16 converted to f32). Dies on an unsupported config value
 * ("<config>: unsupported class_embed_type \"timestep\"") or a missing or
 * mis-shaped weight (naming file and tensor). */
unet_model *unet_load(const diffusers_part *part);
/* The same from a folder holding config.json and the weights (a model's unet/). */
unet_model *unet_load_dir(const char *dir);
void unet_free(unet_model *m);                 /* NULL is fine */
const unet_info *unet_get_info(const unet_model *m);

/* One denoiser evaluation, as UNet2DConditionModel(sample, t, enc).sample:
 *   out [B, out_channels, H, W];  sample [B, in_channels, H, W];
 *   timesteps [B] (float, as the pipeline passes t; fractional is fine);
 *   enc [B, T, cross_attention_dim] (the text encoder's hidden states).
 * H and W must be multiples of info.downscale (dies otherwise). Scratch comes
 * from an arena owned by the model, grown on the first call for a size and
 * reused after, so calls for the same (B, H, W, T) allocate nothing.
 * out must not alias the inputs. Not reentrant (one call at a time per model). */
void unet_forward(unet_model *m, float *out, const float *sample, const float *timesteps, const float *enc,
                  int B, int H, int W, int T);

#endif
