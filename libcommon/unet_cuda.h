/* unet_cuda.h — the UNet forward on a CUDA GPU: the twin of unet.c's
 * unet_forward (the same loaded model, the same weights, the same blocks in
 * the same order, on the cuda_ops.h kernels) in f32, f16 or bf16 storage with
 * float math. Weights are converted to the storage type and uploaded once
 * (unet_cuda_new); every activation of a pass comes from one device arena
 * whose exact size a planning pass computes by walking the network without
 * running it (unet_cuda_arena_bytes: plain CPU arithmetic, in every build, so
 * it is tested without a GPU). A pass uploads its inputs (the sinusoidal
 * timestep features are computed on the host), runs every layer on the
 * device, and downloads the output: no host round trip inside it.
 * The planning functions exist in every build; the others die in a build
 * without CUDA. */
#ifndef SYNTHCXR_UNET_CUDA_H
#define SYNTHCXR_UNET_CUDA_H

#include "device.h"
#include "tensor.h"
#include "unet.h"

#include <stddef.h>

/* Device bytes of the converted weights. */
size_t unet_cuda_weight_bytes(const unet_model *m, dtype_t dt);
/* Exact bytes of the arena one pass of B samples of H x W latents with T text
 * tokens needs in storage type dt: inputs, output, every activation at its
 * peak, and the convolutions' im2col workspace (one image of the largest). */
size_t unet_cuda_arena_bytes(const unet_model *m, dtype_t dt, int B, int H, int W, int T);
/* The largest r in 1..UNET_CUDA_MAX_BATCH whose arena for a UNet batch of
 * r * per_record samples fits in avail bytes; 0 when not even r = 1 does.
 * Also bounded by what the kernels index: B * H * W under 2^30 and B times
 * the group count at most 65535 (a larger pass dies naming its size). */
#define UNET_CUDA_MAX_BATCH 4096
int unet_cuda_max_batch(const unet_model *m, dtype_t dt, int per_record, int H, int W, int T, size_t avail);
/* Device memory left out of what the arena may take: cuBLAS's workspace and
 * the small buffers some ops grow on their first call (group norm partials). */
#define UNET_CUDA_RESERVE ((size_t)256 << 20)

typedef struct unet_cuda unet_cuda;

/* Uploads m's weights converted to dt (f32, f16 or bf16) on the current
 * device. m must outlive the result (its layout is walked at every pass). */
unet_cuda *unet_cuda_new(const unet_model *m, dtype_t dt);
void unet_cuda_free(unet_cuda *g);   /* NULL is fine */
dtype_t unet_cuda_dtype(const unet_cuda *g);

/* Why a reservation failed: bytes needed, and the bytes the arena may take
 * (free device memory minus UNET_CUDA_RESERVE), free and total on the device. */
typedef cuda_oom unet_cuda_oom;   /* device.h */
/* Allocates the arena for passes of up to B samples at H x W with T tokens
 * (a larger one already there is kept). Returns 1, or 0 with *oom filled when
 * the device has too little free memory (nothing allocated, nothing printed). */
int unet_cuda_reserve(unet_cuda *g, int B, int H, int W, int T, unet_cuda_oom *oom);

/* unet_forward's contract on host float32 buffers: out [B, out_channels, H, W];
 * sample [B, in_channels, H, W]; timesteps [B]; enc [B, T, cross_attention_dim].
 * Grows the arena (unet_cuda_reserve) when the pass needs more, dying with
 * the sizes when the device cannot hold it. Synchronous. */
void unet_cuda_forward(unet_cuda *g, float *out, const float *sample, const float *timesteps, const float *enc,
                       int B, int H, int W, int T);

/* CUDA graphs: with them on, the first pass of a size (B, H, W, T) runs as
 * usual (the warm-up, which also grows every lazily allocated buffer: group
 * norm partials, attention scratch) and is then captured, launches not run,
 * into a CUDA graph; later passes of that size upload their inputs into the
 * same arena addresses and replay the graph, one launch instead of some
 * hundreds, with the same kernels on the same pointers, so the output is the
 * plain pass's bit for bit. A pass of another size, a regrown arena or any
 * device buffer freed since (cuda_free_count) drops the graph and captures
 * anew. Off by default; on when the environment variable SYNTHCXR_CUDA_GRAPHS
 * is 1 at unet_cuda_new, or by unet_cuda_set_graphs. */
void unet_cuda_set_graphs(unet_cuda *g, int on);
int unet_cuda_graphs(const unet_cuda *g);
/* Captures and replays so far (tests and benchmarks). */
void unet_cuda_graph_counts(const unet_cuda *g, long *captures, long *replays);

#endif
