/* clip_text_cuda.h — the CLIP text encoder on a CUDA GPU: the twin of
 * clip_text.c's clip_text_forward (the same loaded model, the same weights,
 * the same layers in the same order, on the cuda_ops.h kernels) in f32, f16
 * or bf16 storage with float math. The encoder's weights are converted to the
 * storage type and uploaded once (clip_text_cuda_new); the token and position
 * embeddings stay on the host, where each pass looks its rows up (as the CPU
 * does) and uploads the summed input. Every activation of a pass comes from
 * one device arena whose exact size a planning pass computes by walking the
 * layers without running them (clip_text_cuda_arena_bytes: plain CPU
 * arithmetic on the config, in every build, so it is tested without a GPU).
 * A pass uploads its input, runs every layer and the final layer norm on the
 * device and downloads the states: no host round trip inside it.
 * The planning functions exist in every build; the others die in a build
 * without CUDA. */
#ifndef SYNTHCXR_CLIP_TEXT_CUDA_H
#define SYNTHCXR_CLIP_TEXT_CUDA_H

#include "clip_text.h"
#include "device.h"
#include "tensor.h"

#include <stddef.h>
#include <stdint.h>

/* Device bytes of the converted weights: the layers and the final norm (the
 * embedding tables stay on the host). */
size_t clip_text_cuda_weight_bytes(const clip_text_config *c, dtype_t dt);
/* Exact bytes of the arena one pass of B prompts of T tokens needs in storage
 * type dt: the residual stream (input and output), every activation at its
 * peak. The same for every clip skip. */
size_t clip_text_cuda_arena_bytes(const clip_text_config *c, dtype_t dt, int B, int T);
/* The largest B in 1..CLIP_TEXT_CUDA_MAX_BATCH whose arena for B prompts of T
 * tokens fits in avail bytes; 0 when not even 1 does. */
#define CLIP_TEXT_CUDA_MAX_BATCH 4096
int clip_text_cuda_max_batch(const clip_text_config *c, dtype_t dt, int T, size_t avail);
/* Device memory left out of what the arena may take: cuBLAS's workspace. */
#define CLIP_TEXT_CUDA_RESERVE ((size_t)256 << 20)

typedef struct clip_text_cuda clip_text_cuda;

/* Uploads m's encoder weights converted to dt (f32, f16 or bf16) on the
 * current device. m must outlive the result (its embeddings are read and its
 * layout walked at every pass). */
clip_text_cuda *clip_text_cuda_new(const clip_text_model *m, dtype_t dt);
void clip_text_cuda_free(clip_text_cuda *g);   /* NULL is fine */
dtype_t clip_text_cuda_dtype(const clip_text_cuda *g);

/* Why a reservation failed: bytes needed, and the bytes the arena may take
 * (free device memory minus CLIP_TEXT_CUDA_RESERVE), free and total. */
typedef cuda_oom clip_text_cuda_oom;   /* device.h */
/* Allocates the arena for passes of up to B prompts of T tokens (a larger one
 * already there is kept). Returns 1, or 0 with *oom filled when the device has
 * too little free memory (nothing allocated, nothing printed). */
int clip_text_cuda_reserve(clip_text_cuda *g, int B, int T, clip_text_cuda_oom *oom);

/* clip_text_forward's contract (the same checks, the same messages, the same
 * states): out [batch, seq, D] host float32; ids [batch, seq]. Grows the arena
 * (clip_text_cuda_reserve) when the pass needs more, dying with the sizes when
 * the device cannot hold it. Synchronous. */
void clip_text_cuda_forward(clip_text_cuda *g, float *out, const int32_t *ids, int batch, int seq, int clip_skip);

#endif
