/* cuda_walk.h — what the GPU model walks share (unet_cuda.c, vae_cuda.c,
 * clip_text_cuda.c; internal to them and to the tests that include them).
 * A walk goes through a model's layers with a gwalk context. With plan set
 * it runs nothing and only counts the arena its buffers take (bump
 * allocation with marks; addresses made up from GWALK_PLAN_BASE that nothing
 * dereferences) and the largest conv workspace asked for; without, it hands
 * out the same offsets in a real arena and runs each op, so the plan is the
 * pass's exact size. A model's context embeds a gwalk as its member `w`, and
 * OP(c, call) runs call in a pass, not while planning.
 * The includer defines CUDA_WALK_RUNS when ops can run (a CUDA build, or a
 * test that binds the cuda_ops.h names and the few CUDA runtime calls to CPU
 * stand-ins, tests/unit/cuda_walk_emu.h) and makes those names visible
 * first; the device helpers at the end exist only then. Without it (a build
 * without CUDA) a walk can only plan. */
#ifndef SYNTHCXR_CUDA_WALK_H
#define SYNTHCXR_CUDA_WALK_H

#include "common.h"
#include "device.h"
#include "tensor.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define GWALK_ALIGN ((size_t)256)           /* every arena block starts 256-byte aligned, as cudaMalloc's */
#define GWALK_PLAN_BASE ((uintptr_t)1 << 20) /* where planned addresses start (never dereferenced) */

typedef struct gwalk {
    const char *what;          /* the walk's name, for messages ("unet_cuda") */
    dtype_t dt;                /* storage type of weights and activations */
    size_t esz;                /* its bytes per element */
    int plan;                  /* 1: count only, run nothing */
    uintptr_t base;            /* bump region: [base, base + cap) */
    size_t cap, off, peak;
    uintptr_t ws;              /* conv workspace: [ws, ws + ws_cap) */
    size_t ws_cap, ws_need;    /* ws_need: the largest a conv of the walk asks for */
    const float *wbase, *wend; /* the host weights uploaded, [wbase, wend) */
    uintptr_t wdev;            /* their device copy, same layout (0 when planning) */
} gwalk;

static inline size_t gwalk_align(size_t n) { return (n + GWALK_ALIGN - 1) & ~(GWALK_ALIGN - 1); }

/* A planning walk in storage type dt. */
static inline gwalk gwalk_planner(const char *what, dtype_t dt) {
    return (gwalk){.what = what, .dt = dt, .esz = dtype_size(dt), .plan = 1, .base = GWALK_PLAN_BASE,
                   .ws = GWALK_PLAN_BASE};
}

/* A running walk: the arena's first ws bytes are the conv workspace, the
 * rest the bump region; weights [wbase, wend) live at wdev on the device. */
static inline gwalk gwalk_runner(const char *what, dtype_t dt, void *arena, size_t arena_cap, size_t ws,
                                 const void *wdev, const float *wbase, const float *wend) {
    return (gwalk){.what = what, .dt = dt, .esz = dtype_size(dt), .plan = 0, .base = (uintptr_t)arena + ws,
                   .cap = arena_cap - ws, .ws = (uintptr_t)arena, .ws_cap = ws, .wbase = wbase, .wend = wend,
                   .wdev = (uintptr_t)wdev};
}

/* n elements of the storage type */
static inline void *gwalk_alloc(gwalk *w, size_t n) {
    size_t bytes = gwalk_align(n * w->esz);
    if (!w->plan)
        CHECKF(w->off + bytes <= w->cap, "%s: arena of %zu bytes overrun (the plan and the pass differ)", w->what,
               w->cap);
    void *p = (void *)(w->base + w->off);
    w->off += bytes;
    if (w->off > w->peak) w->peak = w->off;
    return p;
}
static inline size_t gwalk_save(const gwalk *w) { return w->off; }
static inline void gwalk_restore(gwalk *w, size_t mark) { w->off = mark; }

/* The device copy of a weight (NULL stays NULL; NULL while planning). */
static inline const void *gwalk_weight(const gwalk *w, const float *host) {
    if (w->plan || !host) return NULL;
    CHECKF(host >= w->wbase && host < w->wend, "%s: a weight outside the uploaded block", w->what);
    return (const void *)(w->wdev + (size_t)(host - w->wbase) * w->esz);
}

#ifdef CUDA_WALK_RUNS
#define OP(c, call)                 \
    do {                            \
        if (!(c)->w.plan) { call; } \
    } while (0)
#else
#define OP(c, call) CHECK((c)->w.plan)
/* the walk's buffers and weights feed only the ops compiled out here */
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#endif

#ifdef CUDA_WALK_RUNS

/* Makes *arena (of *cap bytes) hold need bytes: kept when it does, else
 * freed and allocated anew when the device has need bytes free beyond
 * reserve. Returns 1, or 0 with *oom filled (nothing allocated, nothing
 * printed). */
static inline int gwalk_arena_reserve(void **arena, size_t *cap, size_t need, size_t reserve, cuda_oom *oom) {
    if (need <= *cap) return 1;
    cuda_free(*arena);   /* waits for passes still using it */
    *arena = NULL, *cap = 0;
    size_t fr = 0, total = 0;
    CUDA_CHECK(cudaMemGetInfo(&fr, &total));
    size_t avail = fr > reserve ? fr - reserve : 0;
    void *p = NULL;
    cudaError_t e = need <= avail ? cudaMalloc(&p, need) : cudaErrorMemoryAllocation;
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();   /* clear it: the process may go on */
        if (oom) *oom = (cuda_oom){need, avail, fr, total};
        return 0;
    }
    CUDA_CHECK(e);
    *arena = p, *cap = need;
    return 1;
}

/* A host buffer for the float <-> storage type conversions of uploads and
 * downloads, grown on demand. */
typedef struct gwalk_stage { void *p; size_t cap; } gwalk_stage;

static inline void *gwalk_stage_get(gwalk_stage *s, size_t bytes) {
    if (bytes > s->cap) {
        free(s->p);
        s->p = xmalloc(bytes);
        s->cap = bytes;
    }
    return s->p;
}

/* dst (device, storage type dt) = src [n] (host float) */
static inline void gwalk_upload(gwalk_stage *s, void *dst, const float *src, size_t n, dtype_t dt) {
    size_t bytes = n * dtype_size(dt);
    const void *h = src;
    if (dt != DTYPE_F32) {
        void *b = gwalk_stage_get(s, bytes);
        convert_from_f32(b, src, dt, n);
        h = b;
    }
    CUDA_CHECK(cudaMemcpy((void *)dst, h, bytes, cudaMemcpyHostToDevice));
}

/* dst [n] (host float) = src (device, storage type dt); waits for the work before it */
static inline void gwalk_download(gwalk_stage *s, float *dst, const void *src, size_t n, dtype_t dt) {
    size_t bytes = n * dtype_size(dt);
    void *h = dt == DTYPE_F32 ? (void *)dst : gwalk_stage_get(s, bytes);
    CUDA_CHECK(cudaMemcpy(h, src, bytes, cudaMemcpyDeviceToHost));
    if (dt != DTYPE_F32) convert_to_f32(dst, h, dt, n);
}

/* The device copy of n host floats converted to dt, allocated here (once per
 * model: a converted copy lives on the host only for the upload). */
static inline void *gwalk_upload_weights(const float *src, size_t n, dtype_t dt) {
    (void)cublas_handle();   /* its workspace before the arena's free-memory count */
    void *d = cuda_malloc(n * dtype_size(dt));
    gwalk_stage s = {0};
    gwalk_upload(&s, d, src, n, dt);
    free(s.p);
    return d;
}

#endif /* CUDA_WALK_RUNS */
#endif
