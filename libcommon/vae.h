/* vae.h — the decoder half of diffusers' AutoencoderKL (Stable Diffusion's
 * VAE) on the CPU in float32: latents -> images, equal to
 *   vae.decode(latents).sample
 * of diffusers 0.42 for the configurations SD 1.x and SD 2.x use. Layers, in
 * diffusers' order and with its state-dict names:
 *   post_quant_conv (1x1, when use_post_quant_conv), decoder.conv_in (3x3),
 *   mid_block: resnet, single-head self-attention (GroupNorm, q/k/v, softmax,
 *     out projection, residual), resnet,
 *   up_blocks[i]: layers_per_block + 1 resnets, then nearest 2x + 3x3 conv
 *     (all but the last block),
 *   conv_norm_out (GroupNorm) + SiLU + conv_out.
 * Every GroupNorm uses eps 1e-6 and norm_num_groups groups; every resnet is
 * GroupNorm-SiLU-conv3x3-GroupNorm-SiLU-conv3x3 plus the input (through a
 * 1x1 conv_shortcut when the channel count changes); output_scale_factor 1.
 * Weights are one contiguous block; activations live in three ping-pong
 * buffers sized for the largest layer, whatever the depth. */
#ifndef SYNTHCXR_VAE_H
#define SYNTHCXR_VAE_H

#include "diffusers.h"

#include <stddef.h>

#define VAE_MAX_BLOCKS 8

typedef struct vae_config {
    int latent_channels;          /* 4 for SD */
    int out_channels;             /* 3 */
    int n_blocks;                 /* len(block_out_channels) */
    int block_out[VAE_MAX_BLOCKS];/* block_out_channels, encoder order (SD: 128, 256, 512, 512) */
    int layers_per_block;         /* SD: 2 (each up block has one more resnet) */
    int groups;                   /* norm_num_groups */
    int mid_attention;            /* mid_block_add_attention */
    int post_quant_conv;          /* use_post_quant_conv */
    float scaling_factor;         /* 0.18215 for SD 1.x and 2.x; the caller divides by it */
} vae_config;

typedef struct vae_decoder vae_decoder;

/* Reads part->config (vae/config.json) and the decoder.* and post_quant_conv.*
 * tensors of its weights (fp32, fp16 or bf16 files; sharded or not). Old
 * checkpoints that name the attention query/key/value/proj_attn are read too.
 * Dies naming the folder and key for a configuration this decoder does not
 * implement (an up block other than UpDecoderBlock2D, an activation other
 * than SiLU, shift_factor or latents_mean/std, ...), and naming the file and
 * tensor for a missing or mis-shaped weight. */
vae_decoder *vae_load(const diffusers_part *part);
/* Opens a VAE by folder: a pipeline folder (model_index.json, its vae/ part),
 * a folder holding vae/config.json without model_index.json, or a lone VAE
 * folder (config.json + weights). */
vae_decoder *vae_load_dir(const char *dir);
void vae_free(vae_decoder *v);                  /* NULL is fine */
const vae_config *vae_get_config(const vae_decoder *v);
/* The folder the weights came from, for messages. */
const char *vae_source(const vae_decoder *v);

/* Image side for a latent side: h * 2^(n_blocks - 1) (8 for SD). */
int vae_upscale(const vae_decoder *v);

/* out: [batch, out_channels, h*s, w*s] (s = vae_upscale), about [-1, 1], as
 * diffusers returns it;  latents: [batch, latent_channels, h, w], already
 * divided by scaling_factor (as the pipelines do before vae.decode).
 * Scratch: 3 buffers of the largest activation (SD at 512^2: 256 x 512 x 512
 * floats each, per latent in the batch) plus the attention's q, k, v. */
void vae_decode(const vae_decoder *v, float *out, const float *latents, int batch, int h, int w);

/* diffusers' AutoencoderKL.tiled_decode (vae.enable_tiling()) with
 * tile_sample_min_size = tile_px: when the image is larger than tile_px on a
 * side, the latents are cut into tiles of tile_px / vae_upscale latents,
 * overlapping by a quarter, each decoded alone (post_quant_conv included);
 * the decoded tiles are blended linearly over tile_px / 4 pixels into the
 * tiles below and to the right, then cropped to 3/4 tile_px and joined.
 * Memory is that of one tile whatever the image size, plus the tiles of one
 * image (about 1.8 x the image). Smaller images, and tile_px 0, decode whole
 * (vae_decode). tile_px: a multiple of vae_upscale, at least 4 latents.
 * Shapes as vae_decode. */
void vae_decode_tiled(const vae_decoder *v, float *out, const float *latents, int batch, int h, int w, int tile_px);

/* Bytes vae_decode allocates for these dimensions (for --batch planning and tests). */
size_t vae_decode_scratch_bytes(const vae_decoder *v, int batch, int h, int w);

#endif
