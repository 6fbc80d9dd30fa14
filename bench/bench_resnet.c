/* bench_resnet.c — the full-size ResNet-50 image encoder (libcommon/resnet.c):
 *   bench_resnet check DIR
 *       loads DIR/model.safetensors (a torchvision resnet50 state dict), runs
 *       DIR/check.safetensors' input "x" through the eval-mode forward and prints
 *       one JSON line with the max abs error of the features (and of layer3's
 *       output) against torch's "feat" ("layer3"), absolute and relative to
 *       their scale, and ours and torch's relative to the float64 answer;
 *       exits 1 when the features are off torch's by more than 1e-4 of their scale.
 *       With DIR/train.safetensors, also one training-mode step at batch 2:
 *       features, every parameter gradient (the worst tensor's max abs error
 *       over its scale, against torch float32 and float64; the median over
 *       tensors against float64, ours and torch float32's) and the running
 *       statistics after it. At full size in training mode the float32
 *       gradients of both are far from float64 (ReLU and max-pool switches
 *       among millions of activations); the tight gradient check is the tiny
 *       model's, tests/unit/test_resnet.c.
 *   bench_resnet time [BATCH [SIZE [REPS]]]   (8, 224, 3)
 *       training-mode forward + backward (random init, random input and
 *       dfeat) with the gradients zeroed per step, and an eval-mode forward;
 *       one JSON line with the median seconds, images/s, CPU seconds per
 *       train step and per eval forward (all threads), the peak RSS and
 *       the load average (on a shared machine the wall times depend on it).
 * bench/resnet50_check.sh runs both next to torch. */
#include "bench_util.h"
#include "common.h"
#include "resnet.h"
#include "rng.h"
#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void max_err(const float *got, const float *want, size_t n, double *err, double *scale) {
    *err = 0, *scale = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= *err)) *err = e; /* NaN counts as the worst */
        if (fabs(want[i]) > *scale) *scale = fabs(want[i]);
    }
}

static double median(double *v, int n);

static int check(const char *dir) {
    char *mp = xasprintf("%s/model.safetensors", dir), *cp = xasprintf("%s/check.safetensors", dir);
    st_file *mf = st_open(mp), *cf = st_open(cp);
    resnet m;
    resnet_config cfg = resnet50_config();
    resnet_init(&m, &cfg, 0);
    resnet_load(&m, mf, "");
    tensor *x = st_load_f32(cf, "x", 4, (int64_t[]){1, 3, 224, 224});
    tensor *want = st_load_f32(cf, "feat", 2, (int64_t[]){1, 2048});
    resnet_cache c;
    resnet_cache_alloc(&c, &m, 1, 224, 224, 0);
    float *feat = xmalloc(2048 * sizeof(float));
    double t0 = now_s();
    resnet_forward(feat, &m, &c, x->data, 1, 0);
    double dt = now_s() - t0;
    double err, scale, err3, scale3;
    max_err(feat, want->data, 2048, &err, &scale);
    size_t n3 = (size_t)c.layer3_ch * c.layer3_h * c.layer3_w;
    tensor *want3 = st_load_f32(cf, "layer3", 4, (int64_t[]){1, c.layer3_ch, c.layer3_h, c.layer3_w});
    max_err(c.layer3, want3->data, n3, &err3, &scale3);
    /* against the float64 answer, ours and torch's float32 */
    tensor *f64 = st_load_f32(cf, "feat64", 2, (int64_t[]){1, 2048});
    tensor *l64 = st_load_f32(cf, "layer3_64", 4, (int64_t[]){1, c.layer3_ch, c.layer3_h, c.layer3_w});
    double e64, s64, t64, e3_64, s3_64, t3_64, dummy;
    max_err(feat, f64->data, 2048, &e64, &s64);
    max_err(want->data, f64->data, 2048, &t64, &dummy);
    max_err(c.layer3, l64->data, n3, &e3_64, &s3_64);
    max_err(want3->data, l64->data, n3, &t3_64, &dummy);
    printf("{\"bench\":\"resnet50_eval_check\",\"features_max_abs_err\":%.3g,\"features_scale\":%.4g,"
           "\"features_rel_err\":%.3g,\"layer3_max_abs_err\":%.3g,\"layer3_scale\":%.4g,\"layer3_rel_err\":%.3g,"
           "\"features_rel_err_vs_f64\":%.3g,\"torch_features_rel_err_vs_f64\":%.3g,"
           "\"layer3_rel_err_vs_f64\":%.3g,\"torch_layer3_rel_err_vs_f64\":%.3g,\"forward_s\":%.3f}\n",
           err, scale, err / scale, err3, scale3, err3 / scale3, e64 / s64, t64 / s64, e3_64 / s3_64, t3_64 / s3_64,
           dt);
    tensor_free(f64), tensor_free(l64);
    int ok = err <= 1e-4 * scale;
    tensor_free(x), tensor_free(want), tensor_free(want3);
    free(feat);
    resnet_cache_free(&c);

    /* the training step at batch 2, if written */
    char *tp = xasprintf("%s/train.safetensors", dir);
    if (access(tp, R_OK) == 0) {
        st_file *tf = st_open(tp);
        tensor *tx = st_load_f32(tf, "x", 4, (int64_t[]){2, 3, 224, 224});
        tensor *td = st_load_f32(tf, "dfeat", 2, (int64_t[]){2, 2048});
        tensor *tfeat = st_load_f32(tf, "feat", 2, (int64_t[]){2, 2048});
        resnet_cache_alloc(&c, &m, 2, 224, 224, 1);
        float *f2 = xmalloc(2 * 2048 * sizeof(float));
        param_zero_grad(&m.params);
        double t1 = now_s();
        resnet_forward(f2, &m, &c, tx->data, 2, 1);
        resnet_backward(NULL, &m, &c, td->data, tx->data);
        double t2 = now_s();
        double fe, fs;
        max_err(f2, tfeat->data, 4096, &fe, &fs);
        /* per tensor: max abs error / max |torch float32|, ours vs torch and
         * ours / torch float32 vs the float64 gradients; the worst of each */
        double worst = 0, worst64 = 0, torch64 = 0, bworst = 0;
        double *r_ours = xmalloc((size_t)m.params.n * sizeof(double)), *r_torch = xmalloc((size_t)m.params.n * sizeof(double));
        const char *wname = "";
        for (int i = 0; i < m.params.n; i++) {
            const param_entry *e = &m.params.e[i];
            char key[PARAM_NAME_MAX + 8];
            snprintf(key, sizeof key, "grad.%s", e->name);
            tensor *g = st_load_f32(tf, key, -1, NULL);
            snprintf(key, sizeof key, "grad64.%s", e->name);
            tensor *g64 = st_load_f32(tf, key, -1, NULL);
            double ge, gs, e64, s64, t64, dummy;
            max_err(m.params.grad + e->offset, g->data, e->numel, &ge, &gs);
            max_err(m.params.grad + e->offset, g64->data, e->numel, &e64, &s64);
            max_err(g->data, g64->data, e->numel, &t64, &dummy);
            if (ge / gs > worst) worst = ge / gs, wname = e->name;
            if (e64 / s64 > worst64) worst64 = e64 / s64;
            if (t64 / s64 > torch64) torch64 = t64 / s64;
            r_ours[i] = e64 / s64, r_torch[i] = t64 / s64;
            tensor_free(g), tensor_free(g64);
        }
        for (int i = 0; i < m.buffers.n; i++) {
            const param_entry *e = &m.buffers.e[i];
            if (e->is_i64) continue;
            char key[PARAM_NAME_MAX + 8];
            snprintf(key, sizeof key, "after.%s", e->name);
            tensor *b = st_load_f32(tf, key, -1, NULL);
            double be, bs;
            max_err(m.buffers.data + e->offset, b->data, e->numel, &be, &bs);
            if (be / bs > bworst) bworst = be / bs;
            tensor_free(b);
        }
        printf("{\"bench\":\"resnet50_train_check\",\"batch\":2,\"features_rel_err\":%.3g,"
               "\"worst_grad_rel_err\":%.3g,\"worst_grad\":\"%s\",\"worst_grad_rel_err_vs_f64\":%.3g,"
               "\"torch_worst_grad_rel_err_vs_f64\":%.3g,\"median_grad_rel_err_vs_f64\":%.3g,"
               "\"torch_median_grad_rel_err_vs_f64\":%.3g,\"running_stats_rel_err\":%.3g,\"step_s\":%.3f}\n",
               fe / fs, worst, wname, worst64, torch64, median(r_ours, m.params.n), median(r_torch, m.params.n),
               bworst, t2 - t1);
        free(r_ours), free(r_torch);
        tensor_free(tx), tensor_free(td), tensor_free(tfeat);
        free(f2);
        resnet_cache_free(&c);
        st_close(tf);
    }
    free(tp);
    resnet_free(&m);
    st_close(mf), st_close(cf);
    free(mp), free(cp);
    return ok ? 0 : 1;
}

/* user + system CPU seconds of the process so far (all threads) */
static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * ru.ru_stime.tv_usec;
}

/* the 1-minute load average: timings on a shared machine mean little without it */
static double loadavg(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static int timing(int batch, int size, int reps) {
    resnet m;
    resnet_config cfg = resnet50_config();
    resnet_init(&m, &cfg, 0);
    resnet_cache c;
    resnet_cache_alloc(&c, &m, batch, size, size, 1);
    size_t nx = (size_t)batch * 3 * size * size;
    float *x = xmalloc(nx * sizeof(float)), *dfeat = xmalloc((size_t)batch * 2048 * sizeof(float));
    float *feat = xmalloc((size_t)batch * 2048 * sizeof(float));
    torch_gen g;
    torch_gen_seed(&g, 1);
    torch_randn_f32(&g, x, (int64_t)nx);
    torch_randn_f32(&g, dfeat, (int64_t)batch * 2048);
    double *tf = xmalloc((size_t)(reps + 1) * sizeof(double)), *tb = xmalloc((size_t)(reps + 1) * sizeof(double));
    double *te = xmalloc((size_t)(reps + 1) * sizeof(double));
    double cpu_train = 0, cpu_eval = 0;
    for (int r = 0; r <= reps; r++) { /* r = 0 is the warm-up (first touch of the cache) */
        double c0 = cpu_s();
        param_zero_grad(&m.params);
        double t0 = now_s();
        resnet_forward(feat, &m, &c, x, batch, 1);
        double t1 = now_s();
        resnet_backward(NULL, &m, &c, dfeat, x);
        double t2 = now_s(), c1 = cpu_s();
        resnet_forward(feat, &m, &c, x, batch, 0);
        double t3 = now_s(), c2 = cpu_s();
        if (r) cpu_train += c1 - c0, cpu_eval += c2 - c1;
        tf[r] = t1 - t0, tb[r] = t2 - t1, te[r] = t3 - t2;
        fprintf(stderr, "bench_resnet: step %d: forward %.2f s, backward %.2f s, eval forward %.2f s\n", r, tf[r],
                tb[r], te[r]);
    }
    double steps[64];
    int n = reps < 64 ? reps : 64;
    for (int r = 0; r < n; r++) steps[r] = tf[r + 1] + tb[r + 1];
    double step = median(steps, n), fwd = median(tf + 1, reps), bwd = median(tb + 1, reps), ev = median(te + 1, reps);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"bench\":\"resnet50_train_step\",\"impl\":\"synthcxr\",\"threads\":%d,\"batch\":%d,\"size\":%d,"
           "\"reps\":%d,\"forward_s\":%.3f,\"backward_s\":%.3f,\"seconds_median\":%.3f,\"images_per_s\":%.3f,"
           "\"eval_forward_s\":%.3f,\"eval_images_per_s\":%.3f,\"cpu_s_per_step\":%.3f,\"cpu_s_per_eval_forward\":%.3f,"
           "\"peak_rss_mb\":%.0f,"
           "\"loadavg_1min\":%.2f}\n",
           threads_get(), batch, size, reps, fwd, bwd, step, batch / step, ev, batch / ev, cpu_train / reps,
           cpu_eval / reps,
           ru.ru_maxrss / 1024.0, loadavg());
    free(x), free(dfeat), free(feat), free(tf), free(tb), free(te);
    resnet_cache_free(&c);
    resnet_free(&m);
    return 0;
}

int main(int argc, char **argv) {
    prog_init(argv[0]);
    if (argc == 3 && !strcmp(argv[1], "check")) return check(argv[2]);
    if (argc >= 2 && argc <= 5 && !strcmp(argv[1], "time")) {
        int batch = argc > 2 ? (int)parse_long("BATCH", argv[2], 1, 1024) : 8;
        int size = argc > 3 ? (int)parse_long("SIZE", argv[3], 32, 4096) : 224;
        int reps = argc > 4 ? (int)parse_long("REPS", argv[4], 1, 64) : 3;
        return timing(batch, size, reps);
    }
    die_usage("usage: bench_resnet check DIR | bench_resnet time [BATCH [SIZE [REPS]]]");
}
