/* vae_cuda.h — the VAE decoder on a CUDA GPU: the twin of vae.c's vae_decode
 * (the same loaded decoder, the same weights, the same layers in the same
 * order, on the cuda_ops.h kernels) in f32, f16 or bf16 storage with float
 * math. Weights are converted to the storage type and uploaded once
 * (vae_cuda_new); every activation of a pass comes from one device arena
 * whose exact size a planning pass computes by walking the decoder without
 * running it (vae_cuda_arena_bytes: plain CPU arithmetic, in every build, so
 * it is tested without a GPU). A pass uploads the latents, runs every layer
 * on the device and downloads the image: no host round trip inside it.
 * The planning functions exist in every build; the others die in a build
 * without CUDA. */
#ifndef SYNTHCXR_VAE_CUDA_H
#define SYNTHCXR_VAE_CUDA_H

#include "device.h"
#include "tensor.h"
#include "vae.h"

#include <stddef.h>

/* Device bytes of the converted weights. */
size_t vae_cuda_weight_bytes(const vae_decoder *v, dtype_t dt);
/* Exact bytes of the arena one pass of `batch` latents of h x w needs in
 * storage type dt: latents, image, vae_decode's three ping-pong buffers, the
 * attention's scratch while it runs, and the convolutions' im2col workspace
 * (one image of the largest conv, at most the workspace cap). */
size_t vae_cuda_arena_bytes(const vae_decoder *v, dtype_t dt, int batch, int h, int w);
/* The largest batch in 1..VAE_CUDA_MAX_BATCH whose arena at h x w fits in
 * avail bytes; 0 when not even 1 does. Also bounded by what the kernels
 * index (batch x groups at most 65535, batch x h x w latents and each image's
 * pixels under 2^31; a larger pass dies naming its size). */
#define VAE_CUDA_MAX_BATCH 4096
int vae_cuda_max_batch(const vae_decoder *v, dtype_t dt, int h, int w, size_t avail);
/* Device memory left out of what the arena may take: cuBLAS's workspace and
 * the buffers some ops grow on their first call (the attention's scores of
 * one query block, 64 MiB; group norm partials). */
#define VAE_CUDA_RESERVE ((size_t)256 << 20)
/* The im2col workspace is one image of the largest 3x3 conv, capped at this
 * many bytes (default VAE_CUDA_WS_MAX; at least one output pixel's column):
 * SD's 256-channel 3x3 convs at 512^2 would take 1.2 GB (f16) uncapped; the
 * cap still leaves runs of 29,000 pixels (f32) or more, GEMMs that fill the
 * GPU. Returns the previous cap; for tests. */
#define VAE_CUDA_WS_MAX ((size_t)256 << 20)
size_t vae_cuda_set_workspace_max(size_t bytes);

/* The largest single pass vae_cuda_decode_tiled(v, batch, h, w, tile_px)
 * makes: the whole batch when the images decode whole, else one tile (batch
 * 1, at most tile_px / vae_upscale latents a side). For reserving its arena. */
void vae_cuda_tiled_pass(const vae_decoder *v, int batch, int h, int w, int tile_px, int *pass_batch, int *pass_h,
                         int *pass_w);

typedef struct vae_cuda vae_cuda;

/* Uploads v's weights converted to dt (f32, f16 or bf16) on the current
 * device. v must outlive the result (its layout is walked at every pass). */
vae_cuda *vae_cuda_new(const vae_decoder *v, dtype_t dt);
void vae_cuda_free(vae_cuda *g);   /* NULL is fine */
dtype_t vae_cuda_dtype(const vae_cuda *g);

/* Why a reservation failed: bytes needed, and the bytes the arena may take
 * (free device memory minus VAE_CUDA_RESERVE), free and total on the device. */
typedef cuda_oom vae_cuda_oom;   /* device.h */
/* Allocates the arena for passes of up to `batch` latents of h x w (a larger
 * one already there is kept). Returns 1, or 0 with *oom filled when the
 * device has too little free memory (nothing allocated, nothing printed). */
int vae_cuda_reserve(vae_cuda *g, int batch, int h, int w, vae_cuda_oom *oom);

/* vae_decode's contract on host float32 buffers: out [batch, out_channels,
 * h*s, w*s] (s = vae_upscale); latents [batch, latent_channels, h, w],
 * already divided by scaling_factor. Grows the arena (vae_cuda_reserve) when
 * the pass needs more, dying with the sizes when the device cannot hold it.
 * Synchronous. */
void vae_cuda_decode(vae_cuda *g, float *out, const float *latents, int batch, int h, int w);
/* vae_decode_tiled's contract (the same tiles, blending and cropping, on the
 * host), each tile decoded by vae_cuda_decode. */
void vae_cuda_decode_tiled(vae_cuda *g, float *out, const float *latents, int batch, int h, int w, int tile_px);

#endif
