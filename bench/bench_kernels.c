/* bench_kernels.c — GFLOP/s of the CPU kernels that dominate the model run
 * time: GEMM 2048^3, a 3x3 conv (320 -> 320 channels, 64x64, the SD UNet's
 * first level), a 1x1 conv of the same size and a 3x3 conv of the VAE
 * decoder's last level (128 -> 128, 512x512; --no-vae skips it). Prints one JSON object per
 * line on stdout: the median and best of several timed repetitions after a
 * warm-up. bench/run.sh adds the machine's peak and writes bench-out/.
 *   bench_kernels [--reps N] [--threads N] [--conv-mode auto|serial|parallel]
 *                 [--scratch-mb N] [--quick (no GEMM)] [--no-vae] */
#include "bench_util.h"
#include "common.h"
#include "conv2d.h"
#include "gemm.h"

#include <cblas.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void fill(float *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
}

typedef void (*bench_fn)(void *ctx);

/* One warm-up, then reps timed runs; prints the JSON line. */
static void bench_run(const char *name, const char *shape, double flops, int reps, bench_fn fn, void *ctx) {
    fn(ctx);
    double *t = xmalloc(sizeof(double) * (size_t)reps);
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        fn(ctx);
        t[r] = now_s() - t0;
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    printf("{\"kernel\":\"%s\",\"shape\":\"%s\",\"blas_core\":\"%s\",\"threads\":%d,\"reps\":%d,\"flops\":%.0f,"
           "\"median_s\":%.6f,\"best_s\":%.6f,\"gflops_median\":%.2f,\"gflops_best\":%.2f}\n",
           name, shape, openblas_get_corename(), threads_get(), reps, flops, med, t[0], flops / med * 1e-9,
           flops / t[0] * 1e-9);
    fflush(stdout);
    free(t);
}

struct gemm_ctx { int n; float *a, *b, *c; };
static void run_gemm(void *p) {
    struct gemm_ctx *g = p;
    gemm_f32(0, 0, g->n, g->n, g->n, 1.0f, g->a, g->n, g->b, g->n, 0.0f, g->c, g->n);
}

struct conv_ctx { conv2d_dims d; float *x, *w, *bias, *y; };
static void run_conv(void *p) {
    struct conv_ctx *c = p;
    conv2d_forward(c->y, c->x, c->w, c->bias, &c->d);
}

static void bench_conv(const char *name, conv2d_dims d, int reps) {
    struct conv_ctx c = {.d = d};
    size_t nx = (size_t)d.batch * d.in_ch * d.in_h * d.in_w;
    size_t nw = (size_t)d.out_ch * d.in_ch * d.k_h * d.k_w;
    int oh = conv2d_out_h(&d), ow = conv2d_out_w(&d);
    size_t ny = (size_t)d.batch * d.out_ch * oh * ow;
    c.x = xmalloc_aligned(nx * 4);
    c.w = xmalloc_aligned(nw * 4);
    c.bias = xmalloc_aligned((size_t)d.out_ch * 4);
    c.y = xmalloc_aligned(ny * 4);
    fill(c.x, nx, 1);
    fill(c.w, nw, 2);
    fill(c.bias, (size_t)d.out_ch, 3);
    char shape[160];
    snprintf(shape, sizeof shape, "%dx%dx%dx%d k%dx%d s%d p%d -> %d", d.batch, d.in_ch, d.in_h, d.in_w, d.k_h,
             d.k_w, d.stride_h, d.pad_h, d.out_ch);
    double flops = 2.0 * (double)ny * d.in_ch * d.k_h * d.k_w;
    bench_run(name, shape, flops, reps, run_conv, &c);
    free(c.x);
    free(c.w);
    free(c.bias);
    free(c.y);
}

int main(int argc, char **argv) {
    prog_init(argv[0]);
    int reps = 7, threads = 0, quick = 0, big = 1, mode = CONV2D_AUTO;
    size_t scratch = 0;
    static struct option opts[] = {{"reps", required_argument, 0, 'r'},   {"threads", required_argument, 0, 't'},
                                   {"conv-mode", required_argument, 0, 'm'}, {"scratch-mb", required_argument, 0, 's'},
                                   {"quick", no_argument, 0, 'k'},        {"no-vae", no_argument, 0, 'v'},
                                   {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'r': reps = (int)parse_long("--reps", optarg, 1, 1000); break;
        case 't': threads = (int)parse_long("--threads", optarg, 1, 4096); break;
        case 's': scratch = (size_t)parse_long("--scratch-mb", optarg, 1, 4096) << 20; break;
        case 'k': quick = 1; break;
        case 'v': big = 0; break;
        case 'm':
            if (!strcmp(optarg, "auto")) mode = CONV2D_AUTO;
            else if (!strcmp(optarg, "serial")) mode = CONV2D_SERIAL_TILES;
            else if (!strcmp(optarg, "parallel")) mode = CONV2D_PARALLEL_TILES;
            else die_usage("--conv-mode: '%s' is not auto, serial or parallel", optarg);
            break;
        default: die_usage("unknown option");
        }
    }
    threads_set(threads);
    conv2d_set_tuning(scratch, mode);

    if (!quick) {
        struct gemm_ctx g = {.n = 2048};
        size_t nn = (size_t)g.n * g.n;
        g.a = xmalloc_aligned(nn * 4);
        g.b = xmalloc_aligned(nn * 4);
        g.c = xmalloc_aligned(nn * 4);
        fill(g.a, nn, 4);
        fill(g.b, nn, 5);
        bench_run("gemm", "2048x2048x2048", 2.0 * g.n * (double)g.n * g.n, reps, run_gemm, &g);
        free(g.a);
        free(g.b);
        free(g.c);
    }
    bench_conv("conv2d_3x3", (conv2d_dims){1, 320, 64, 64, 320, 3, 3, 1, 1, 1, 1}, reps);
    bench_conv("conv2d_1x1", (conv2d_dims){1, 320, 64, 64, 320, 1, 1, 1, 1, 0, 0}, reps);
    if (big) bench_conv("conv2d_3x3_vae", (conv2d_dims){1, 128, 512, 512, 128, 3, 3, 1, 1, 1, 1}, reps < 3 ? reps : 3);
    return 0;
}
