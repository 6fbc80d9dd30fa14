/* gpu_test.h — what the test_gpu_*.c tests share: deterministic random
 * inputs rounded to the storage type FIRST (so GPU and CPU start from the same
 * values and the comparison measures the kernel, not the rounding of inputs),
 * uploads and downloads in any storage type, and the comparison that prints
 * the error it measured as a TAP comment ("# op dtype: err 3.2e-06 (tol 1e-05)").
 * Only for CUDA builds (include after unit.h). */
#ifndef SYNTHCXR_GPU_TEST_H
#define SYNTHCXR_GPU_TEST_H

#include "cuda_ops.h"
#include "device.h"
#include "unit.h"

/* Deterministic values in [-1, 1) (xorshift), so a failure reproduces. */
static uint64_t gt_rng = 0x9e3779b97f4a7c15ull;
static float frand(void) __attribute__((unused));
static float frand(void) {
    gt_rng ^= gt_rng << 13;
    gt_rng ^= gt_rng >> 7;
    gt_rng ^= gt_rng << 17;
    return (float)((gt_rng >> 40) * (1.0 / (1 << 23)) - 1.0);
}

static int have_gpu(void) __attribute__((unused));
static int have_gpu(void) {
    if (cuda_device_count() > 0) return 1;
    const char *r = cuda_unavailable_reason();
    char why[200];
    snprintf(why, sizeof why, "%s%s", strncmp(r, "no GPU", 6) ? "no GPU: " : "", r);
    unit_skip(why);
    return 0;
}

static const dtype_t gt_dtypes[3] = {DTYPE_F32, DTYPE_F16, DTYPE_BF16};

/* The tolerance on max|gpu - cpu| / max|cpu| for a kernel that rounds its
 * result once to the storage type: f32 as given (1e-5 for element-wise and
 * norms, 1e-4 where the summation order differs: GEMM, conv, attention); f16
 * 2e-3 and bf16 1.6e-2, about 4 half-ulps of the output's scale. */
static double gt_tol(dtype_t dt, double f32_tol) __attribute__((unused));
static double gt_tol(dtype_t dt, double f32_tol) {
    return dt == DTYPE_F32 ? f32_tol : dt == DTYPE_F16 ? 2e-3 : 1.6e-2;
}

/* x rounded in place to the storage type's values (identity for f32). */
static void round_to(float *x, size_t n, dtype_t dt) __attribute__((unused));
static void round_to(float *x, size_t n, dtype_t dt) {
    if (dt == DTYPE_F32 || !n) return;
    void *tmp = xmalloc(n * dtype_size(dt));
    convert_from_f32(tmp, x, dt, n);
    convert_to_f32(x, tmp, dt, n);
    free(tmp);
}

/* n values amp * [-1, 1) + offset, already rounded to dt. */
static float *host_rand(size_t n, float amp, float offset, dtype_t dt) __attribute__((unused));
static float *host_rand(size_t n, float amp, float offset, dtype_t dt) {
    float *x = xmalloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = amp * frand() + offset;
    round_to(x, n, dt);
    return x;
}

/* A device copy of x [n] in storage type dt. */
static void *dev_from(const float *x, size_t n, dtype_t dt) __attribute__((unused));
static void *dev_from(const float *x, size_t n, dtype_t dt) {
    size_t bytes = n * dtype_size(dt);
    void *tmp = xmalloc(bytes ? bytes : 1);
    convert_from_f32(tmp, x, dt, n);
    void *d = cuda_malloc(bytes);
    CUDA_CHECK(cudaMemcpy(d, tmp, bytes, cudaMemcpyHostToDevice));
    free(tmp);
    return d;
}

/* A new host float copy of device data d [n] of storage type dt (synchronous,
 * so a kernel's run-time error shows here at the latest). */
static float *host_from(const void *d, size_t n, dtype_t dt) __attribute__((unused));
static float *host_from(const void *d, size_t n, dtype_t dt) {
    size_t bytes = n * dtype_size(dt);
    void *tmp = xmalloc(bytes ? bytes : 1);
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(tmp, d, bytes, cudaMemcpyDeviceToHost));
    float *x = xmalloc((n ? n : 1) * sizeof *x);
    convert_to_f32(x, tmp, dt, n);
    free(tmp);
    return x;
}

/* The comparison: first every value finite, then err = max|got - want| /
 * max|want| (want all zero: the absolute error) against tol; prints
 * "# what dtype: err E (tol T)" whatever the outcome. Returns 1 on a pass. */
static int gt_compare(const char *what, dtype_t dt, const float *got, const float *want, size_t n, double tol)
    __attribute__((unused));
static int gt_compare(const char *what, dtype_t dt, const float *got, const float *want, size_t n, double tol) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(got[i])) {
            printf("# %s %s: element %zu is %g (not finite)\n", what, dtype_name(dt), i, (double)got[i]);
            unit_fail("%s %s: element %zu of %zu is not finite (want %g)", what, dtype_name(dt), i, n,
                      (double)want[i]);
            return 0;
        }
    double scale = 0, maxerr = 0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double a = fabs((double)want[i]), e = fabs((double)got[i] - (double)want[i]);
        if (a > scale) scale = a;
        if (e > maxerr) maxerr = e, worst = i;
    }
    double err = maxerr / (scale > 0 ? scale : 1.0);
    printf("# %s %s: err %.2e (tol %.1e)\n", what, dtype_name(dt), err, tol);
    if (!(err <= tol)) {
        unit_fail("%s %s: normalised error %.3g exceeds %.1g (element %zu: got %.8g, want %.8g, scale %.4g)", what,
                  dtype_name(dt), err, tol, worst, (double)got[worst], (double)want[worst], scale);
        return 0;
    }
    return 1;
}

#endif
