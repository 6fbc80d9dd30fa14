/* test_optim.c — libcommon/optim against tests/fixtures/optim_ref.safetensors
 * (tests/oracle/make_optim.py): torch.optim.AdamW over two parameter groups for
 * four steps, torch.nn.utils.clip_grad_norm_, and the learning rates of MGCA's
 * CosineAnnealingWarmupRestarts schedule step by step. */
#include "unit.h"
#include "optim.h"

#include <math.h>

/* A float64 fixture vector read into doubles. */
static double *load_f64(const st_file *f, const char *name, size_t *n) {
    const st_entry *e = st_get(f, name);
    CHECK(!strcmp(e->st_dtype, "F64"));
    *n = e->nbytes / 8;
    double *d = xmalloc(e->nbytes);
    memcpy(d, e->data, e->nbytes);
    return d;
}

static const char *const anames[] = {"a.weight", "a.bias", "b.weight", "c"};
static const int adecay[] = {1, 0, 1, 0};

static void adamw_case(const char *tag) {
    st_file *f = st_open(fixture_path("optim_ref.safetensors"));
    param_set ps;
    param_set_init(&ps);
    char key[128];
    for (int k = 0; k < 4; k++) {
        snprintf(key, sizeof key, "%s.init.%s", tag, anames[k]);
        const st_entry *e = st_get(f, key);
        param_add(&ps, anames[k], e->ndim, e->shape, adecay[k]);
    }
    param_set_alloc(&ps, 1);
    EXPECT(param_load(&ps, f, (snprintf(key, sizeof key, "%s.init.", tag), key), 0) == 4, "init loaded");
    size_t nl, nh;
    double *lrs = load_f64(f, (snprintf(key, sizeof key, "%s.lrs", tag), key), &nl);
    double *hy = load_f64(f, (snprintf(key, sizeof key, "%s.hyper", tag), key), &nh);
    CHECK(nh == 4);
    float *m = xcalloc(ps.total, sizeof(float)), *v = xcalloc(ps.total, sizeof(float));
    for (size_t s = 0; s < nl; s++) {
        snprintf(key, sizeof key, "%s.grad%zu.", tag, s);
        /* gradients live in the grad block: load them through a grad-shaped view */
        param_set gv = ps;
        gv.data = ps.grad;
        EXPECT(param_load(&gv, f, key, 0) == 4, "grads of step %zu", s);
        adamw_config c = {(float)lrs[s], (float)hy[0], (float)hy[1], (float)hy[2], (float)hy[3]};
        adamw_step(&ps, m, v, (int64_t)s + 1, &c);
        for (int k = 0; k < 4; k++) {
            char what[160];
            snprintf(what, sizeof what, "%s.after%zu.%s", tag, s, anames[k]);
            /* MGCA's hyper-parameters give torch's floats bit for bit; the odd case
             * differs by one ulp in a few elements (torch's vector kernels) */
            expect_close_fixture(f, what, param_get(&ps, anames[k]), param_find(&ps, anames[k])->numel, 1e-6);
        }
    }
    free(m);
    free(v);
    free(lrs);
    free(hy);
    param_set_free(&ps);
    st_close(f);
}

static void test_adamw_mgca(void) { adamw_case("mgca"); }
static void test_adamw_odd(void) { adamw_case("odd"); }

static void clip_case(const char *tag) {
    st_file *f = st_open(fixture_path("optim_ref.safetensors"));
    char key[128];
    param_set a, b;
    param_set_init(&a);
    param_set_init(&b);
    /* two blocks, so clip_grad_norm_multi is what runs */
    param_add(&a, "g0", 2, (int64_t[]){4, 6}, 1);
    param_add(&a, "g1", 1, (int64_t[]){9}, 1);
    param_add(&b, "g2", 3, (int64_t[]){2, 3, 5}, 1);
    param_set_alloc(&a, 1);
    param_set_alloc(&b, 1);
    st_read_f32(f, (snprintf(key, sizeof key, "%s.grad0", tag), key), -1, NULL, param_grad(&a, "g0"));
    st_read_f32(f, (snprintf(key, sizeof key, "%s.grad1", tag), key), -1, NULL, param_grad(&a, "g1"));
    st_read_f32(f, (snprintf(key, sizeof key, "%s.grad2", tag), key), -1, NULL, param_grad(&b, "g2"));
    size_t n;
    double *want = load_f64(f, (snprintf(key, sizeof key, "%s.norm", tag), key), &n);
    double *maxn = load_f64(f, (snprintf(key, sizeof key, "%s.max_norm", tag), key), &n);
    param_set *both[2] = {&a, &b};
    double norm = clip_grad_norm_multi(both, 2, maxn[0]);
    EXPECT(fabs(norm - want[0]) <= 1e-6 * want[0], "%s: norm %.9g, torch %.9g", tag, norm, want[0]);
    expect_close_fixture(f, (snprintf(key, sizeof key, "%s.clipped0", tag), key), param_grad(&a, "g0"), 24, 1e-6);
    expect_close_fixture(f, (snprintf(key, sizeof key, "%s.clipped1", tag), key), param_grad(&a, "g1"), 9, 1e-6);
    expect_close_fixture(f, (snprintf(key, sizeof key, "%s.clipped2", tag), key), param_grad(&b, "g2"), 30, 1e-6);
    free(want);
    free(maxn);
    param_set_free(&a);
    param_set_free(&b);
    st_close(f);
}

static void test_clip_hi(void) { clip_case("clip_hi"); }
static void test_clip_lo(void) { clip_case("clip_lo"); }

static void sched_case(const char *tag) {
    st_file *f = st_open(fixture_path("optim_ref.safetensors"));
    char key[128];
    size_t n, nc;
    double *lrs = load_f64(f, (snprintf(key, sizeof key, "%s.lrs", tag), key), &n);
    double *cfg = load_f64(f, (snprintf(key, sizeof key, "%s.cfg", tag), key), &nc);
    CHECK(nc == 4);
    int64_t total = (int64_t)cfg[0], warm = (int64_t)cfg[1];
    double maxerr = 0;
    size_t worst = 0;
    for (size_t s = 0; s < n; s++) {
        double lr = lr_cosine_warmup((int64_t)s, total, warm, cfg[2], cfg[3]);
        double e = fabs(lr - lrs[s]) / lrs[s];
        if (e > maxerr) { maxerr = e; worst = s; }
    }
    EXPECT(maxerr <= 1e-12, "%s: step %zu: lr %.12g, torch %.12g", tag, worst,
           lr_cosine_warmup((int64_t)worst, total, warm, cfg[2], cfg[3]), lrs[worst]);
    free(lrs);
    free(cfg);
    st_close(f);
}

static void test_sched_a(void) { sched_case("sched_a"); }
static void test_sched_b(void) { sched_case("sched_b"); }
static void test_sched_c(void) { sched_case("sched_c"); }

int main(void) {
    RUN(test_adamw_mgca);
    RUN(test_adamw_odd);
    RUN(test_clip_hi);
    RUN(test_clip_lo);
    RUN(test_sched_a);
    RUN(test_sched_b);
    RUN(test_sched_c);
    return unit_done();
}
