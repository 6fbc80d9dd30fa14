/* vae.c — diffusers' AutoencoderKL decoder on the CPU (see vae.h): the
 * config checks, the weight loader (one block for all parameters, filled
 * tensor by tensor from the safetensors files) and the forward pass over
 * three ping-pong activation buffers. */
#include "vae.h"
#include "vae_model.h"

#include "attention.h"
#include "common.h"
#include "conv2d.h"
#include "eltwise.h"
#include "gemm.h"
#include "json.h"
#include "norm.h"
#include "safetensors.h"
#include "upsample.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- config ----------------------------------------------------------------- */

static void config_read(vae_config *c, const json_t *j, const char *where) {
    if (!json_is_object(j)) die("%s: not a JSON object", where);
    const char *cls = json_get_str(j, "_class_name", "AutoencoderKL", where);
    if (strcmp(cls, "AutoencoderKL"))
        die("%s: _class_name is \"%s\"; only AutoencoderKL (the Stable Diffusion VAE) is supported", where, cls);
    c->latent_channels = (int)json_get_int(j, "latent_channels", 4, where);
    c->out_channels = (int)json_get_int(j, "out_channels", 3, where);
    c->layers_per_block = (int)json_get_int(j, "layers_per_block", 1, where);
    c->groups = (int)json_get_int(j, "norm_num_groups", 32, where);
    c->mid_attention = json_get_bool(j, "mid_block_add_attention", 1, where);
    c->post_quant_conv = json_get_bool(j, "use_post_quant_conv", 1, where);
    c->scaling_factor = (float)json_get_num(j, "scaling_factor", 0.18215, where);
    if (c->latent_channels < 1 || c->latent_channels > 4096) die("%s: latent_channels %d is out of range", where, c->latent_channels);
    if (c->out_channels < 1 || c->out_channels > 4096) die("%s: out_channels %d is out of range", where, c->out_channels);
    if (c->layers_per_block < 0 || c->layers_per_block > 64)
        die("%s: layers_per_block %d is out of range", where, c->layers_per_block);
    if (c->groups < 1) die("%s: norm_num_groups %d is out of range", where, c->groups);
    if (!(c->scaling_factor > 0) || !isfinite(c->scaling_factor))
        die("%s: scaling_factor %g is not a positive number", where, (double)c->scaling_factor);

    const json_t *boc = json_object_get(j, "block_out_channels");
    if (!boc) {
        c->n_blocks = 1;               /* diffusers' default (64,) */
        c->block_out[0] = 64;
    } else {
        if (!json_is_array(boc) || json_array_size(boc) < 1 || json_array_size(boc) > VAE_MAX_BLOCKS)
            die("%s: block_out_channels must be a list of 1 to %d channel counts", where, VAE_MAX_BLOCKS);
        c->n_blocks = (int)json_array_size(boc);
        for (int i = 0; i < c->n_blocks; i++) {
            const json_t *e = json_array_get(boc, (size_t)i);
            if (!json_is_integer(e) || json_integer_value(e) < 1 || json_integer_value(e) > 65536)
                die("%s: block_out_channels[%d] is not a channel count", where, i);
            c->block_out[i] = (int)json_integer_value(e);
            if (c->block_out[i] % c->groups)
                die("%s: norm_num_groups %d does not divide block_out_channels[%d] = %d", where, c->groups, i,
                    c->block_out[i]);
        }
    }
    const json_t *ubt = json_object_get(j, "up_block_types");
    if (ubt) {
        if (!json_is_array(ubt) || (int)json_array_size(ubt) != c->n_blocks)
            die("%s: up_block_types must list %d block types (one per block_out_channels entry)", where, c->n_blocks);
        for (int i = 0; i < c->n_blocks; i++) {
            const char *t = json_string_value(json_array_get(ubt, (size_t)i));
            if (!t || strcmp(t, "UpDecoderBlock2D"))
                die("%s: up_block_types[%d] is %s; only UpDecoderBlock2D is supported", where, i, t ? t : "not a string");
        }
    }
    const char *act = json_get_str(j, "act_fn", "silu", where);
    if (strcmp(act, "silu") && strcmp(act, "swish"))
        die("%s: act_fn \"%s\" is not supported (only silu, as Stable Diffusion's VAE)", where, act);
    /* Latent normalisations of later model families, which the SD 1.x/2.x
     * pipelines (latents / scaling_factor) do not apply: refused, not ignored. */
    static const char *const later[] = {"shift_factor", "latents_mean", "latents_std"};
    for (size_t i = 0; i < sizeof later / sizeof *later; i++)
        if (json_has(j, later[i]))
            die("%s: %s is set; VAEs with that latent normalisation (SD3, Flux, ...) are not supported", where, later[i]);
    const char *norm_type = json_get_str(j, "norm_type", "group", where);
    if (strcmp(norm_type, "group")) die("%s: norm_type \"%s\" is not supported (only group)", where, norm_type);
    /* force_upcast only matters in fp16; use_quant_conv only for the encoder. */
}

/* ---- weights ------------------------------------------------------------------- */

/* A parameter to load: its name, shape and where its pointer goes. */
typedef struct vae_param {
    char *name;
    char *alt;                    /* an older name for the same tensor, or NULL */
    int ndim;
    int64_t shape[4];
    float **dst;
    size_t off;
} vae_param;

typedef struct vae_loader {
    vae_param *p;
    int n, cap;
    size_t total;
} vae_loader;

static void want(vae_loader *L, float **dst, const char *alt, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void want(vae_loader *L, float **dst, const char *alt, int ndim, const int64_t *shape, const char *fmt, ...) {
    if (L->n == L->cap) {
        L->cap = L->cap ? 2 * L->cap : 128;
        L->p = xrealloc(L->p, (size_t)L->cap * sizeof *L->p);
    }
    vae_param *p = &L->p[L->n++];
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    p->name = xstrdup(buf);
    p->alt = alt ? xstrdup(alt) : NULL;
    p->ndim = ndim;
    memcpy(p->shape, shape, (size_t)ndim * sizeof *shape);
    p->dst = dst;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    p->off = L->total;
    /* keep every tensor 64-byte aligned inside the block */
    L->total += ((size_t)n + 15) & ~(size_t)15;
}

static void want_conv(vae_loader *L, float **w, float **b, int cout, int cin, int k, const char *name) {
    want(L, w, NULL, 4, (int64_t[]){cout, cin, k, k}, "%s.weight", name);
    want(L, b, NULL, 1, (int64_t[]){cout}, "%s.bias", name);
}

static void want_norm(vae_loader *L, float **w, float **b, int c, const char *name) {
    want(L, w, NULL, 1, (int64_t[]){c}, "%s.weight", name);
    want(L, b, NULL, 1, (int64_t[]){c}, "%s.bias", name);
}

static void want_resnet(vae_loader *L, vae_resnet *r, int cin, int cout, const char *prefix) {
    char n[200];
    r->cin = cin;
    r->cout = cout;
    snprintf(n, sizeof n, "%s.norm1", prefix), want_norm(L, &r->norm1_w, &r->norm1_b, cin, n);
    snprintf(n, sizeof n, "%s.conv1", prefix), want_conv(L, &r->conv1_w, &r->conv1_b, cout, cin, 3, n);
    snprintf(n, sizeof n, "%s.norm2", prefix), want_norm(L, &r->norm2_w, &r->norm2_b, cout, n);
    snprintf(n, sizeof n, "%s.conv2", prefix), want_conv(L, &r->conv2_w, &r->conv2_b, cout, cout, 3, n);
    if (cin != cout) {
        snprintf(n, sizeof n, "%s.conv_shortcut", prefix);
        want_conv(L, &r->short_w, &r->short_b, cout, cin, 1, n);
    } else {
        r->short_w = r->short_b = NULL;
    }
}

/* The projections as diffusers >= 0.14 saves them (to_q, ...) and, as alt,
 * the names of older checkpoints (query, key, value, proj_attn), which
 * diffusers converts on load. */
static void want_attn(vae_loader *L, vae_attn *a, int c, const char *prefix) {
    char n[200];
    snprintf(n, sizeof n, "%s.group_norm", prefix), want_norm(L, &a->norm_w, &a->norm_b, c, n);
    static const char *const names[4] = {"to_q", "to_k", "to_v", "to_out.0"};
    static const char *const olds[4] = {"query", "key", "value", "proj_attn"};
    float **w[4] = {&a->q_w, &a->k_w, &a->v_w, &a->o_w}, **b[4] = {&a->q_b, &a->k_b, &a->v_b, &a->o_b};
    for (int i = 0; i < 4; i++) {
        char alt_w[256], alt_b[256];
        snprintf(alt_w, sizeof alt_w, "%s.%s.weight", prefix, olds[i]);
        snprintf(alt_b, sizeof alt_b, "%s.%s.bias", prefix, olds[i]);
        want(L, w[i], alt_w, 2, (int64_t[]){c, c}, "%s.%s.weight", prefix, names[i]);
        want(L, b[i], alt_b, 1, (int64_t[]){c}, "%s.%s.bias", prefix, names[i]);
    }
}

/* The weight file that holds name (NULL if the part's index lacks it). */
static st_file *file_for(const diffusers_part *part, st_file **open, const char *name) {
    const char *path = diffusers_weight_file(part, name);
    if (!path) return NULL;
    for (int i = 0; i < part->n_weights; i++)
        if (!strcmp(part->weight_paths[i], path)) {
            if (!open[i]) open[i] = st_open(path);
            return open[i];
        }
    return NULL;
}

/* Reads p into dst; returns NULL, or a message (fresh memory) naming the file
 * and tensor that is missing or mis-shaped, so the caller can free what it
 * holds before dying. */
static char *load_param(const diffusers_part *part, st_file **open, const vae_param *p, float *dst) {
    const char *name = p->name;
    st_file *f = file_for(part, open, name);
    const st_entry *e = f ? st_find(f, name) : NULL;
    if (!e && p->alt) {
        st_file *g = file_for(part, open, p->alt);
        const st_entry *ea = g ? st_find(g, p->alt) : NULL;
        if (ea) f = g, e = ea, name = p->alt;
    }
    if (!e) {
        if (part->weight_map) return xasprintf("%s/: missing tensor \"%s\" (not in %s)", part->dir, p->name, part->index_path);
        return xasprintf("%s: missing tensor \"%s\"", part->weight_paths[0], p->name);
    }
    int ndim = p->ndim;
    int64_t shape[4];
    memcpy(shape, p->shape, sizeof shape);
    /* Attention projections of very old checkpoints are 1x1 convolutions
     * [c, c, 1, 1]; the same numbers as the Linear [c, c]. */
    if (ndim == 2 && e->ndim == 4 && e->shape[2] == 1 && e->shape[3] == 1) ndim = 4, shape[2] = shape[3] = 1;
    int same = e->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = e->shape[i] == shape[i];
    if (!same) {
        char want[96], got[96];
        shape_str(want, sizeof want, ndim, shape);
        shape_str(got, sizeof got, e->ndim, e->shape);
        return xasprintf("%s: tensor \"%s\" has shape %s, but the VAE config needs %s", f->path, name, got, want);
    }
    st_read_f32(f, name, ndim, shape, dst);
    return NULL;
}

/* The parameters of v's config, in diffusers' order, into L (pointers into
 * v's layout; vae_load fills them, vae_from_config leaves them NULL). */
static void layout(vae_decoder *v, vae_loader *L) {
    const vae_config *c = &v->cfg;
    int lc = c->latent_channels, nb = c->n_blocks, ctop = c->block_out[nb - 1], nres = c->layers_per_block + 1;
    char n[200];
    if (c->post_quant_conv) want_conv(L, &v->pq_w, &v->pq_b, lc, lc, 1, "post_quant_conv");
    want_conv(L, &v->in_w, &v->in_b, ctop, lc, 3, "decoder.conv_in");
    want_resnet(L, &v->mid_res[0], ctop, ctop, "decoder.mid_block.resnets.0");
    if (c->mid_attention) want_attn(L, &v->mid_attn, ctop, "decoder.mid_block.attentions.0");
    want_resnet(L, &v->mid_res[1], ctop, ctop, "decoder.mid_block.resnets.1");
    v->up_res = xcalloc((size_t)nb * nres, sizeof *v->up_res);
    int ch = ctop;
    for (int i = 0; i < nb; i++) {
        int cout = c->block_out[nb - 1 - i];
        for (int j = 0; j < nres; j++) {
            snprintf(n, sizeof n, "decoder.up_blocks.%d.resnets.%d", i, j);
            want_resnet(L, &v->up_res[i * nres + j], j == 0 ? ch : cout, cout, n);
        }
        ch = cout;
        if (i < nb - 1) {
            snprintf(n, sizeof n, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            want_conv(L, &v->up_w[i], &v->up_b[i], ch, ch, 3, n);
        }
    }
    want_norm(L, &v->out_norm_w, &v->out_norm_b, c->block_out[0], "decoder.conv_norm_out");
    want_conv(L, &v->out_w, &v->out_b, c->out_channels, c->block_out[0], 3, "decoder.conv_out");
    v->n_params = L->total;
}

static void loader_free(vae_loader *L) {
    for (int i = 0; i < L->n; i++) free(L->p[i].name), free(L->p[i].alt);
    free(L->p);
}

vae_decoder *vae_from_config(const json_t *config, const char *where) {
    vae_decoder *v = xcalloc(1, sizeof *v);
    v->source = xstrdup(where);
    config_read(&v->cfg, config, where);
    vae_loader L = {0};
    layout(v, &L);
    loader_free(&L);
    return v;
}

vae_decoder *vae_load(const diffusers_part *part) {
    if (!part->config) die("%s/: no config.json for the VAE", part->dir);
    if (part->n_weights < 1) die("%s/: no VAE weights", part->dir);
    vae_decoder *v = xcalloc(1, sizeof *v);
    v->source = xstrdup(part->dir);
    config_read(&v->cfg, part->config, part->config_path ? part->config_path : part->dir);
    vae_loader L = {0};
    layout(v, &L);

    v->params = xmalloc_aligned(L.total * sizeof(float));
    st_file **open = xcalloc((size_t)part->n_weights, sizeof *open);
    char *err = NULL;
    for (int i = 0; i < L.n && !err; i++) {
        *L.p[i].dst = v->params + L.p[i].off;
        err = load_param(part, open, &L.p[i], *L.p[i].dst);
    }
    loader_free(&L);
    for (int i = 0; i < part->n_weights; i++) st_close(open[i]);
    free(open);
    if (err) { /* everything freed first, so a sanitizer build sees no leak */
        static char msg[1024];
        snprintf(msg, sizeof msg, "%s", err);
        free(err);
        vae_free(v);
        die("%s", msg);
    }
    return v;
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

vae_decoder *vae_load_dir(const char *dir) {
    char *idx = xasprintf("%s/model_index.json", dir);
    char *sub = xasprintf("%s/vae/config.json", dir);
    char *own = xasprintf("%s/config.json", dir);
    vae_decoder *v;
    if (is_file(idx)) {
        diffusers_model *m = diffusers_open(dir, DIFFUSERS_PREFER_FP32);
        v = vae_load(diffusers_part_get(m, "vae"));
        diffusers_close(m);
    } else if (is_file(sub) || is_file(own)) {
        char *d = is_file(sub) ? xasprintf("%s/vae", dir) : xstrdup(dir);
        diffusers_part *p = diffusers_part_open(d, DIFFUSERS_PREFER_FP32);
        v = vae_load(p);
        diffusers_part_free(p);
        free(d);
    } else {
        die("%s/: not a model folder: looked for model_index.json, vae/config.json and config.json", dir);
    }
    free(idx);
    free(sub);
    free(own);
    return v;
}

void vae_free(vae_decoder *v) {
    if (!v) return;
    free(v->params);
    free(v->up_res);
    free(v->source);
    free(v);
}

const vae_config *vae_get_config(const vae_decoder *v) { return &v->cfg; }
const char *vae_source(const vae_decoder *v) { return v->source; }
int vae_upscale(const vae_decoder *v) { return 1 << (v->cfg.n_blocks - 1); }

/* ---- forward ------------------------------------------------------------------ */

static void conv(float *out, const float *inp, const float *w, const float *b, int batch, int cin, int cout,
                 int h, int wd, int k) {
    conv2d_dims d = {batch, cin, h, wd, cout, k, k, 1, 1, k / 2, k / 2};
    conv2d_forward(out, inp, w, b, &d);
}

/* x [batch, cin, h, w] -> x [batch, cout, h, w] in place; a, b scratch of the
 * same capacity (max(cin, cout) * h * w per latent). */
static void resnet_forward(float *x, float *a, float *b, const vae_resnet *r, int batch, int h, int w, int groups) {
    int hw = h * w;
    size_t nout = (size_t)batch * r->cout * hw;
    groupnorm_silu_forward(a, x, r->norm1_w, r->norm1_b, batch, r->cin, hw, groups, VAE_EPS);
    conv(b, a, r->conv1_w, r->conv1_b, batch, r->cin, r->cout, h, w, 3);
    groupnorm_silu_forward(b, b, r->norm2_w, r->norm2_b, batch, r->cout, hw, groups, VAE_EPS);
    conv(a, b, r->conv2_w, r->conv2_b, batch, r->cout, r->cout, h, w, 3);
    if (r->short_w) {
        conv(b, x, r->short_w, r->short_b, batch, r->cin, r->cout, h, w, 1);
        eltwise_add(x, b, a, nout);
    } else {
        eltwise_add(x, x, a, nout);
    }
}

/* x [batch, c, hw] += to_out(attention(q, k, v of groupnorm(x))), one head of
 * c channels, scale 1/sqrt(c) (diffusers' Attention with residual_connection
 * and rescale_output_factor 1). a: [batch, c, hw] scratch; s: 4 x that. */
static void attn_forward(float *x, float *a, float *s, const vae_attn *p, int batch, int c, int hw, int groups) {
    size_t n = (size_t)batch * c * hw;
    float *t = s, *q = s + n, *k = s + 2 * n, *v = s + 3 * n;
    int rows = batch * hw;
    groupnorm_forward(a, x, p->norm_w, p->norm_b, batch, c, hw, groups, VAE_EPS);
    eltwise_transpose(t, a, batch, c, hw);                 /* [batch, hw, c] tokens */
    linear_forward(q, t, p->q_w, p->q_b, rows, c, c);
    linear_forward(k, t, p->k_w, p->k_b, rows, c, c);
    linear_forward(v, t, p->v_w, p->v_b, rows, c, c);
    attention_forward(q, q, k, v, batch, 1, hw, hw, c, 1.0f / sqrtf((float)c), 0, NULL);
    linear_forward(t, q, p->o_w, p->o_b, rows, c, c);
    eltwise_transpose(a, t, batch, hw, c);                 /* back to [batch, c, hw] */
    eltwise_add(x, x, a, n);
}

size_t vae_max_activation(const vae_config *c, int h, int w) {
    int nb = c->n_blocks, ch = c->block_out[nb - 1];
    size_t m = (size_t)ch * h * w;
    if ((size_t)c->latent_channels * h * w > m) m = (size_t)c->latent_channels * h * w;
    size_t hw = (size_t)h * w;
    for (int i = 0; i < nb; i++) {
        int cout = c->block_out[nb - 1 - i];
        size_t big = (size_t)(ch > cout ? ch : cout) * hw;
        if (big > m) m = big;
        ch = cout;
        if (i < nb - 1) {
            hw *= 4;
            if ((size_t)ch * hw > m) m = (size_t)ch * hw;
        }
    }
    return m;
}

size_t vae_decode_scratch_bytes(const vae_decoder *v, int batch, int h, int w) {
    const vae_config *c = &v->cfg;
    size_t attn = c->mid_attention ? 4 * (size_t)c->block_out[c->n_blocks - 1] * h * w : 0;
    return ((3 * vae_max_activation(c, h, w)) + attn) * (size_t)batch * sizeof(float);
}

void vae_decode(const vae_decoder *v, float *out, const float *latents, int batch, int h, int w) {
    const vae_config *c = &v->cfg;
    if (!v->params) die("vae_decode: the VAE of %s was built from its config alone (no weights)", v->source);
    if (batch < 1 || h < 1 || w < 1) die("vae_decode: bad latent size [%d, %d, %d, %d]", batch, c->latent_channels, h, w);
    int nb = c->n_blocks, lc = c->latent_channels, g = c->groups, nres = c->layers_per_block + 1;
    int64_t side = (int64_t)(h > w ? h : w) << (nb - 1);
    if (side > 65536) die("vae_decode: latents of %d x %d make an image too large to decode", h, w);
    size_t cap = vae_max_activation(c, h, w) * (size_t)batch;
    float *x = xmalloc_aligned(cap * sizeof(float));
    float *a = xmalloc_aligned(cap * sizeof(float));
    float *b = xmalloc_aligned(cap * sizeof(float));

    int ch = c->block_out[nb - 1];
    if (v->pq_w) {
        conv(a, latents, v->pq_w, v->pq_b, batch, lc, lc, h, w, 1);
        conv(x, a, v->in_w, v->in_b, batch, lc, ch, h, w, 3);
    } else {
        conv(x, latents, v->in_w, v->in_b, batch, lc, ch, h, w, 3);
    }

    resnet_forward(x, a, b, &v->mid_res[0], batch, h, w, g);
    if (c->mid_attention) {
        float *s = xmalloc_aligned(4 * (size_t)batch * ch * h * w * sizeof(float));
        attn_forward(x, a, s, &v->mid_attn, batch, ch, h * w, g);
        free(s);
    }
    resnet_forward(x, a, b, &v->mid_res[1], batch, h, w, g);

    for (int i = 0; i < nb; i++) {
        for (int j = 0; j < nres; j++) resnet_forward(x, a, b, &v->up_res[i * nres + j], batch, h, w, g);
        ch = c->block_out[nb - 1 - i];
        if (i < nb - 1) {
            upsample_nearest2x_forward(a, x, batch, ch, h, w);
            h *= 2, w *= 2;
            conv(x, a, v->up_w[i], v->up_b[i], batch, ch, ch, h, w, 3);
        }
    }
    groupnorm_silu_forward(a, x, v->out_norm_w, v->out_norm_b, batch, ch, h * w, g, VAE_EPS);
    conv(out, a, v->out_w, v->out_b, batch, ch, c->out_channels, h, w, 3);
    free(x);
    free(a);
    free(b);
}

/* ---- tiled decoding ------------------------------------------------------------ */

/* b's first rows take a's last ones, weighted as diffusers' blend_v: the
 * weights are float64 fractions rounded to float32 (a tensor times a Python
 * float), each product rounded, then summed.
 *   a [c, ah, w], b [c, bh, w] (b changed in place) */
static void blend_v(const float *a, int ah, float *b, int bh, int c, int w, int extent) {
    int e = ah < bh ? ah : bh;
    if (extent < e) e = extent;
    for (int y = 0; y < e; y++) {
        float wb = (float)((double)y / e), wa = (float)(1.0 - (double)y / e);
        for (int ch = 0; ch < c; ch++) {
            const float *ar = a + ((size_t)ch * ah + (ah - e + y)) * w;
            float *br = b + ((size_t)ch * bh + y) * w;
            for (int x = 0; x < w; x++) {
                float p = ar[x] * wa, q = br[x] * wb;
                br[x] = p + q;
            }
        }
    }
}

/* The same across columns (blend_h).  a [c, h, aw], b [c, h, bw] */
static void blend_h(const float *a, int aw, float *b, int bw, int c, int h, int extent) {
    int e = aw < bw ? aw : bw;
    if (extent < e) e = extent;
    for (int x = 0; x < e; x++) {
        float wb = (float)((double)x / e), wa = (float)(1.0 - (double)x / e);
        for (size_t r = 0; r < (size_t)c * h; r++) {
            float p = a[r * aw + (aw - e + x)] * wa, q = b[r * bw + x] * wb;
            b[r * bw + x] = p + q;
        }
    }
}

void vae_decode_tiled_with(const vae_decoder *v, vae_decode_fn decode, void *ctx, float *out, const float *latents,
                           int batch, int h, int w, int tile_px) {
    const vae_config *c = &v->cfg;
    int s = vae_upscale(v), lc = c->latent_channels, oc = c->out_channels;
    if (tile_px <= 0 || (h * s <= tile_px && w * s <= tile_px)) {
        decode(ctx, out, latents, batch, h, w);
        return;
    }
    if (tile_px % s || tile_px / s < 4) die("vae_decode_tiled: tile of %d pixels is not a multiple of %d (>= %d)", tile_px, s, 4 * s);
    /* diffusers: tile_latent_min_size, overlap_size = int(T * 0.75),
     * blend_extent = int(tile * 0.25), row_limit = tile - blend_extent */
    int T = tile_px / s, stride = T * 3 / 4, extent = tile_px / 4, limit = tile_px - extent;
    int ni = (h + stride - 1) / stride, nj = (w + stride - 1) / stride;
    float **tiles = xcalloc((size_t)ni * nj, sizeof *tiles);
    float *z = xmalloc_aligned((size_t)lc * T * T * sizeof(float));
    int H = h * s, W = w * s;
    for (int b = 0; b < batch; b++) {
        const float *lat = latents + (size_t)b * lc * h * w;
        for (int i = 0; i < ni; i++)
            for (int j = 0; j < nj; j++) {
                int th = h - i * stride < T ? h - i * stride : T, tw = w - j * stride < T ? w - j * stride : T;
                for (int ch = 0; ch < lc; ch++)
                    for (int y = 0; y < th; y++)
                        memcpy(z + ((size_t)ch * th + y) * tw, lat + ((size_t)ch * h + i * stride + y) * w + j * stride,
                               (size_t)tw * sizeof(float));
                float *t = tiles[i * nj + j] = xmalloc_aligned((size_t)oc * th * s * tw * s * sizeof(float));
                decode(ctx, t, z, 1, th, tw);
            }
        /* blend in diffusers' order, in place (a tile blended into the next
         * has already had its own neighbours blended in) */
        float *o = out + (size_t)b * oc * H * W;
        for (int i = 0; i < ni; i++)
            for (int j = 0; j < nj; j++) {
                int th = (h - i * stride < T ? h - i * stride : T) * s, tw = (w - j * stride < T ? w - j * stride : T) * s;
                float *t = tiles[i * nj + j];
                if (i > 0) {
                    int ah = (h - (i - 1) * stride < T ? h - (i - 1) * stride : T) * s;
                    blend_v(tiles[(i - 1) * nj + j], ah, t, th, oc, tw, extent);
                }
                if (j > 0) {
                    int aw = (w - (j - 1) * stride < T ? w - (j - 1) * stride : T) * s;
                    blend_h(tiles[i * nj + j - 1], aw, t, tw, oc, th, extent);
                }
                int ch_ = th < limit ? th : limit, cw = tw < limit ? tw : limit;
                for (int ch = 0; ch < oc; ch++)
                    for (int y = 0; y < ch_; y++)
                        memcpy(o + ((size_t)ch * H + i * limit + y) * W + j * limit, t + ((size_t)ch * th + y) * tw,
                               (size_t)cw * sizeof(float));
            }
        for (int k = 0; k < ni * nj; k++) free(tiles[k]), tiles[k] = NULL;
    }
    free(tiles);
    free(z);
}

static void cpu_decode(void *v, float *out, const float *latents, int batch, int h, int w) {
    vae_decode(v, out, latents, batch, h, w);
}

void vae_decode_tiled(const vae_decoder *v, float *out, const float *latents, int batch, int h, int w, int tile_px) {
    vae_decode_tiled_with(v, cpu_decode, (void *)v, out, latents, batch, h, w, tile_px);
}
