/* unet.c — diffusers' UNet2DConditionModel: the config read (and refused
 * where it leaves the SD family), the model built block by block exactly as
 * UNet2DConditionModel.__init__ lays it out (so every weight is found by its
 * state-dict key and its shape checked), and the forward pass: timestep
 * embedding, conv_in, down blocks collecting skips, mid block, up blocks
 * consuming them, GroupNorm + SiLU, conv_out. Layers are in unet_blocks.c. */
#include "unet.h"

#include "activation.h"
#include "common.h"
#include "eltwise.h"
#include "gemm.h"
#include "json.h"
#include "norm.h"
#include "safetensors.h"
#include "unet_blocks.h"
#include "unet_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- config ------------------------------------------------------------------ */

typedef struct cfg_ctx { const json_t *c; const char *path; } cfg_ctx;

static void refuse(const cfg_ctx *x, const char *key) __attribute__((noreturn));
static void refuse(const cfg_ctx *x, const char *key) {
    char *v = json_dumps(json_object_get(x->c, key), JSON_ENCODE_ANY | JSON_COMPACT);
    die("%s: unsupported %s %s (this UNet implements the Stable Diffusion 1.x/2.x family)", x->path, key,
        v ? v : "?");
}

/* The key must be absent or null. */
static void need_null(const cfg_ctx *x, const char *key) {
    if (json_has(x->c, key)) refuse(x, key);
}
static void need_str(const cfg_ctx *x, const char *key, const char *dflt, const char *want) {
    const char *s = json_get_str(x->c, key, dflt, x->path);
    if (strcmp(s, want)) refuse(x, key);
}
static void need_false(const cfg_ctx *x, const char *key) {
    const json_t *v = json_object_get(x->c, key);
    if (!v || json_is_null(v) || json_is_false(v)) return;
    if (json_is_array(v)) {                   /* a per-block list, all false */
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e) if (!json_is_false(e)) refuse(x, key);
        return;
    }
    refuse(x, key);
}

/* An int, or a list of n ints (one per down block): out[n]. */
static void int_or_list(const cfg_ctx *x, const char *key, long dflt, int n, int *out) {
    const json_t *v = json_object_get(x->c, key);
    if (!v || json_is_null(v)) {
        for (int i = 0; i < n; i++) out[i] = (int)dflt;
    } else if (json_is_integer(v)) {
        for (int i = 0; i < n; i++) out[i] = (int)json_integer_value(v);
    } else if (json_is_array(v) && (int)json_array_size(v) == n) {
        for (int i = 0; i < n; i++) {
            const json_t *e = json_array_get(v, i);
            if (!json_is_integer(e)) refuse(x, key);
            out[i] = (int)json_integer_value(e);
        }
    } else {
        refuse(x, key);
    }
    for (int i = 0; i < n; i++)
        if (out[i] <= 0) refuse(x, key);
}

static int str_list(const cfg_ctx *x, const char *key, const char **out) {
    const json_t *v = json_object_get(x->c, key);
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > UNET_MAX_LEVELS) refuse(x, key);
    for (size_t i = 0; i < json_array_size(v); i++) {
        out[i] = json_string_value(json_array_get(v, i));
        if (!out[i]) refuse(x, key);
    }
    return (int)json_array_size(v);
}

/* ---- building ------------------------------------------------------------------ */

static void resnet_init(resnet_block *rb, const unet_model *m, int cin, int cout, float out_scale) {
    rb->cin = cin, rb->cout = cout, rb->temb_dim = m->tdim, rb->groups = m->groups;
    rb->eps = m->eps, rb->out_scale = out_scale;
}

static void transformer_init(transformer2d *tr, const unet_model *m, const cfg_ctx *x, int ch, int heads,
                             int n_layers, int ctx, int linear_proj) {
    if (heads <= 0 || ch / heads <= 0) refuse(x, "attention_head_dim");
    tr->ch = ch, tr->heads = heads, tr->head_dim = ch / heads, tr->inner = heads * (ch / heads);
    tr->ctx_dim = ctx, tr->ff = 4 * tr->inner, tr->groups = m->groups, tr->linear_proj = linear_proj;
    tr->n_layers = n_layers;
    tr->blocks = xcalloc((size_t)n_layers, sizeof *tr->blocks);
}

static void level_alloc(unet_level *lv, int n, int cross) {
    lv->n = n, lv->cross = cross;
    lv->res = xcalloc((size_t)n, sizeof *lv->res);
    lv->attn = cross ? xcalloc((size_t)n, sizeof *lv->attn) : NULL;
}

static void level_free(unet_level *lv) {
    if (lv->attn)
        for (int j = 0; j < lv->n; j++) free(lv->attn[j].blocks);
    free(lv->attn);
    free(lv->res);
}

/* Reads the config, lays out every block and registers its weights. */
static void unet_build(unet_model *m, const cfg_ctx *x, unet_registry *r) {
    const json_t *c = x->c;
    const char *p = x->path;
    /* what this implementation does not do, refused by name */
    need_null(x, "class_embed_type");
    need_null(x, "num_class_embeds");
    need_null(x, "addition_embed_type");
    need_null(x, "encoder_hid_dim_type");
    need_null(x, "encoder_hid_dim");
    need_null(x, "time_cond_proj_dim");
    need_null(x, "timestep_post_act");
    need_null(x, "time_embedding_act_fn");
    need_null(x, "time_embedding_dim");
    need_null(x, "cross_attention_norm");
    need_null(x, "reverse_transformer_layers_per_block");
    need_null(x, "num_attention_heads");      /* diffusers 0.42 itself refuses it for this class */
    need_str(x, "time_embedding_type", "positional", "positional");
    need_str(x, "resnet_time_scale_shift", "default", "default");
    need_str(x, "mid_block_type", "UNetMidBlock2DCrossAttn", "UNetMidBlock2DCrossAttn");
    need_str(x, "act_fn", "silu", "silu");
    need_str(x, "attention_type", "default", "default");
    need_false(x, "dual_cross_attention");
    need_false(x, "only_cross_attention");
    need_false(x, "mid_block_only_cross_attention");
    need_false(x, "class_embeddings_concat");
    need_false(x, "resnet_skip_time_act");
    if (json_get_int(c, "downsample_padding", 1, p) != 1) refuse(x, "downsample_padding");
    if (!json_has(c, "norm_num_groups")) refuse(x, "norm_num_groups");

    const char *dtypes[UNET_MAX_LEVELS], *utypes[UNET_MAX_LEVELS];
    int L = str_list(x, "down_block_types", dtypes);
    if (str_list(x, "up_block_types", utypes) != L) refuse(x, "up_block_types");
    const json_t *bo = json_object_get(c, "block_out_channels");
    if (!json_is_array(bo) || (int)json_array_size(bo) != L) refuse(x, "block_out_channels");
    for (int i = 0; i < L; i++) {
        const json_t *e = json_array_get(bo, i);
        if (!json_is_integer(e) || json_integer_value(e) <= 0) refuse(x, "block_out_channels");
        m->boc[i] = (int)json_integer_value(e);
    }
    int layers[UNET_MAX_LEVELS], heads[UNET_MAX_LEVELS], tlayers[UNET_MAX_LEVELS];
    int_or_list(x, "layers_per_block", 2, L, layers);
    /* legacy naming: attention_head_dim is the number of heads (num_attention_heads must be null) */
    int_or_list(x, "attention_head_dim", 8, L, heads);
    int_or_list(x, "transformer_layers_per_block", 1, L, tlayers);
    const json_t *cad = json_object_get(c, "cross_attention_dim");
    if (cad && !json_is_null(cad) && !json_is_integer(cad)) refuse(x, "cross_attention_dim");
    int ctx = (int)json_get_int(c, "cross_attention_dim", 1280, p);
    if (ctx <= 0) refuse(x, "cross_attention_dim");
    int linear_proj = json_get_bool(c, "use_linear_projection", 0, p);
    (void)json_get_bool(c, "upcast_attention", 0, p);   /* scores and softmax are always float32 here */

    m->levels = L;
    m->c0 = m->boc[0];
    m->tdim = 4 * m->c0;
    m->groups = (int)json_get_int(c, "norm_num_groups", 32, p);
    if (m->groups <= 0) refuse(x, "norm_num_groups");
    m->eps = (float)json_get_num(c, "norm_eps", 1e-5, p);
    m->flip_sin_to_cos = json_get_bool(c, "flip_sin_to_cos", 1, p);
    m->freq_shift = (float)json_get_num(c, "freq_shift", 0, p);
    m->center_input = json_get_bool(c, "center_input_sample", 0, p);
    m->conv_in_k = (int)json_get_int(c, "conv_in_kernel", 3, p);
    m->conv_out_k = (int)json_get_int(c, "conv_out_kernel", 3, p);
    if (m->conv_in_k <= 0 || m->conv_in_k % 2 == 0) refuse(x, "conv_in_kernel");
    if (m->conv_out_k <= 0 || m->conv_out_k % 2 == 0) refuse(x, "conv_out_kernel");
    float mid_scale = (float)json_get_num(c, "mid_block_scale_factor", 1, p);
    if (!(mid_scale > 0)) refuse(x, "mid_block_scale_factor");
    for (int i = 0; i < L; i++)
        if (m->boc[i] % m->groups) refuse(x, "norm_num_groups");

    unet_info *in = &m->info;
    in->in_channels = (int)json_get_int(c, "in_channels", 4, p);
    in->out_channels = (int)json_get_int(c, "out_channels", 4, p);
    if (in->in_channels <= 0) refuse(x, "in_channels");
    if (in->out_channels <= 0) refuse(x, "out_channels");
    const json_t *ss = json_object_get(c, "sample_size");
    in->sample_size = json_is_integer(ss) ? (int)json_integer_value(ss)
                      : json_is_array(ss) && json_is_integer(json_array_get(ss, 0))
                          ? (int)json_integer_value(json_array_get(ss, 0))
                          : 0;
    in->cross_attention_dim = ctx;
    in->downscale = 1 << (L - 1);

    unet_reg(r, &m->t1_w, "time_embedding", "linear_1.weight", 2, m->tdim, m->c0, 0, 0);
    unet_reg(r, &m->t1_b, "time_embedding", "linear_1.bias", 1, m->tdim, 0, 0, 0);
    unet_reg(r, &m->t2_w, "time_embedding", "linear_2.weight", 2, m->tdim, m->tdim, 0, 0);
    unet_reg(r, &m->t2_b, "time_embedding", "linear_2.bias", 1, m->tdim, 0, 0, 0);
    unet_reg(r, &m->cin_w, "conv_in", "weight", 4, m->c0, in->in_channels, m->conv_in_k, m->conv_in_k);
    unet_reg(r, &m->cin_b, "conv_in", "bias", 1, m->c0, 0, 0, 0);

    char pre[128];
    int out_ch = m->boc[0];
    for (int i = 0; i < L; i++) {
        int cross = !strcmp(dtypes[i], "CrossAttnDownBlock2D");
        if (!cross && strcmp(dtypes[i], "DownBlock2D")) refuse(x, "down_block_types");
        int in_ch = out_ch;
        out_ch = m->boc[i];
        unet_level *lv = &m->down[i];
        level_alloc(lv, layers[i], cross);
        lv->cout = out_ch;
        for (int j = 0; j < lv->n; j++) {
            snprintf(pre, sizeof pre, "down_blocks.%d.resnets.%d", i, j);
            resnet_init(&lv->res[j], m, j == 0 ? in_ch : out_ch, out_ch, 1.0f);
            resnet_block_register(r, &lv->res[j], pre);
            if (cross) {
                snprintf(pre, sizeof pre, "down_blocks.%d.attentions.%d", i, j);
                transformer_init(&lv->attn[j], m, x, out_ch, heads[i], tlayers[i], ctx, linear_proj);
                transformer2d_register(r, &lv->attn[j], pre);
            }
        }
        lv->resample = i != L - 1;
        if (lv->resample) {
            snprintf(pre, sizeof pre, "down_blocks.%d.downsamplers.0.conv", i);
            unet_reg(r, &lv->rs_w, pre, "weight", 4, out_ch, out_ch, 3, 3);
            unet_reg(r, &lv->rs_b, pre, "bias", 1, out_ch, 0, 0, 0);
        }
    }

    int cl = m->boc[L - 1];
    resnet_init(&m->mid_res[0], m, cl, cl, mid_scale);
    resnet_init(&m->mid_res[1], m, cl, cl, mid_scale);
    resnet_block_register(r, &m->mid_res[0], "mid_block.resnets.0");
    transformer_init(&m->mid_attn, m, x, cl, heads[L - 1], tlayers[L - 1], ctx, linear_proj);
    transformer2d_register(r, &m->mid_attn, "mid_block.attentions.0");
    resnet_block_register(r, &m->mid_res[1], "mid_block.resnets.1");

    out_ch = m->boc[L - 1];
    for (int i = 0; i < L; i++) {
        int cross = !strcmp(utypes[i], "CrossAttnUpBlock2D");
        if (!cross && strcmp(utypes[i], "UpBlock2D")) refuse(x, "up_block_types");
        int ri = L - 1 - i;                    /* the reversed per-block lists */
        int prev = out_ch;
        out_ch = m->boc[ri];
        int in_ch = m->boc[ri > 0 ? ri - 1 : 0];
        unet_level *lv = &m->up[i];
        level_alloc(lv, layers[ri] + 1, cross);
        lv->cout = out_ch;
        for (int j = 0; j < lv->n; j++) {
            int skip = j == lv->n - 1 ? in_ch : out_ch;
            int rin = j == 0 ? prev : out_ch;
            snprintf(pre, sizeof pre, "up_blocks.%d.resnets.%d", i, j);
            resnet_init(&lv->res[j], m, rin + skip, out_ch, 1.0f);
            resnet_block_register(r, &lv->res[j], pre);
            if (cross) {
                snprintf(pre, sizeof pre, "up_blocks.%d.attentions.%d", i, j);
                transformer_init(&lv->attn[j], m, x, out_ch, heads[ri], tlayers[ri], ctx, linear_proj);
                transformer2d_register(r, &lv->attn[j], pre);
            }
        }
        lv->resample = i != L - 1;
        if (lv->resample) {
            snprintf(pre, sizeof pre, "up_blocks.%d.upsamplers.0.conv", i);
            unet_reg(r, &lv->rs_w, pre, "weight", 4, out_ch, out_ch, 3, 3);
            unet_reg(r, &lv->rs_b, pre, "bias", 1, out_ch, 0, 0, 0);
        }
    }
    unet_reg(r, &m->nout_w, "conv_norm_out", "weight", 1, m->c0, 0, 0, 0);
    unet_reg(r, &m->nout_b, "conv_norm_out", "bias", 1, m->c0, 0, 0, 0);
    unet_reg(r, &m->cout_w, "conv_out", "weight", 4, in->out_channels, m->c0, m->conv_out_k, m->conv_out_k);
    unet_reg(r, &m->cout_b, "conv_out", "bias", 1, in->out_channels, 0, 0, 0);
}

/* ---- loading ------------------------------------------------------------------- */

unet_model *unet_load(const diffusers_part *part) {
    if (!part->config) die("%s: no config.json for the UNet", part->dir);
    if (part->class_name && strcmp(part->class_name, "UNet2DConditionModel"))
        die("%s: a %s, not a UNet2DConditionModel", part->dir, part->class_name);
    const char *cls = json_get_str(part->config, "_class_name", "UNet2DConditionModel", part->config_path);
    if (strcmp(cls, "UNet2DConditionModel"))
        die("%s: _class_name \"%s\" is not UNet2DConditionModel", part->config_path, cls);
    if (part->n_weights <= 0) die("%s: no UNet weights", part->dir);

    unet_model *m = xcalloc(1, sizeof *m);
    unet_registry r = {0};
    cfg_ctx x = {part->config, part->config_path};
    unet_build(m, &x, &r);

    size_t total = 0;
    for (int i = 0; i < r.n; i++) {
        size_t n = 1;
        for (int d = 0; d < r.p[i].ndim; d++) n *= (size_t)r.p[i].shape[d];
        total += (n + 15) & ~(size_t)15;
    }
    m->params = xmalloc_aligned(total * sizeof(float));
    m->params_floats = total;
    m->info.n_params = 0;
    st_file **files = xcalloc((size_t)part->n_weights, sizeof *files);
    size_t off = 0;
    for (int i = 0; i < r.n; i++) {
        const unet_param *q = &r.p[i];
        const char *path = diffusers_weight_file(part, q->name);
        if (!path) die("%s: no weight \"%s\" in the shard index", part->index_path ? part->index_path : part->dir,
                       q->name);
        int fi = 0;
        while (fi < part->n_weights && strcmp(part->weight_paths[fi], path)) fi++;
        CHECKF(fi < part->n_weights, "weight file %s is not one of the part's", path);
        if (!files[fi]) files[fi] = st_open(path);
        size_t n = 1;
        for (int d = 0; d < q->ndim; d++) n *= (size_t)q->shape[d];
        *q->dst = m->params + off;
        st_read_f32(files[fi], q->name, q->ndim, q->shape, *q->dst);
        off += (n + 15) & ~(size_t)15;
        m->info.n_params += n;
    }
    for (int i = 0; i < part->n_weights; i++) st_close(files[i]);
    free(files);
    unet_registry_free(&r);
    return m;
}

unet_model *unet_from_config(const json_t *config, const char *config_path) {
    unet_model *m = xcalloc(1, sizeof *m);
    unet_registry r = {0};
    cfg_ctx x = {config, config_path};
    unet_build(m, &x, &r);
    for (int i = 0; i < r.n; i++) {
        size_t n = 1;
        for (int d = 0; d < r.p[i].ndim; d++) n *= (size_t)r.p[i].shape[d];
        m->info.n_params += n;
        m->params_floats += (n + 15) & ~(size_t)15;   /* the layout unet_load gives the block */
    }
    unet_registry_free(&r);
    return m;
}

unet_model *unet_load_dir(const char *dir) {
    diffusers_part *p = diffusers_part_open(dir, DIFFUSERS_PREFER_FP32);
    unet_model *m = unet_load(p);
    diffusers_part_free(p);
    return m;
}

void unet_free(unet_model *m) {
    if (!m) return;
    for (int i = 0; i < m->levels; i++) {
        level_free(&m->down[i]);
        level_free(&m->up[i]);
    }
    free(m->mid_attn.blocks);
    free(m->params);
    unet_arena_free(&m->arena);
    free(m);
}

const unet_info *unet_get_info(const unet_model *m) { return &m->info; }

/* ---- forward ------------------------------------------------------------------- */

/* diffusers' get_timestep_embedding in float32 as torch evaluates it:
 * freq_k = exp(-ln(10000) * k / (half - freq_shift)), args t * freq_k,
 * [sin | cos] (or [cos | sin] with flip_sin_to_cos), zero-padded when dim is odd.
 *   out [B, dim];  t [B] */
size_t unet_pingpong_elems(const unet_model *m, int B, int H, int W) {
    /* at level l the widest hidden state is an up block's concat of two block
     * widths from levels l-1..l+1 */
    const unet_info *in = &m->info;
    size_t max_act = (size_t)(in->in_channels > in->out_channels ? in->in_channels : in->out_channels) * H * W;
    for (int l = 0; l < m->levels; l++) {
        int c = m->boc[l];
        if (l > 0 && m->boc[l - 1] > c) c = m->boc[l - 1];
        if (l + 1 < m->levels && m->boc[l + 1] > c) c = m->boc[l + 1];
        size_t s = (size_t)2 * c * (H >> l) * (W >> l);
        if (s > max_act) max_act = s;
    }
    return max_act * (size_t)B;
}

void unet_timestep_embedding(float *out, const float *t, int B, int dim, int flip, float shift) {
    int half = dim / 2;
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * dim;
        for (int k = 0; k < half; k++) {
            float e = (float)-log(10000.0) * (float)k;
            e = e / ((float)half - shift);
            float arg = t[b] * expf(e);
            float s = sinf(arg), c = cosf(arg);
            o[k] = flip ? c : s;
            o[half + k] = flip ? s : c;
        }
        if (dim % 2) o[dim - 1] = 0.0f;
    }
}

typedef struct skip { float *p; int ch; } skip;

void unet_forward(unet_model *m, float *out, const float *sample, const float *timesteps, const float *enc,
                  int B, int H, int W, int T) {
    const unet_info *in = &m->info;
    int L = m->levels, ds = in->downscale;
    if (!m->params) die("unet: a model built from its config alone has no weights to run");
    if (B <= 0 || H <= 0 || W <= 0 || T <= 0) die("unet: bad input size B=%d H=%d W=%d T=%d", B, H, W, T);
    if (H % ds || W % ds)
        die("unet: latent size %dx%d is not a multiple of %d (the UNet halves it %d times)", H, W, ds, L - 1);
    unet_arena *a = &m->arena;
    unet_arena_begin(a);

    /* time embedding: linear_2(silu(linear_1(sinusoids))); every ResNet takes its SiLU */
    float *tproj = unet_arena_alloc(a, (size_t)B * m->c0);
    float *th = unet_arena_alloc(a, (size_t)B * m->tdim);
    float *temb = unet_arena_alloc(a, (size_t)B * m->tdim);
    unet_timestep_embedding(tproj, timesteps, B, m->c0, m->flip_sin_to_cos, m->freq_shift);
    linear_forward(th, tproj, m->t1_w, m->t1_b, B, m->c0, m->tdim);
    silu_forward(th, th, (size_t)B * m->tdim);
    linear_forward(temb, th, m->t2_w, m->t2_b, B, m->tdim, m->tdim);
    silu_forward(temb, temb, (size_t)B * m->tdim);

    size_t max_act = unet_pingpong_elems(m, B, H, W);
    float *X = unet_arena_alloc(a, max_act), *Y = unet_arena_alloc(a, max_act), *sw;
#define SWAP() (sw = X, X = Y, Y = sw)
    skip skips[UNET_MAX_LEVELS * 64];
    int n_skips = 0;
#define PUSH(nch, nhw)                                                                  \
    do {                                                                              \
        CHECK(n_skips < (int)(sizeof skips / sizeof *skips));                         \
        skips[n_skips].p = unet_arena_alloc(a, (size_t)B * (nch) * (nhw));              \
        memcpy(skips[n_skips].p, X, (size_t)B * (nch) * (nhw) * sizeof(float));         \
        skips[n_skips++].ch = (nch);                                                   \
    } while (0)

    int h = H, w = W, c = m->c0;
    const float *x0 = sample;
    if (m->center_input) {
        eltwise_scale(Y, sample, 2.0f, (size_t)B * in->in_channels * H * W);
        for (size_t i = 0; i < (size_t)B * in->in_channels * H * W; i++) Y[i] -= 1.0f;
        x0 = Y;
    }
    unet_conv(X, x0, m->cin_w, m->cin_b, B, in->in_channels, c, H, W, m->conv_in_k, 1);
    PUSH(c, h * w);

    for (int i = 0; i < L; i++) {
        const unet_level *lv = &m->down[i];
        for (int j = 0; j < lv->n; j++) {
            CHECK(lv->res[j].cin == c);
            resnet_block_forward(Y, X, temb, &lv->res[j], B, h, w, a);
            SWAP();
            c = lv->cout;
            if (lv->cross) transformer2d_forward(X, enc, &lv->attn[j], B, h, w, T, a);
            PUSH(c, h * w);
        }
        if (lv->resample) {
            unet_downsample_forward(Y, X, lv->rs_w, lv->rs_b, B, c, h, w);
            SWAP();
            h /= 2, w /= 2;
            PUSH(c, h * w);
        }
    }

    resnet_block_forward(Y, X, temb, &m->mid_res[0], B, h, w, a);
    SWAP();
    transformer2d_forward(X, enc, &m->mid_attn, B, h, w, T, a);
    resnet_block_forward(Y, X, temb, &m->mid_res[1], B, h, w, a);
    SWAP();

    for (int i = 0; i < L; i++) {
        const unet_level *lv = &m->up[i];
        for (int j = 0; j < lv->n; j++) {
            const skip *s = &skips[--n_skips];
            CHECK(n_skips >= 0 && lv->res[j].cin == c + s->ch);
            eltwise_concat_channels(Y, X, c, s->p, s->ch, B, h * w);
            resnet_block_forward(X, Y, temb, &lv->res[j], B, h, w, a);
            c = lv->cout;
            if (lv->cross) transformer2d_forward(X, enc, &lv->attn[j], B, h, w, T, a);
        }
        if (lv->resample) {
            unet_upsample_forward(Y, X, lv->rs_w, lv->rs_b, B, c, h, w, a);
            SWAP();
            h *= 2, w *= 2;
        }
    }
    CHECK(n_skips == 0 && h == H && w == W && c == m->c0);

    groupnorm_silu_forward(Y, X, m->nout_w, m->nout_b, B, c, h * w, m->groups, m->eps);
    unet_conv(out, Y, m->cout_w, m->cout_b, B, c, in->out_channels, H, W, m->conv_out_k, 1);
#undef SWAP
#undef PUSH
}
