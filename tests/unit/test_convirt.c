/* test_convirt.c — ConVIRT training end to end against PyTorch
 * (tests/oracle/make_convirt.py -> tests/fixtures/convirt_ref.safetensors):
 * a tiny torchvision-structured ResNet, the tiny BERT fixture, MGCA's heads,
 * symmetric InfoNCE; the loss, every parameter gradient, and the parameters
 * and BatchNorm buffers after 3 optimiser steps (clip_grad_norm_, AdamW at the
 * warm-up cosine schedule's lrs). Also the checkpoint round trip. */
#include "unit.h"
#include "convirt.h"
#include "optim.h"

#include <math.h>

enum { B = 4, SIDE = 64, T = 16 };

static double f64_at(const st_file *f, const char *name, int i) {
    const st_entry *e = st_get(f, name);
    CHECK(!strcmp(e->st_dtype, "F64") && (size_t)(i + 1) * 8 <= e->nbytes);
    double v;
    memcpy(&v, (const char *)e->data + 8 * i, 8);
    return v;
}

/* Parameters whose true gradient is exactly 0, so that torch's value and ours
 * are both rounding noise: a bias right before a BatchNorm (the batch mean
 * removes it), the attention key bias (softmax ignores a constant added to a
 * query's scores), and the last BERT layer's output LayerNorm bias (only the
 * [CLS] rows reach the text head, whose first BatchNorm makes the gradient of
 * its input sum to 0 over the batch). */
static int zero_grad_param(const char *name, int text_layers) {
    char last[64];
    snprintf(last, sizeof last, "encoder.layer.%d.output.LayerNorm.bias", text_layers - 1);
    return strstr(name, "head.0.bias") || strstr(name, "head.3.bias") || strstr(name, "attention.self.key.bias") ||
           !strcmp(name, last);
}

static double max_abs(const float *p, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(p[i]));
    return m;
}

typedef struct fixture_batch {
    float images[B * 3 * SIDE * SIDE];
    int32_t ids[B * T];
    uint8_t mask[B * T];
} fixture_batch;

static convirt_model *build(const st_file *f, fixture_batch *fb) {
    const char *arch = json_string_value(json_object_get(f->metadata, "image_arch"));
    CHECK(arch);
    resnet_config icfg = resnet_config_parse(arch);
    convirt_model *m = convirt_new(&icfg, NULL, fixture_path("models/tiny-bert"), 0, 0, (int)f64_at(f, "cfg", 0),
                                   (int)f64_at(f, "cfg", 1), (float)f64_at(f, "cfg", 2), (float)f64_at(f, "cfg", 3),
                                   1);
    param_load(m->sets[0], f, "init.image_encoder.", 0);
    param_load(m->sets[2], f, "init.image_projection.", 0);
    param_load(m->sets[3], f, "init.text_projection.", 0);
    for (int k = 0; k < 3; k++) {
        char *p = xasprintf("init.%s", m->buf_prefixes[k]);
        param_load(m->bufs[k], f, p, 0);
        free(p);
    }
    convirt_batch_alloc(m, B, SIDE, T);
    st_read_f32(f, "images", 4, (int64_t[]){B, 3, SIDE, SIDE}, fb->images);
    tensor *ids = st_load(f, "input_ids"), *mask = st_load(f, "attention_mask");
    CHECK(ids->dtype == DTYPE_I32 && mask->dtype == DTYPE_U8 && tensor_numel(ids) == B * T);
    memcpy(fb->ids, ids->data, sizeof fb->ids);
    memcpy(fb->mask, mask->data, sizeof fb->mask);
    tensor_free(ids);
    tensor_free(mask);
    return m;
}

static void test_convirt_vs_torch(void) {
    st_file *f = st_open(fixture_path("convirt_ref.safetensors"));
    static fixture_batch fb;
    convirt_model *m = build(f, &fb);
    float wd = (float)f64_at(f, "cfg", 6);
    double clip = f64_at(f, "cfg", 8);
    float *mb[CONVIRT_NSETS], *vb[CONVIRT_NSETS];
    for (int k = 0; k < CONVIRT_NSETS; k++) {
        mb[k] = xcalloc(m->sets[k]->total + 1, sizeof(float));
        vb[k] = xcalloc(m->sets[k]->total + 1, sizeof(float));
    }
    char key[256];
    for (int step = 0; step < 3; step++) {
        for (int k = 0; k < CONVIRT_NSETS; k++) param_zero_grad(m->sets[k]);
        double parts[2];
        double loss = convirt_train_step(m, fb.images, fb.ids, fb.mask, B, 1.0f, parts);
        double want = f64_at(f, (snprintf(key, sizeof key, "loss%d", step), key), 0);
        double w64 = f64_at(f, "losses64", step);
        double rel = fabs(loss - want) / fabs(want), rel64 = fabs(loss - w64) / w64, t64 = fabs(want - w64) / w64;
        printf("# step %d: loss %.9g, torch %.9g (rel. error %.2g); vs float64: ours %.2g, torch's %.2g\n", step,
               loss, want, rel, rel64, t64);
        if (step == 0) {
            EXPECT(rel <= 1e-5, "step 0: loss %.9g, torch %.9g (rel %.2g)", loss, want, rel);
        } else {
            /* After an Adam step both float32 runs drift from the float64 one:
             * Adam moves every element by about +-lr whatever its gradient's
             * size, so rounding in near-zero gradients decides steps (torch's
             * own float32 run lands 2.4e-5 from float64 at step 1, after a step
             * of lr 1e-8). Ours: within 1e-5, or 3x torch's drift if larger. */
            EXPECT(rel64 <= fmax(1e-5, 3 * t64), "step %d: loss %.9g drifts %.2g from float64, torch %.2g", step,
                   loss, rel64, t64);
        }
        if (step == 0) {
            EXPECT(fabs(parts[0] - f64_at(f, "parts0", 0)) <= 1e-5 * f64_at(f, "parts0", 0), "image->text term");
            EXPECT(fabs(parts[1] - f64_at(f, "parts0", 1)) <= 1e-5 * f64_at(f, "parts0", 1), "text->image term");
            double worst = 0;
            const char *worst_name = "";
            int L = m->txt->cfg.layers;
            for (int k = 0; k < CONVIRT_NSETS; k++) {
                const param_set *ps = m->sets[k];
                for (int j = 0; j < ps->n; j++) {
                    const param_entry *e = &ps->e[j];
                    snprintf(key, sizeof key, "grad.%s%s", m->prefixes[k], e->name);
                    tensor *w = st_load_f32(f, key, -1, NULL);
                    CHECK((size_t)tensor_numel(w) == e->numel);
                    const float *g = ps->grad + e->offset, *gw = w->data;
                    double err = 0;
                    for (size_t i = 0; i < e->numel; i++) err = fmax(err, fabs((double)g[i] - gw[i]));
                    double scale = max_abs(gw, e->numel);
                    if (zero_grad_param(e->name, L)) {
                        /* both are zero to rounding, measured against the weight beside it */
                        char wn[PARAM_NAME_MAX];
                        snprintf(wn, sizeof wn, "%s", e->name);
                        strcpy(strstr(wn, ".bias"), ".weight");
                        const param_entry *we = param_find(ps, wn);
                        scale = max_abs(ps->grad + we->offset, we->numel);
                        EXPECT(max_abs(gw, e->numel) <= 1e-4 * scale, "torch's gradient of %s is not zero", e->name);
                        err = max_abs(g, e->numel);
                    }
                    if (scale == 0) scale = 1;
                    if (err / scale > worst) { worst = err / scale; worst_name = e->name; }
                    if (err > 1e-4 * scale)
                        unit_fail("gradient of %s%s: max abs error %.3g, scale %.3g", m->prefixes[k], e->name, err,
                                  scale);
                    tensor_free(w);
                }
            }
            printf("# step 0: worst gradient error %.2g of its scale (%s)\n", worst, worst_name);
        }
        double norm = clip_grad_norm_multi(m->sets, CONVIRT_NSETS, clip);
        double wn = f64_at(f, (snprintf(key, sizeof key, "norm%d", step), key), 0);
        if (step == 0) EXPECT(fabs(norm - wn) <= 1e-5 * wn, "step %d: grad norm %.9g, torch %.9g", step, norm, wn);
        printf("# step %d: grad norm %.9g, torch %.9g\n", step, norm, wn);
        double lr = lr_cosine_warmup(step, (int64_t)f64_at(f, "cfg", 7), (int64_t)(f64_at(f, "cfg", 7) * 0.4),
                                     f64_at(f, "cfg", 4), f64_at(f, "cfg", 5));
        EXPECT(fabs(lr - f64_at(f, "lrs", step)) <= 1e-12, "step %d: lr %g, torch %g", step, lr, f64_at(f, "lrs", step));
        adamw_config ac = adamw_defaults((float)lr);
        ac.weight_decay = wd;
        for (int k = 0; k < CONVIRT_NSETS; k++) adamw_step(m->sets[k], mb[k], vb[k], step + 1, &ac);
    }
    /* After 3 steps, every parameter and buffer tensor, against the float64 run.
     * Adam divides each gradient element by its own size, so an element whose
     * gradient is at the rounding floor (below 1e-3 of its tensor's gradient
     * scale at step 0, or zero by structure) can step by up to +-lr either way
     * in any float32 run: those are held to 2 x (sum of the lrs). The rest of a
     * tensor: ||ours - float64|| <= 3 x ||torch float32 - float64|| + 1e-6 x ||p||. */
    double lr_sum = f64_at(f, "lrs", 0) + f64_at(f, "lrs", 1) + f64_at(f, "lrs", 2);
    double worst = 0, sum_c = 0, sum_t = 0;
    const char *worst_name = "";
    int L = m->txt->cfg.layers, floor_elems = 0;
    for (int k = 0; k < CONVIRT_NSETS + 3; k++) {
        int is_param = k < CONVIRT_NSETS;
        const param_set *ps = is_param ? m->sets[k] : m->bufs[k - CONVIRT_NSETS];
        const char *prefix = is_param ? m->prefixes[k] : m->buf_prefixes[k - CONVIRT_NSETS];
        for (int j = 0; j < ps->n; j++) {
            const param_entry *e = &ps->e[j];
            snprintf(key, sizeof key, "after.%s%s", prefix, e->name);
            tensor *w = st_load_f32(f, key, -1, NULL);
            snprintf(key, sizeof key, "after64.%s%s", prefix, e->name);
            tensor *w64 = st_load_f32(f, key, -1, NULL);
            tensor *g0 = NULL;
            double gscale = 0;
            if (is_param) {
                snprintf(key, sizeof key, "grad.%s%s", prefix, e->name);
                g0 = st_load_f32(f, key, -1, NULL);
                gscale = max_abs(g0->data, e->numel);
            }
            const float *p = ps->data + e->offset, *pt = w->data, *p64 = w64->data;
            double ec = 0, et = 0, n64 = 0, floor_err = 0;
            for (size_t i = 0; i < e->numel; i++) {
                double dc = (double)p[i] - p64[i], dt = (double)pt[i] - p64[i];
                if (is_param && (zero_grad_param(e->name, L) || fabs(((float *)g0->data)[i]) < 1e-3 * gscale)) {
                    floor_err = fmax(floor_err, fabs(dc));
                    floor_elems++;
                    continue;
                }
                ec += dc * dc;
                et += dt * dt;
                n64 += (double)p64[i] * p64[i];
            }
            ec = sqrt(ec);
            et = sqrt(et);
            n64 = sqrt(n64);
            sum_c += ec * ec;
            sum_t += et * et;
            double bound = 3 * et + 1e-6 * n64;
            if (bound > 0 && ec / bound > worst) { worst = ec / bound; worst_name = e->name; }
            if (ec > bound)
                unit_fail("after 3 steps, %s%s: |ours - float64| %.3g > 3 x torch's %.3g + 1e-6 x |p| %.3g", prefix,
                          e->name, ec, et, n64);
            if (floor_err > 2 * lr_sum)
                unit_fail("after 3 steps, %s%s: an element at the gradient floor moved %.3g from float64 (> 2 x %.3g)",
                          prefix, e->name, floor_err, lr_sum);
            tensor_free(w);
            tensor_free(w64);
            tensor_free(g0);
        }
    }
    printf("# after 3 steps: |ours - float64| %.3g, |torch f32 - float64| %.3g over all tensors; "
           "worst tensor at %.2f of its bound (%s); %d elements at the gradient floor\n", sqrt(sum_c), sqrt(sum_t),
           worst, worst_name, floor_elems);
    for (int k = 0; k < CONVIRT_NSETS; k++) {
        free(mb[k]);
        free(vb[k]);
    }
    convirt_free(m);
    st_close(f);
}

struct load_args {
    convirt_model *m;
    const char *path;
    float **mb, **vb;
};
static void load_mixed(void *arg) {
    struct load_args *a = arg;
    convirt_state st;
    convirt_load(a->m, a->path, a->mb, a->vb, &st);
}

/* convirt_save then convirt_load gives back every tensor and counter */
static void test_checkpoint_roundtrip(void) {
    st_file *f = st_open(fixture_path("convirt_ref.safetensors"));
    static fixture_batch fb;
    convirt_model *m = build(f, &fb);
    float *mb[CONVIRT_NSETS], *vb[CONVIRT_NSETS], *mb2[CONVIRT_NSETS], *vb2[CONVIRT_NSETS];
    for (int k = 0; k < CONVIRT_NSETS; k++) {
        size_t n = m->sets[k]->total;
        mb[k] = xmalloc(n * sizeof(float));
        vb[k] = xmalloc(n * sizeof(float));
        mb2[k] = xcalloc(n, sizeof(float));
        vb2[k] = xcalloc(n, sizeof(float));
        for (size_t i = 0; i < n; i++) {
            mb[k][i] = (float)i * 1e-3f - 0.5f;
            vb[k][i] = (float)(i % 17) * 1e-4f;
        }
    }
    for (int k = 0; k < CONVIRT_NSETS; k++) param_zero_grad(m->sets[k]);
    convirt_train_step(m, fb.images, fb.ids, fb.mask, B, 1.0f, NULL); /* moves the running stats */
    char path[600];
    snprintf(path, sizeof path, "%s/ck.safetensors", unit_tmpdir());
    convirt_state st = {17, 3, 40, 99};
    convirt_save(m, path, mb, vb, &st);
    st_file *c = st_open(path);
    EXPECT(st_find(c, "image_encoder.layer1.0.conv1.weight") && st_find(c, "image_encoder.bn1.running_mean") &&
               st_find(c, "text_encoder.encoder.layer.0.attention.self.query.weight") &&
               st_find(c, "image_projection.head.4.running_var") && st_find(c, "text_projection.head.0.weight") &&
               !st_find(c, "image_encoder.fc.weight"),
           "torchvision / HF names under the four prefixes");
    const char *meth = json_string_value(json_object_get(c->metadata, "method"));
    EXPECT(meth && !strcmp(meth, "convirt") && json_object_get(c->metadata, "text_config") &&
               json_object_get(c->metadata, "image_arch"),
           "metadata");
    st_close(c);

    static fixture_batch fb2;
    convirt_model *m2 = build(f, &fb2);
    convirt_state st2;
    convirt_load(m2, path, mb2, vb2, &st2);
    EXPECT(st2.step == 17 && st2.epoch == 3 && st2.pos == 40 && st2.seed == 99, "counters");
    for (int k = 0; k < CONVIRT_NSETS; k++) {
        size_t n = m->sets[k]->total;
        EXPECT(!memcmp(m->sets[k]->data, m2->sets[k]->data, n * sizeof(float)), "set %d values", k);
        /* the padding between tensors is not saved: compare tensor by tensor */
        for (int j = 0; j < m->sets[k]->n; j++) {
            const param_entry *e = &m->sets[k]->e[j];
            EXPECT(!memcmp(mb[k] + e->offset, mb2[k] + e->offset, e->numel * sizeof(float)) &&
                       !memcmp(vb[k] + e->offset, vb2[k] + e->offset, e->numel * sizeof(float)),
                   "moments of %s", e->name);
        }
    }
    for (int k = 0; k < 3; k++)
        EXPECT(!memcmp(m->bufs[k]->data, m2->bufs[k]->data, m->bufs[k]->total * sizeof(float)), "buffers %d", k);

    /* A save interrupted after the state's rename: CKPT still at step 17, the
     * state at 18, CKPT.next at 18. convirt_load takes CKPT.next. */
    char other[640], buf[700];
    snprintf(other, sizeof other, "%s/ck2.safetensors", unit_tmpdir());
    convirt_state st18 = {18, 3, 44, 99};
    *param_get(m->sets[2], "head.0.bias") += 1.0f; /* so step 18's model differs */
    convirt_save(m, other, mb, vb, &st18);
    size_t nb;
    unsigned char *b = unit_slurp(other, &nb);
    snprintf(buf, sizeof buf, "%s.next", path);
    unit_spit(buf, b, nb);
    free(b);
    snprintf(buf, sizeof buf, "%s.state.safetensors", other);
    b = unit_slurp(buf, &nb);
    snprintf(buf, sizeof buf, "%s.state.safetensors", path);
    unit_spit(buf, b, nb);
    free(b);
    convirt_load(m2, path, mb2, vb2, &st2);
    EXPECT(st2.step == 18 && st2.pos == 44, "the interrupted save's state");
    EXPECT(*param_get(m2->sets[2], "head.0.bias") == *param_get(m->sets[2], "head.0.bias"),
           "the model of step 18, from CKPT.next");
    /* without a CKPT.next of that step: refused */
    snprintf(buf, sizeof buf, "%s.next", path);
    unlink(buf);
    struct load_args la = {m2, path, mb2, vb2};
    expect_dies("mixed pair", load_mixed, &la, 2, "step 17");
    for (int k = 0; k < CONVIRT_NSETS; k++) {
        free(mb[k]);
        free(vb[k]);
        free(mb2[k]);
        free(vb2[k]);
    }
    convirt_free(m);
    convirt_free(m2);
    st_close(f);
}

/* --image-weights: a torchvision state dict (plain names, with an fc to ignore)
 * replaces the random image encoder, parameters and BN buffers alike */
static void test_image_weights(void) {
    st_file *f = st_open(fixture_path("convirt_ref.safetensors"));
    static fixture_batch fb;
    convirt_model *a = build(f, &fb); /* image encoder from the oracle's init */
    char path[600];
    snprintf(path, sizeof path, "%s/tv.safetensors", unit_tmpdir());
    char **names = NULL;
    const tensor **ts = NULL;
    int n = param_list_append(a->sets[0], a->sets[0]->data, "", 0, &names, &ts);
    n = param_list_append(a->bufs[0], a->bufs[0]->data, "", n, &names, &ts);
    names = xrealloc(names, (size_t)(n + 1) * sizeof *names);
    ts = xrealloc(ts, (size_t)(n + 1) * sizeof *ts);
    names[n] = xstrdup("fc.weight");
    ts[n++] = tensor_new_f32(2, (int64_t[]){10, a->img.feat_dim});
    memset(((tensor *)ts[n - 1])->data, 0, sizeof(float) * 10 * (size_t)a->img.feat_dim);
    st_write(path, n, (const char *const *)names, (const tensor *const *)ts, NULL);
    param_list_free(n, names, ts);
    const char *arch = json_string_value(json_object_get(f->metadata, "image_arch"));
    resnet_config icfg = resnet_config_parse(arch);
    convirt_model *b = convirt_new(&icfg, path, fixture_path("models/tiny-bert"), 0, 0, 8, 4, 0.07f, 0.5f, 77);
    EXPECT(!memcmp(a->sets[0]->data, b->sets[0]->data, a->sets[0]->total * sizeof(float)), "image parameters loaded");
    EXPECT(!memcmp(a->bufs[0]->data, b->bufs[0]->data, a->bufs[0]->total * sizeof(float)), "BN buffers loaded");
    convirt_free(a);
    convirt_free(b);
    st_close(f);
}

int main(void) {
    RUN(test_convirt_vs_torch);
    RUN(test_image_weights);
    RUN(test_checkpoint_roundtrip);
    return unit_done();
}
