/* test_resnet.c — the torchvision Bottleneck ResNet (libcommon/resnet.c)
 * against torch (tests/oracle/make_resnet.py: a tiny torchvision ResNet,
 * layers [2,1,1,1], stem 8, planes 4, batch 2 of 3x48x40, float64 references):
 * training-mode features and layer3 output, every parameter gradient and the
 * input gradient for a random dfeat (and with a gradient into layer3 too), running statistics and num_batches_tracked
 * after the step, eval-mode features and layer3 (eval cache and train cache);
 * finite differences of a few parameters; ResNet-50's names and sizes against
 * torchvision's; the config strings; loader errors. */
#include "unit.h"
#include "resnet.h"

#include <stdint.h>

static st_file *fx;
static const int B = 2, H = 48, W = 40;

static resnet_config tiny_config(void) {
    const char *arch = fx->metadata ? json_string_value(json_object_get(fx->metadata, "image_arch")) : NULL;
    CHECKF(arch, "fixture has no image_arch metadata");
    return resnet_config_parse(arch);
}

static void load_tiny(resnet *m) {
    resnet_config cfg = tiny_config();
    resnet_init(m, &cfg, 1);
    resnet_load(m, fx, "init.");
}

static void test_names_and_sizes(void) {
    resnet m;
    load_tiny(&m);
    EXPECT(m.feat_dim == 128, "feat_dim %d", m.feat_dim);
    /* every init.* tensor of the fixture but fc.* is a parameter or a buffer, and vice versa */
    int found = 0;
    for (int i = 0; i < fx->n; i++) {
        const char *name = fx->entries[i].name;
        if (strncmp(name, "init.", 5) || !strncmp(name, "init.fc.", 8)) continue;
        found++;
        EXPECT(param_find(&m.params, name + 5) || param_find(&m.buffers, name + 5), "%s not registered", name);
    }
    EXPECT(found == m.params.n + m.buffers.n, "fixture has %d tensors, model %d + %d", found, m.params.n,
           m.buffers.n);
    resnet_free(&m);

    /* ResNet-50: torchvision's 25,557,032 parameters less fc (2048*1000 + 1000) */
    resnet_config r50 = resnet50_config();
    resnet_init(&m, &r50, 0);
    size_t np = 0;
    for (int i = 0; i < m.params.n; i++) np += m.params.e[i].numel;
    EXPECT(np == 23508032, "ResNet-50 has %zu parameters without fc", np);
    EXPECT(m.buffers.n == 53 * 3, "%d buffers (53 BN layers x 3)", m.buffers.n);
    EXPECT(m.feat_dim == 2048 && m.nblocks == 16, "feat %d, blocks %d", m.feat_dim, m.nblocks);
    EXPECT(param_find(&m.params, "layer4.2.bn3.bias") && param_find(&m.params, "layer2.0.downsample.0.weight") &&
               param_find(&m.buffers, "layer3.0.downsample.1.running_var") &&
               !param_find(&m.params, "layer2.1.downsample.0.weight"),
           "torchvision names");
    const param_entry *e = param_find(&m.params, "layer3.0.conv2.weight");
    EXPECT(e && e->shape[0] == 256 && e->shape[1] == 256 && e->shape[2] == 3, "layer3.0.conv2 shape");
    /* kaiming_normal_(fan_out): std sqrt(2 / (64*7*7)) for conv1 */
    const float *w = param_get(&m.params, "conv1.weight");
    double ss = 0;
    for (int i = 0; i < 64 * 3 * 49; i++) ss += (double)w[i] * w[i];
    double sd = sqrt(ss / (64 * 3 * 49)), want = sqrt(2.0 / (64 * 49));
    EXPECT(fabs(sd / want - 1) < 0.05, "conv1 init std %g, want %g", sd, want);
    EXPECT(param_get(&m.params, "bn1.weight")[5] == 1 && param_get(&m.buffers, "bn1.running_var")[5] == 1,
           "BN init");
    char *s = resnet_config_string(&m.cfg);
    EXPECT(!strcmp(s, "resnet50"), "%s", s);
    free(s);
    resnet_free(&m);
    resnet_config t = tiny_config(), back;
    s = resnet_config_string(&t);
    back = resnet_config_parse(s);
    EXPECT(!memcmp(&t, &back, sizeof t), "round trip of %s", s);
    free(s);
}

static float *fixture(const char *name, size_t n) {
    tensor *t = st_load_f32(fx, name, -1, NULL);
    CHECKF((size_t)tensor_numel(t) == n, "%s: %lld values, expected %zu", name, (long long)tensor_numel(t), n);
    float *p = xmalloc(n * sizeof(float));
    memcpy(p, t->data, n * sizeof(float));
    tensor_free(t);
    return p;
}

static void test_train_step(void) {
    resnet m;
    load_tiny(&m);
    resnet_cache c;
    resnet_cache_alloc(&c, &m, B, H, W, 1);
    float *x = fixture("x", (size_t)B * 3 * H * W), *dfeat = fixture("dfeat", (size_t)B * 128);
    float feat[2 * 128];
    resnet_forward(feat, &m, &c, x, B, 1);
    expect_close_fixture(fx, "train_feat", feat, B * 128, 1e-5);
    expect_close_fixture(fx, "train_layer3", c.layer3, (size_t)B * c.layer3_ch * c.layer3_h * c.layer3_w, 1e-5);
    EXPECT(c.layer3_ch == 64 && c.layer3_h == 3 && c.layer3_w == 3, "layer3 %dx%dx%d", c.layer3_ch, c.layer3_h,
           c.layer3_w);

    param_zero_grad(&m.params);
    float *dx = xcalloc((size_t)B * 3 * H * W, sizeof(float));
    resnet_backward(dx, &m, &c, dfeat, x);
    int bad = 0;
    for (int i = 0; i < m.params.n; i++) {
        const param_entry *e = &m.params.e[i];
        char key[PARAM_NAME_MAX + 8];
        snprintf(key, sizeof key, "grad.%s", e->name);
        bad += !expect_close_fixture(fx, key, m.params.grad + e->offset, e->numel, 1e-4);
    }
    EXPECT(bad == 0, "%d of %d parameter gradients differ", bad, m.params.n);
    expect_close_fixture(fx, "grad_x", dx, (size_t)B * 3 * H * W, 1e-4);
    for (int i = 0; i < m.buffers.n; i++) {
        const param_entry *e = &m.buffers.e[i];
        char key[PARAM_NAME_MAX + 8];
        snprintf(key, sizeof key, "after.%s", e->name);
        if (e->is_i64) {
            const st_entry *se = st_get(fx, key);
            int64_t v;
            memcpy(&v, se->data, sizeof v);
            EXPECT(m.buffers.data[e->offset] == (float)v, "%s = %g, want %lld", key,
                   (double)m.buffers.data[e->offset], (long long)v);
        } else {
            expect_close_fixture(fx, key, m.buffers.data + e->offset, e->numel, 1e-6);
        }
    }

    /* backward without the input gradient: the same parameter gradients, accumulated */
    float *g1 = xmalloc(m.params.total * sizeof(float));
    memcpy(g1, m.params.grad, m.params.total * sizeof(float));
    resnet_backward(NULL, &m, &c, dfeat, x);
    for (size_t i = 0; i < m.params.total; i++) g1[i] *= 2;
    EXPECT(expect_close("grads accumulate (twice = 2x)", m.params.grad, g1, m.params.total, 1e-6), "accumulate");

    /* a gradient into layer3's output as well (same forward) */
    float *dl3 = fixture("dlayer3", (size_t)B * c.layer3_ch * c.layer3_h * c.layer3_w);
    param_zero_grad(&m.params);
    resnet_backward_layer3(NULL, &m, &c, dfeat, dl3, x);
    bad = 0;
    for (int i = 0; i < m.params.n; i++) {
        const param_entry *e = &m.params.e[i];
        char key[PARAM_NAME_MAX + 8];
        snprintf(key, sizeof key, "grad2.%s", e->name);
        bad += !expect_close_fixture(fx, key, m.params.grad + e->offset, e->numel, 1e-4);
    }
    EXPECT(bad == 0, "with dlayer3: %d of %d parameter gradients differ", bad, m.params.n);
    free(dl3);

    /* eval mode, with the train cache (running statistics after the step) */
    resnet_forward(feat, &m, &c, x, B, 0);
    expect_close_fixture(fx, "eval_feat", feat, B * 128, 1e-5);
    expect_close_fixture(fx, "eval_layer3", c.layer3, (size_t)B * c.layer3_ch * c.layer3_h * c.layer3_w, 1e-5);
    /* and with an eval-only cache */
    resnet_cache ce;
    resnet_cache_alloc(&ce, &m, B, H, W, 0);
    memset(feat, 0, sizeof feat);
    resnet_forward(feat, &m, &ce, x, B, 0);
    expect_close_fixture(fx, "eval_feat", feat, B * 128, 1e-5);
    expect_close_fixture(fx, "eval_layer3", ce.layer3, (size_t)B * ce.layer3_ch * ce.layer3_h * ce.layer3_w, 1e-5);
    /* one image of the batch (a smaller batch than the cache holds) */
    float f1[128];
    resnet_forward(f1, &m, &ce, x, 1, 0);
    EXPECT(expect_close("eval batch of 1", f1, feat, 128, 1e-6), "batch 1");
    resnet_cache_free(&ce);
    resnet_cache_free(&c);
    free(x), free(dfeat), free(dx), free(g1);
    resnet_free(&m);
}

/* sum(dfeat * features) of a training-mode forward, in double. */
static double loss(resnet *m, resnet_cache *c, const float *x, const float *dfeat) {
    float feat[2 * 128];
    resnet_forward(feat, m, c, x, B, 1);
    double l = 0;
    for (int i = 0; i < B * 128; i++) l += (double)dfeat[i] * feat[i];
    return l;
}

/* Central differences of 5 elements of each of several parameters through the
 * whole float network. The stem and layer1 feed every ReLU kink and max-pool
 * switch downstream, so the loss is curved on a scale of 1e-3 there (h = 1e-2
 * is off by 7x, 1e-3 by 2x): h = 1e-4 and a bound of 5e-2 of the largest
 * gradient (measured 2.2e-2, at the float rounding of the loss over 2h).
 * Layers 2-4: h = 3e-4, bound 2e-3 (measured 6e-4). The torch
 * autograd comparison above is the tight check; this one is independent of it. */
static void fd_check(resnet *m, resnet_cache *c, const float *x, const float *dfeat, const char *const *names,
                     int nn, float h, double tol, const char *what) {
    float got[64], fd[64];
    int n = 0;
    for (int k = 0; k < nn; k++) {
        const param_entry *e = param_find(&m->params, names[k]);
        for (int j = 0; j < 5; j++) {
            size_t idx = (size_t)j * 7919 % e->numel;
            float *p = m->params.data + e->offset + idx;
            float v0 = *p;
            *p = v0 + h;
            double lp = loss(m, c, x, dfeat);
            *p = v0 - h;
            double lm = loss(m, c, x, dfeat);
            *p = v0;
            fd[n] = (float)((lp - lm) / (2.0 * h));
            got[n++] = m->params.grad[e->offset + idx];
        }
    }
    expect_close(what, got, fd, (size_t)n, tol);
}

static void test_finite_differences(void) {
    resnet m;
    load_tiny(&m);
    resnet_cache c;
    resnet_cache_alloc(&c, &m, B, H, W, 1);
    float *x = fixture("x", (size_t)B * 3 * H * W), *dfeat = fixture("dfeat", (size_t)B * 128);
    float feat[2 * 128];
    resnet_forward(feat, &m, &c, x, B, 1);
    param_zero_grad(&m.params);
    resnet_backward(NULL, &m, &c, dfeat, x);
    const char *early[] = {"conv1.weight", "bn1.weight", "layer1.0.conv2.weight", "layer1.1.bn3.bias"};
    const char *deep[] = {"layer2.0.downsample.0.weight", "layer2.0.conv1.weight", "layer3.0.bn2.weight",
                          "layer4.0.conv3.weight", "layer4.0.downsample.1.bias"};
    fd_check(&m, &c, x, dfeat, early, 4, 1e-4f, 5e-2, "finite differences, stem and layer1");
    fd_check(&m, &c, x, dfeat, deep, 5, 3e-4f, 2e-3, "finite differences, layers 2-4");
    free(x), free(dfeat);
    resnet_cache_free(&c);
    resnet_free(&m);
}

static void load_missing(void *arg) {
    (void)arg;
    resnet m;
    resnet_config cfg = tiny_config();
    resnet_init(&m, &cfg, 1);
    resnet_load(&m, fx, "grad."); /* has the parameters' names, not the running statistics */
}
static void load_wrong_prefix(void *arg) {
    (void)arg;
    resnet m;
    resnet_config cfg = tiny_config();
    resnet_init(&m, &cfg, 1);
    resnet_load(&m, fx, "nope.");
}
static void bad_arch(void *arg) { resnet_config_parse((const char *)arg); }
static void train_without_cache(void *arg) {
    (void)arg;
    resnet m;
    resnet_config cfg = tiny_config();
    resnet_init(&m, &cfg, 1);
    resnet_cache c;
    resnet_cache_alloc(&c, &m, 1, 48, 40, 0);
    float x[3 * 48 * 40] = {0}, f[128];
    resnet_forward(f, &m, &c, x, 1, 1);
}

static void test_errors(void) {
    expect_dies("missing running stats", load_missing, NULL, 2, "missing tensor \"grad.bn1.running_mean\"");
    expect_dies("missing weight", load_wrong_prefix, NULL, 2, "missing tensor \"nope.conv1.weight\"");
    expect_dies("bad arch", bad_arch, "resnet18", 2, "neither \"resnet50\" nor a JSON object");
    expect_dies("bad key", bad_arch, "{\"depth\":3}", 2, "unknown architecture key \"depth\"");
    expect_dies("bad layers", bad_arch, "{\"layers\":[1,0,1,1]}", 2, "stage 2 has 0 blocks");
    expect_dies("train with an eval cache", train_without_cache, NULL, 2, "needs a cache allocated for training");
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    fx = st_open(fixture_path("resnet.safetensors"));
    RUN(test_names_and_sizes);
    RUN(test_train_step);
    RUN(test_finite_differences);
    RUN(test_errors);
    st_close(fx);
    return unit_done();
}
