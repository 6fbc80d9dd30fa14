/* resnet.c — torchvision's Bottleneck ResNet (see resnet.h): parameter
 * registration under torchvision's names, init, loading, the activation
 * cache, and the forward and backward passes built from libcommon's kernels
 * (conv2d, batchnorm, activation, pool). Threads come from inside the kernels
 * (GEMMs over all threads, BN and ReLU over channels / elements). */
#include "resnet.h"

#include "activation.h"
#include "batchnorm.h"
#include "common.h"
#include "json.h"
#include "pool.h"
#include "rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

resnet_config resnet50_config(void) { return (resnet_config){{3, 4, 6, 3}, 64, 64, 64}; }

static int config_is_resnet50(const resnet_config *c) {
    resnet_config r = resnet50_config();
    return !memcmp(c, &r, sizeof r);
}

static void config_check(const resnet_config *c) {
    for (int s = 0; s < 4; s++)
        if (c->layers[s] < 1 || c->layers[s] > 64) die("resnet: stage %d has %d blocks (1..64)", s + 1, c->layers[s]);
    if (c->stem_width < 1 || c->stem_width > 4096) die("resnet: stem width %d out of range", c->stem_width);
    if (c->planes < 1 || c->planes > 4096) die("resnet: planes %d out of range", c->planes);
    if (c->width_per_group < 1 || c->width_per_group > 4096 || (c->planes * c->width_per_group) % 64)
        die("resnet: width_per_group %d with planes %d does not give a whole bottleneck width",
            c->width_per_group, c->planes);
}

resnet_config resnet_config_parse(const char *s) {
    if (!s) die("resnet: no architecture given");
    if (!strcmp(s, "resnet50")) return resnet50_config();
    json_error_t err;
    json_t *j = json_loads(s, 0, &err);
    if (!j || !json_is_object(j))
        die("resnet: architecture \"%s\" is neither \"resnet50\" nor a JSON object%s%s", s, j ? "" : ": ",
            j ? "" : err.text);
    resnet_config c = resnet50_config();
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        if (!strcmp(key, "layers")) {
            if (!json_is_array(v) || json_array_size(v) != 4) die("resnet: \"layers\" must be an array of 4");
            for (int i = 0; i < 4; i++) {
                json_t *e = json_array_get(v, (size_t)i);
                if (!json_is_integer(e)) die("resnet: \"layers\"[%d] is not an integer", i);
                c.layers[i] = (int)json_integer_value(e);
            }
        } else {
            int *dst = !strcmp(key, "stem_width") ? &c.stem_width
                       : !strcmp(key, "planes")   ? &c.planes
                       : !strcmp(key, "width_per_group") ? &c.width_per_group
                                                         : NULL;
            if (!dst) die("resnet: unknown architecture key \"%s\"", key);
            if (!json_is_integer(v)) die("resnet: \"%s\" is not an integer", key);
            *dst = (int)json_integer_value(v);
        }
    }
    json_decref(j);
    config_check(&c);
    return c;
}

char *resnet_config_string(const resnet_config *c) {
    if (config_is_resnet50(c)) return xstrdup("resnet50");
    return xasprintf("{\"layers\":[%d,%d,%d,%d],\"stem_width\":%d,\"planes\":%d,\"width_per_group\":%d}",
                     c->layers[0], c->layers[1], c->layers[2], c->layers[3], c->stem_width, c->planes,
                     c->width_per_group);
}

/* ---- parameters ---------------------------------------------------------- */

static void reg_conv(resnet *m, const char *name, int in_ch, int out_ch, int k) {
    char key[PARAM_NAME_MAX];
    snprintf(key, sizeof key, "%s.weight", name);
    param_add(&m->params, key, 4, (int64_t[]){out_ch, in_ch, k, k}, 1);
}

static void reg_bn(resnet *m, const char *name, int ch) {
    char key[PARAM_NAME_MAX];
    const char *p[] = {"weight", "bias"}, *b[] = {"running_mean", "running_var"};
    for (int i = 0; i < 2; i++) {
        snprintf(key, sizeof key, "%s.%s", name, p[i]);
        param_add(&m->params, key, 1, (int64_t[]){ch}, 1);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(key, sizeof key, "%s.%s", name, b[i]);
        param_add(&m->buffers, key, 1, (int64_t[]){ch}, 0);
    }
    snprintf(key, sizeof key, "%s.num_batches_tracked", name);
    param_add_count(&m->buffers, key);
}

static void bind_conv(resnet *m, resnet_conv *cv, const char *name, int in_ch, int out_ch, int k, int stride,
                      int pad) {
    char key[PARAM_NAME_MAX];
    snprintf(key, sizeof key, "%s.weight", name);
    cv->w = param_get(&m->params, key);
    cv->dw = param_grad(&m->params, key);
    cv->d = (conv2d_dims){0, in_ch, 0, 0, out_ch, k, k, stride, stride, pad, pad};
}

static void bind_bn(resnet *m, resnet_bn *bn, const char *name, int ch) {
    char key[PARAM_NAME_MAX];
    bn->ch = ch;
#define GET(field, set, what, getter)                         \
    snprintf(key, sizeof key, "%s.%s", name, what);           \
    bn->field = getter(&m->set, key)
    GET(w, params, "weight", param_get);
    GET(b, params, "bias", param_get);
    GET(dw, params, "weight", param_grad);
    GET(db, params, "bias", param_grad);
    GET(running_mean, buffers, "running_mean", param_get);
    GET(running_var, buffers, "running_var", param_get);
    GET(num_batches_tracked, buffers, "num_batches_tracked", param_get);
#undef GET
}

/* Walks the architecture in module order: pass 0 registers, pass 1 binds. */
static void walk(resnet *m, int bind) {
    const resnet_config *c = &m->cfg;
    char name[48]; /* "layer4.63.downsample.0" at most */
    if (!bind) {
        reg_conv(m, "conv1", 3, c->stem_width, 7);
        reg_bn(m, "bn1", c->stem_width);
    } else {
        bind_conv(m, &m->conv1, "conv1", 3, c->stem_width, 7, 2, 3);
        bind_bn(m, &m->bn1, "bn1", c->stem_width);
    }
    int inplanes = c->stem_width, bi = 0;
    for (int s = 0; s < 4; s++) {
        int planes = c->planes << s;
        int width = planes * c->width_per_group / 64, out = planes * 4;
        for (int i = 0; i < c->layers[s]; i++, bi++) {
            int stride = (i == 0 && s > 0) ? 2 : 1;
            int down = i == 0 && (stride != 1 || inplanes != out);
            char pre[24];
            snprintf(pre, sizeof pre, "layer%d.%d", s + 1, i);
#define N(suffix) (snprintf(name, sizeof name, "%s.%s", pre, suffix), name)
            if (!bind) {
                reg_conv(m, N("conv1"), inplanes, width, 1);
                reg_bn(m, N("bn1"), width);
                reg_conv(m, N("conv2"), width, width, 3);
                reg_bn(m, N("bn2"), width);
                reg_conv(m, N("conv3"), width, out, 1);
                reg_bn(m, N("bn3"), out);
                if (down) {
                    reg_conv(m, N("downsample.0"), inplanes, out, 1);
                    reg_bn(m, N("downsample.1"), out);
                }
            } else {
                resnet_bottleneck *b = &m->blocks[bi];
                b->in_ch = inplanes, b->width = width, b->out_ch = out, b->stride = stride;
                bind_conv(m, &b->conv1, N("conv1"), inplanes, width, 1, 1, 0);
                bind_bn(m, &b->bn1, N("bn1"), width);
                bind_conv(m, &b->conv2, N("conv2"), width, width, 3, stride, 1);
                bind_bn(m, &b->bn2, N("bn2"), width);
                bind_conv(m, &b->conv3, N("conv3"), width, out, 1, 1, 0);
                bind_bn(m, &b->bn3, N("bn3"), out);
                if (down) {
                    bind_conv(m, &b->down, N("downsample.0"), inplanes, out, 1, stride, 0);
                    bind_bn(m, &b->down_bn, N("downsample.1"), out);
                } else {
                    memset(&b->down, 0, sizeof b->down);
                    memset(&b->down_bn, 0, sizeof b->down_bn);
                }
            }
#undef N
            inplanes = out;
        }
        m->stage_end[s] = bi;
    }
}

void resnet_init(resnet *m, const resnet_config *cfg, uint64_t seed) {
    config_check(cfg);
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->momentum = 0.1f;
    m->eps = 1e-5f;
    m->nblocks = cfg->layers[0] + cfg->layers[1] + cfg->layers[2] + cfg->layers[3];
    m->blocks = xcalloc((size_t)m->nblocks, sizeof *m->blocks);
    m->feat_dim = cfg->planes * 8 * 4;
    param_set_init(&m->params);
    param_set_init(&m->buffers);
    walk(m, 0);
    param_set_alloc(&m->params, 1);
    param_set_alloc(&m->buffers, 0);
    walk(m, 1);

    /* torchvision's init: kaiming_normal_(mode="fan_out", nonlinearity="relu") */
    torch_gen g;
    torch_gen_seed(&g, seed);
    for (int i = 0; i < m->params.n; i++) {
        const param_entry *e = &m->params.e[i];
        float *p = m->params.data + e->offset;
        if (e->ndim == 4) {
            float std = sqrtf(2.0f / (float)(e->shape[0] * e->shape[2] * e->shape[3]));
            torch_randn_f32(&g, p, (int64_t)e->numel);
            for (size_t j = 0; j < e->numel; j++) p[j] *= std;
        } else if (strlen(e->name) > 7 && !strcmp(e->name + strlen(e->name) - 7, ".weight")) {
            for (size_t j = 0; j < e->numel; j++) p[j] = 1.0f; /* BN weight; BN bias stays 0 */
        }
    }
    for (int i = 0; i < m->buffers.n; i++) {
        const param_entry *e = &m->buffers.e[i];
        if (strstr(e->name, "running_var"))
            for (size_t j = 0; j < e->numel; j++) m->buffers.data[e->offset + j] = 1.0f;
    }
}

void resnet_free(resnet *m) {
    param_set_free(&m->params);
    param_set_free(&m->buffers);
    free(m->blocks);
    memset(m, 0, sizeof *m);
}

void resnet_load(resnet *m, const st_file *f, const char *prefix) {
    if (!prefix) prefix = "";
    param_load(&m->params, f, prefix, 0);
    param_load(&m->buffers, f, prefix, 1);
    for (int i = 0; i < m->buffers.n; i++) {
        const param_entry *e = &m->buffers.e[i];
        if (e->is_i64) continue;
        char *key = xasprintf("%s%s", prefix, e->name);
        if (!st_find(f, key)) die("%s: missing tensor \"%s\"", f->path, key);
        free(key);
    }
}

/* ---- cache ------------------------------------------------------------- */

static int out_size(int in, int k, int stride, int pad) { return (in + 2 * pad - k) / stride + 1; }

void resnet_cache_alloc(resnet_cache *c, const resnet *m, int batch, int h, int w, int train) {
    memset(c, 0, sizeof *c);
    if (batch < 1 || h < 1 || w < 1) die("resnet: bad cache size batch %d, %dx%d", batch, h, w);
    c->batch = batch, c->h = h, c->w = w, c->train = train;
    c->stem_h = out_size(h, 7, 2, 3), c->stem_w = out_size(w, 7, 2, 3);
    c->pool_h = out_size(c->stem_h, 3, 2, 1), c->pool_w = out_size(c->stem_w, 3, 2, 1);
    if (c->stem_h < 1 || c->stem_w < 1 || c->pool_h < 1 || c->pool_w < 1)
        die("resnet: input %dx%d is too small", h, w);
    c->blocks = xcalloc((size_t)m->nblocks, sizeof *c->blocks);

    /* Sizes (floats per image) first, then one allocation. */
    const size_t B = (size_t)batch;
    size_t stem = (size_t)m->cfg.stem_width * c->stem_h * c->stem_w;
    size_t pool = (size_t)m->cfg.stem_width * c->pool_h * c->pool_w;
    size_t maxact = stem, total = 0; /* maxact: the largest activation of one image */
    int hh = c->pool_h, ww = c->pool_w;
    for (int i = 0; i < m->nblocks; i++) {
        const resnet_bottleneck *b = &m->blocks[i];
        resnet_cache_block *cb = &c->blocks[i];
        cb->in_h = hh, cb->in_w = ww;
        cb->out_h = out_size(hh, 3, b->stride, 1), cb->out_w = out_size(ww, 3, b->stride, 1);
        if (cb->out_h < 1 || cb->out_w < 1) die("resnet: input %dx%d is too small", h, w);
        size_t in1 = (size_t)b->width * hh * ww, mid = (size_t)b->width * cb->out_h * cb->out_w;
        size_t out = (size_t)b->out_ch * cb->out_h * cb->out_w;
        if (in1 > maxact) maxact = in1;
        if (out > maxact) maxact = out;
        if (train) total += 2 * in1 + 2 * mid + (b->down.w ? 3 : 2) * out + 4 * (size_t)(b->width + b->out_ch);
        hh = cb->out_h, ww = cb->out_w;
    }
    const int l3 = m->stage_end[2] - 1;
    c->layer3_ch = m->blocks[l3].out_ch, c->layer3_h = c->blocks[l3].out_h, c->layer3_w = c->blocks[l3].out_w;
    size_t l3size = (size_t)c->layer3_ch * c->layer3_h * c->layer3_w;
    if (train) {
        total = total * B + B * (2 * stem + pool) + 2 * (size_t)m->cfg.stem_width;
        c->gsize = B * maxact;
        total += 4 * c->gsize;
    } else {
        /* two block inputs/outputs in turn, c1/a1, c2/a2, the downsample branch, layer3's output */
        c->gsize = B * maxact;
        total = 5 * c->gsize + B * l3size;
    }
    /* every tensor starts on a 16-float (64-byte) boundary */
    total += 16 * (size_t)(16 + 8 * m->nblocks);
    c->mem = xmalloc_aligned(total * sizeof(float));
    float *p = c->mem;
#define TAKE(n) (p += (((size_t)(n) + 15) & ~(size_t)15), p - (((size_t)(n) + 15) & ~(size_t)15))
    if (train) {
        c->stem_c = TAKE(B * stem), c->stem_a = TAKE(B * stem), c->stem_pool = TAKE(B * pool);
        c->stem_stats = TAKE(2 * m->cfg.stem_width);
        for (int i = 0; i < m->nblocks; i++) {
            const resnet_bottleneck *b = &m->blocks[i];
            resnet_cache_block *cb = &c->blocks[i];
            size_t in1 = B * b->width * cb->in_h * cb->in_w, mid = B * b->width * cb->out_h * cb->out_w;
            size_t out = B * b->out_ch * cb->out_h * cb->out_w;
            cb->c1 = TAKE(in1), cb->a1 = TAKE(in1), cb->c2 = TAKE(mid), cb->a2 = TAKE(mid);
            cb->c3 = TAKE(out), cb->out = TAKE(out), cb->cd = b->down.w ? TAKE(out) : NULL;
            cb->stats = TAKE(4 * (size_t)(b->width + b->out_ch));
        }
        for (int k = 0; k < 4; k++) c->g[k] = TAKE(c->gsize);
        c->layer3 = c->blocks[l3].out;
    } else {
        for (int k = 0; k < 4; k++) c->g[k] = TAKE(c->gsize);
        float *extra = TAKE(c->gsize);
        c->stem_c = c->stem_a = c->g[0];
        c->stem_pool = c->g[1];
        c->layer3 = TAKE(B * l3size);
        /* block i reads the previous output and writes to the other of g[1], extra */
        for (int i = 0; i < m->nblocks; i++) {
            resnet_cache_block *cb = &c->blocks[i];
            cb->c1 = cb->a1 = c->g[2];
            cb->c2 = cb->a2 = c->g[3];
            cb->cd = c->g[0];
            cb->out = cb->c3 = (i % 2 == 0) ? extra : c->g[1];
            if (i == l3) cb->out = cb->c3 = c->layer3;
        }
    }
#undef TAKE
    CHECK((size_t)(p - c->mem) <= total);
    c->pooled_in = c->blocks[m->nblocks - 1].out;
}

void resnet_cache_free(resnet_cache *c) {
    free(c->mem);
    free(c->blocks);
    memset(c, 0, sizeof *c);
}

/* ---- forward ------------------------------------------------------------ */

static void conv_fwd(float *out, const float *inp, const resnet_conv *cv, int batch, int h, int w) {
    conv2d_dims d = cv->d;
    d.batch = batch, d.in_h = h, d.in_w = w;
    conv2d_forward(out, inp, cv->w, NULL, &d);
}

/* out = BN(inp) (train: batch statistics into stats [2*ch], running ones updated) */
static void bn_fwd(float *out, const float *inp, resnet_bn *bn, float *stats, int batch, int hw, int train,
                   const resnet *m) {
    if (train) {
        batchnorm_forward_train(out, stats, stats + bn->ch, bn->running_mean, bn->running_var, inp, bn->w, bn->b,
                                batch, bn->ch, hw, m->momentum, m->eps);
        *bn->num_batches_tracked += 1.0f;
    } else {
        batchnorm_forward_eval(out, inp, bn->running_mean, bn->running_var, bn->w, bn->b, batch, bn->ch, hw,
                               m->eps);
    }
}

void resnet_forward(float *feat, resnet *m, resnet_cache *c, const float *inp, int batch, int train) {
    if (batch < 1 || batch > c->batch) die("resnet_forward: batch %d, the cache holds 1..%d", batch, c->batch);
    if (train && !c->train) die("resnet_forward: training mode needs a cache allocated for training");
    const int C0 = m->cfg.stem_width;
    const size_t sh = (size_t)c->stem_h * c->stem_w;
    conv_fwd(c->stem_c, inp, &m->conv1, batch, c->h, c->w);
    bn_fwd(c->stem_a, c->stem_c, &m->bn1, c->stem_stats, batch, (int)sh, train, m);
    relu_forward(c->stem_a, c->stem_a, (size_t)batch * C0 * sh);
    maxpool2d_forward(c->stem_pool, c->stem_a,
                      &(pool2d_dims){batch, C0, c->stem_h, c->stem_w, 3, 3, 2, 2, 1, 1});
    const float *x = c->stem_pool;
    for (int i = 0; i < m->nblocks; i++) {
        resnet_bottleneck *b = &m->blocks[i];
        resnet_cache_block *cb = &c->blocks[i];
        const int hw_in = cb->in_h * cb->in_w, hw = cb->out_h * cb->out_w;
        float *st = cb->stats; /* bn1, bn2, bn3, down_bn: (mean, rstd) each, only in train caches */
        conv_fwd(cb->c1, x, &b->conv1, batch, cb->in_h, cb->in_w);
        bn_fwd(cb->a1, cb->c1, &b->bn1, st, batch, hw_in, train, m);
        relu_forward(cb->a1, cb->a1, (size_t)batch * b->width * hw_in);
        conv_fwd(cb->c2, cb->a1, &b->conv2, batch, cb->in_h, cb->in_w);
        bn_fwd(cb->a2, cb->c2, &b->bn2, st ? st + 2 * b->width : NULL, batch, hw, train, m);
        relu_forward(cb->a2, cb->a2, (size_t)batch * b->width * hw);
        conv_fwd(cb->c3, cb->a2, &b->conv3, batch, cb->out_h, cb->out_w);
        bn_fwd(cb->out, cb->c3, &b->bn3, st ? st + 4 * b->width : NULL, batch, hw, train, m);
        const size_t n = (size_t)batch * b->out_ch * hw;
        const float *id = x;
        if (b->down.w) {
            /* a train cache keeps cd (the BN input) and puts the BN output in
             * backward scratch; an eval cache normalises in place */
            float *dn = c->train ? c->g[0] : cb->cd;
            conv_fwd(cb->cd, x, &b->down, batch, cb->in_h, cb->in_w);
            bn_fwd(dn, cb->cd, &b->down_bn, st ? st + 4 * b->width + 2 * b->out_ch : NULL, batch, hw, train, m);
            id = dn;
        }
        float *o = cb->out;
#pragma omp parallel for simd schedule(static) if (n > 32768)
        for (size_t j = 0; j < n; j++) {
            float v = o[j] + id[j];
            o[j] = v < 0.0f ? 0.0f : v; /* relu(bn3 + identity), NaN passes as in relu_forward */
        }
        x = cb->out;
    }
    const resnet_cache_block *last = &c->blocks[m->nblocks - 1];
    global_avgpool_forward(feat, last->out, batch, m->feat_dim, last->out_h, last->out_w);
    c->last_batch = batch, c->last_train = train;
}

/* ---- backward ------------------------------------------------------------ */

static void zero(float *p, size_t n) {
#pragma omp parallel for schedule(static) if (n > 262144)
    for (size_t i = 0; i < n; i++) p[i] = 0.0f;
}

static void conv_bwd(float *dinp, resnet_conv *cv, const float *dout, const float *inp, int batch, int h, int w) {
    conv2d_dims d = cv->d;
    d.batch = batch, d.in_h = h, d.in_w = w;
    conv2d_backward(dinp, cv->dw, NULL, dout, inp, cv->w, &d);
}

/* dinp = (zeroed, then +=) BN backward; stats = (mean [ch], rstd [ch]) */
static void bn_bwd(float *dinp, resnet_bn *bn, const float *dout, const float *inp, const float *stats, int batch,
                   int hw) {
    zero(dinp, (size_t)batch * bn->ch * hw);
    batchnorm_backward(dinp, bn->dw, bn->db, dout, inp, bn->w, stats, stats + bn->ch, batch, bn->ch, hw);
}

/* dinp = (zeroed, then +=) dout where out > 0 */
static void relu_bwd(float *dinp, const float *dout, const float *out, size_t n) {
    zero(dinp, n);
    relu_backward(dinp, dout, out, n);
}

void resnet_backward(float *dinp, resnet *m, resnet_cache *c, const float *dfeat, const float *inp) {
    resnet_backward_layer3(dinp, m, c, dfeat, NULL, inp);
}

void resnet_backward_layer3(float *dinp, resnet *m, resnet_cache *c, const float *dfeat, const float *dlayer3,
                            const float *inp) {
    if (!c->train || !c->last_train) die("resnet_backward: the last forward was not in training mode");
    const int batch = c->last_batch;
    float *gout = c->g[0], *gin = c->g[1], *s1 = c->g[2], *s2 = c->g[3];
    const resnet_cache_block *last = &c->blocks[m->nblocks - 1];
    zero(gout, (size_t)batch * m->feat_dim * last->out_h * last->out_w);
    if (dfeat) global_avgpool_backward(gout, dfeat, batch, m->feat_dim, last->out_h, last->out_w);
    const int l3 = m->stage_end[2] - 1;
    for (int i = m->nblocks - 1; i >= 0; i--) {
        resnet_bottleneck *b = &m->blocks[i];
        const resnet_cache_block *cb = &c->blocks[i];
        if (i == l3 && dlayer3) { /* gout is d(layer3's output) here */
            const size_t n3 = (size_t)batch * c->layer3_ch * c->layer3_h * c->layer3_w;
#pragma omp parallel for simd schedule(static) if (n3 > 65536)
            for (size_t j = 0; j < n3; j++) gout[j] += dlayer3[j];
        }
        const float *x = i ? c->blocks[i - 1].out : c->stem_pool;
        const int hw_in = cb->in_h * cb->in_w, hw = cb->out_h * cb->out_w;
        const float *st = cb->stats;
        const size_t n = (size_t)batch * b->out_ch * hw, n_in = (size_t)batch * b->in_ch * hw_in;
        relu_bwd(s1, gout, cb->out, n); /* s1 = d(bn3 + identity) */
        if (b->down.w) {
            zero(gin, n_in);
            bn_bwd(s2, &b->down_bn, s1, cb->cd, st + 4 * b->width + 2 * b->out_ch, batch, hw);
            conv_bwd(gin, &b->down, s2, x, batch, cb->in_h, cb->in_w);
        } else {
            memcpy(gin, s1, n * sizeof(float)); /* identity shortcut */
        }
        bn_bwd(s2, &b->bn3, s1, cb->c3, st + 4 * b->width, batch, hw);           /* s2 = dc3 */
        zero(s1, (size_t)batch * b->width * hw);
        conv_bwd(s1, &b->conv3, s2, cb->a2, batch, cb->out_h, cb->out_w);         /* s1 = da2 */
        relu_bwd(s2, s1, cb->a2, (size_t)batch * b->width * hw);                  /* s2 = d(bn2 out) */
        bn_bwd(s1, &b->bn2, s2, cb->c2, st + 2 * b->width, batch, hw);            /* s1 = dc2 */
        zero(s2, (size_t)batch * b->width * hw_in);
        conv_bwd(s2, &b->conv2, s1, cb->a1, batch, cb->in_h, cb->in_w);           /* s2 = da1 */
        relu_bwd(s1, s2, cb->a1, (size_t)batch * b->width * hw_in);               /* s1 = d(bn1 out) */
        bn_bwd(s2, &b->bn1, s1, cb->c1, st, batch, hw_in);                        /* s2 = dc1 */
        conv_bwd(gin, &b->conv1, s2, x, batch, cb->in_h, cb->in_w);               /* gin += dx */
        float *t = gout;
        gout = gin, gin = t;
    }
    /* stem: gout = d(maxpool output) */
    const int C0 = m->cfg.stem_width;
    const size_t sh = (size_t)c->stem_h * c->stem_w, ns = (size_t)batch * C0 * sh;
    zero(s1, ns);
    maxpool2d_backward(s1, gout, c->stem_a, &(pool2d_dims){batch, C0, c->stem_h, c->stem_w, 3, 3, 2, 2, 1, 1});
    relu_bwd(s2, s1, c->stem_a, ns);
    bn_bwd(s1, &m->bn1, s2, c->stem_c, c->stem_stats, batch, (int)sh);
    conv_bwd(dinp, &m->conv1, s1, inp, batch, c->h, c->w);
}
