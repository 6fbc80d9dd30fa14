/* convirt.c — ConVIRT's model, training step, eval embeddings and checkpoint
 * files (convirt.h), over the ResNet, BERT, head and contrastive layers. */
#include "convirt.h"

#include "common.h"
#include "contrastive.h"
#include "json.h"
#include "rng.h"
#include "safetensors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

convirt_model *convirt_new(const resnet_config *icfg, const char *image_weights, const char *text_dir,
                           int text_layers, int text_random, int proj_hidden, int embed_dim, float temperature,
                           float lambda, uint64_t seed)
{
    convirt_model *m = xcalloc(1, sizeof *m);
    resnet_init(&m->img, icfg, seed);
    if (image_weights) {
        st_file *f = st_open(image_weights);
        resnet_load(&m->img, f, NULL);
        st_close(f);
    }
    if (text_random) {
        char *cfg_path = xasprintf("%s/config.json", text_dir);
        json_t *cfg = json_load_path(cfg_path);
        m->txt = bert_new(cfg, text_layers, cfg_path);
        bert_init_random(m->txt, seed + 2);
        json_decref(cfg);
        free(cfg_path);
    } else {
        m->txt = bert_load(text_dir, text_layers);
    }
    proj_head_create(&m->img_head, m->img.feat_dim, proj_hidden, embed_dim);
    proj_head_create(&m->txt_head, m->txt->cfg.hidden, proj_hidden, embed_dim);
    torch_gen g;
    torch_gen_seed(&g, seed + 1);
    proj_head_init_random(&m->img_head, &g);
    proj_head_init_random(&m->txt_head, &g);
    m->temperature = temperature;
    m->lambda = lambda;
    m->sets[0] = &m->img.params;
    m->sets[1] = &m->txt->params;
    m->sets[2] = &m->img_head.params;
    m->sets[3] = &m->txt_head.params;
    m->prefixes[0] = "image_encoder.";
    m->prefixes[1] = "text_encoder.";
    m->prefixes[2] = "image_projection.";
    m->prefixes[3] = "text_projection.";
    m->bufs[0] = &m->img.buffers;
    m->bufs[1] = &m->img_head.buffers;
    m->bufs[2] = &m->txt_head.buffers;
    m->buf_prefixes[0] = "image_encoder.";
    m->buf_prefixes[1] = "image_projection.";
    m->buf_prefixes[2] = "text_projection.";
    return m;
}

static void batch_free(convirt_model *m)
{
    if (!m->max_batch) return;
    resnet_cache_free(&m->rc);
    bert_cache_free(m->bc);
    proj_head_cache_free(&m->ihc);
    proj_head_cache_free(&m->thc);
    float **bufs[] = {&m->img_feat, &m->txt_feat, &m->img_emb, &m->txt_emb, &m->img_n, &m->txt_n,
                      &m->img_norm, &m->txt_norm, &m->logits, &m->d_img_n, &m->d_txt_n, &m->d_img_emb,
                      &m->d_txt_emb, &m->d_img_feat, &m->d_txt_feat, &m->dlast};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        free(*bufs[i]);
        *bufs[i] = NULL;
    }
    m->max_batch = 0;
}

void convirt_free(convirt_model *m)
{
    if (!m) return;
    batch_free(m);
    resnet_free(&m->img);
    bert_free(m->txt);
    proj_head_free(&m->img_head);
    proj_head_free(&m->txt_head);
    free(m);
}

int convirt_embed_dim(const convirt_model *m) { return m->img_head.out; }

void convirt_batch_alloc(convirt_model *m, int max_batch, int crop, int seq)
{
    batch_free(m);
    m->max_batch = max_batch;
    m->crop = crop;
    m->seq = seq;
    resnet_cache_alloc(&m->rc, &m->img, max_batch, crop, crop, 1);
    m->bc = bert_cache_new(m->txt, max_batch, seq);
    proj_head_cache_init(&m->ihc);
    proj_head_cache_init(&m->thc);
    size_t b = (size_t)max_batch, fi = (size_t)m->img.feat_dim, ft = (size_t)m->txt->cfg.hidden;
    size_t e = (size_t)convirt_embed_dim(m);
    m->img_feat = xmalloc(b * fi * sizeof(float));
    m->d_img_feat = xmalloc(b * fi * sizeof(float));
    m->txt_feat = xmalloc(b * ft * sizeof(float));
    m->d_txt_feat = xmalloc(b * ft * sizeof(float));
    float **be[] = {&m->img_emb, &m->txt_emb, &m->img_n, &m->txt_n, &m->d_img_n, &m->d_txt_n, &m->d_img_emb,
                    &m->d_txt_emb};
    for (size_t i = 0; i < sizeof be / sizeof be[0]; i++) *be[i] = xmalloc(b * e * sizeof(float));
    m->img_norm = xmalloc(b * sizeof(float));
    m->txt_norm = xmalloc(b * sizeof(float));
    m->logits = xmalloc(b * b * sizeof(float));
    m->dlast = xcalloc(b * (size_t)seq * ft, sizeof(float));
}

/* Tokens up to the last real one in the batch: padding keys are masked, so
 * the [CLS] row does not depend on trailing all-padding columns. */
static int batch_seq(const uint8_t *mask, int b, int seq)
{
    int used = 1;
    for (int i = 0; i < b; i++)
        for (int j = seq - 1; j >= used; j--)
            if (mask[(size_t)i * seq + j]) { used = j + 1; break; }
    return used;
}

/* The text side's input at the trimmed length: [b, s] copies of ids and mask. */
static const float *text_forward(convirt_model *m, const int32_t *ids, const uint8_t *mask, int b, int *s_out)
{
    int seq = m->seq, s = batch_seq(mask, b, seq);
    const float *last;
    if (s == seq) {
        last = bert_forward(m->txt, m->bc, ids, mask, b, seq);
    } else {
        int32_t *ti = xmalloc((size_t)b * s * sizeof(int32_t));
        uint8_t *tm = xmalloc((size_t)b * s);
        for (int i = 0; i < b; i++) {
            memcpy(ti + (size_t)i * s, ids + (size_t)i * seq, (size_t)s * sizeof(int32_t));
            memcpy(tm + (size_t)i * s, mask + (size_t)i * seq, (size_t)s);
        }
        last = bert_forward(m->txt, m->bc, ti, tm, b, s);
        free(ti);
        free(tm);
    }
    *s_out = s;
    int h = m->txt->cfg.hidden;
    for (int i = 0; i < b; i++) memcpy(m->txt_feat + (size_t)i * h, last + (size_t)i * s * h, (size_t)h * sizeof(float));
    return last;
}

double convirt_train_step(convirt_model *m, const float *images, const int32_t *ids, const uint8_t *mask, int b,
                          float dloss, double *parts)
{
    CHECKF(b >= 2 && b <= m->max_batch, "batch %d (buffers for %d)", b, m->max_batch);
    int e = convirt_embed_dim(m), h = m->txt->cfg.hidden, fi = m->img.feat_dim, s;
    resnet_forward(m->img_feat, &m->img, &m->rc, images, b, 1);
    text_forward(m, ids, mask, b, &s);
    proj_head_forward_train(m->img_emb, &m->ihc, &m->img_head, m->img_feat, b);
    proj_head_forward_train(m->txt_emb, &m->thc, &m->txt_head, m->txt_feat, b);
    l2norm_forward(m->img_n, m->img_norm, m->img_emb, b, e);
    l2norm_forward(m->txt_n, m->txt_norm, m->txt_emb, b, e);
    double loss = infonce_forward(m->logits, parts, m->img_n, m->txt_n, b, e, m->temperature, m->lambda);

    size_t be = (size_t)b * e;
    memset(m->d_img_n, 0, be * sizeof(float));
    memset(m->d_txt_n, 0, be * sizeof(float));
    infonce_backward(m->d_img_n, m->d_txt_n, m->logits, m->img_n, m->txt_n, b, e, m->temperature, m->lambda,
                     dloss);
    memset(m->d_img_emb, 0, be * sizeof(float));
    memset(m->d_txt_emb, 0, be * sizeof(float));
    l2norm_backward(m->d_img_emb, m->d_img_n, m->img_n, m->img_norm, b, e);
    l2norm_backward(m->d_txt_emb, m->d_txt_n, m->txt_n, m->txt_norm, b, e);
    memset(m->d_img_feat, 0, (size_t)b * fi * sizeof(float));
    memset(m->d_txt_feat, 0, (size_t)b * h * sizeof(float));
    proj_head_backward(m->d_img_feat, &m->img_head, &m->ihc, m->d_img_emb, m->img_feat);
    proj_head_backward(m->d_txt_feat, &m->txt_head, &m->thc, m->d_txt_emb, m->txt_feat);
    resnet_backward(NULL, &m->img, &m->rc, m->d_img_feat, images);
    /* only the [CLS] rows of last_hidden_state reach the loss */
    memset(m->dlast, 0, (size_t)b * s * h * sizeof(float));
    for (int i = 0; i < b; i++)
        memcpy(m->dlast + (size_t)i * s * h, m->d_txt_feat + (size_t)i * h, (size_t)h * sizeof(float));
    bert_backward(m->txt, m->bc, m->dlast);
    return loss;
}

void convirt_embed_eval(convirt_model *m, const float *images, const int32_t *ids, const uint8_t *mask, int b,
                        float *img_n, float *txt_n)
{
    CHECKF(b >= 1 && b <= m->max_batch, "batch %d (buffers for %d)", b, m->max_batch);
    int e = convirt_embed_dim(m), s;
    resnet_forward(m->img_feat, &m->img, &m->rc, images, b, 0);
    text_forward(m, ids, mask, b, &s);
    proj_head_forward_eval(m->img_emb, &m->img_head, m->img_feat, b);
    proj_head_forward_eval(m->txt_emb, &m->txt_head, m->txt_feat, b);
    l2norm_forward(img_n, m->img_norm, m->img_emb, b, e);
    l2norm_forward(txt_n, m->txt_norm, m->txt_emb, b, e);
}

/* ---- checkpoints -------------------------------------------------------------- */

static tensor *i64_scalar(int64_t v)
{
    tensor *t = tensor_new(DTYPE_I64, 1, (int64_t[]){1});
    *(int64_t *)t->data = v;
    return t;
}

void convirt_save(const convirt_model *m, const char *path, float *const *m_blocks, float *const *v_blocks,
                  const convirt_state *st)
{
    char **names = NULL;
    const tensor **ts = NULL;
    int n = 0;
    for (int k = 0; k < CONVIRT_NSETS; k++) {
        char *pa = xasprintf("exp_avg.%s", m->prefixes[k]), *pb = xasprintf("exp_avg_sq.%s", m->prefixes[k]);
        n = param_list_append(m->sets[k], m_blocks[k], pa, n, &names, &ts);
        n = param_list_append(m->sets[k], v_blocks[k], pb, n, &names, &ts);
        free(pa);
        free(pb);
    }
    const char *cn[4] = {"step", "epoch", "pos", "seed"};
    int64_t cv[4] = {st->step, st->epoch, st->pos, (int64_t)st->seed};
    names = xrealloc(names, (size_t)(n + 4) * sizeof *names);
    ts = xrealloc(ts, (size_t)(n + 4) * sizeof *ts);
    for (int i = 0; i < 4; i++) {
        names[n] = xstrdup(cn[i]);
        ts[n++] = i64_scalar(cv[i]);
    }
    char *step = xasprintf("%lld", (long long)st->step);
    json_t *meta = json_pack("{s:s, s:s}", "format", "pt", "step", step);
    char *state_path = xasprintf("%s.state.safetensors", path);
    /* the state is written after the model (below); keep its list */
    char **snames = names;
    const tensor **sts = ts;
    int ns = n;
    json_t *smeta = meta;
    char *next_path = xasprintf("%s.next", path);

    names = NULL;
    ts = NULL;
    n = 0;
    for (int k = 0; k < CONVIRT_NSETS; k++)
        n = param_list_append(m->sets[k], m->sets[k]->data, m->prefixes[k], n, &names, &ts);
    for (int k = 0; k < 3; k++)
        n = param_list_append(m->bufs[k], m->bufs[k]->data, m->buf_prefixes[k], n, &names, &ts);
    char *arch = resnet_config_string(&m->img.cfg), *tcfg = bert_config_text(m->txt);
    char *head = xasprintf("{\"hidden\":%d,\"embed_dim\":%d,\"temperature\":%g,\"lambda\":%g}", m->img_head.hidden,
                           m->img_head.out, (double)m->temperature, (double)m->lambda);
    meta = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "format", "pt", "method", "convirt", "image_arch", arch,
                     "text_config", tcfg, "projection", head, "step", step);
    st_write(next_path, n, (const char *const *)names, (const tensor *const *)ts, meta);
    json_decref(meta);
    param_list_free(n, names, ts);
    /* only now the state: a crash before this point leaves the old pair whole */
    st_write(state_path, ns, (const char *const *)snames, (const tensor *const *)sts, smeta);
    json_decref(smeta);
    param_list_free(ns, snames, sts);
    /* a crash here leaves the new state beside CKPT.next of the same step,
     * which convirt_load takes */
    if (rename(next_path, path) != 0) die("cannot rename %s to %s: %s", next_path, path, strerror(errno));
    free(next_path);
    free(state_path);
    free(arch);
    free(tcfg);
    free(step);
    free(head);
}

static int64_t i64_read(const st_file *f, const char *name)
{
    const st_entry *e = st_get(f, name);
    if (strcmp(e->st_dtype, "I64") || e->nbytes != 8) die("%s: tensor %s is not one int64", f->path, name);
    int64_t v;
    memcpy(&v, e->data, 8);
    return v;
}

static long long model_step_of(const st_file *f)
{
    const char *s = f->metadata ? json_string_value(json_object_get(f->metadata, "step")) : NULL;
    return s ? atoll(s) : -1;
}

void convirt_load(convirt_model *m, const char *path, float *const *m_blocks, float *const *v_blocks,
                  convirt_state *st)
{
    char *state_path = xasprintf("%s.state.safetensors", path);
    st_file *sf = st_open(state_path);
    st->step = i64_read(sf, "step");
    st->epoch = i64_read(sf, "epoch");
    st->pos = i64_read(sf, "pos");
    st->seed = (uint64_t)i64_read(sf, "seed");

    st_file *f = access(path, F_OK) == 0 ? st_open(path) : NULL;
    if (!f || model_step_of(f) != st->step) {
        /* interrupted after the state's rename: the model of that step waits in CKPT.next */
        char *next_path = xasprintf("%s.next", path);
        st_file *nf = access(next_path, F_OK) == 0 ? st_open(next_path) : NULL;
        if (!nf || model_step_of(nf) != st->step)
            die("%s is at step %lld but %s at step %lld, and no %s of that step: resume from a pair "
                "written together", path, f ? model_step_of(f) : -1LL, state_path, (long long)st->step, next_path);
        info("%s: taking the step-%lld model from %s (the last save was interrupted)", path, (long long)st->step,
             next_path);
        if (f) st_close(f);
        f = nf;
        free(next_path);
    }
    const char *method = f->metadata ? json_string_value(json_object_get(f->metadata, "method")) : NULL;
    if (!method || strcmp(method, "convirt")) die("%s: not a ConVIRT checkpoint (metadata method %s)", f->path,
                                                  method ? method : "missing");
    const char *arch = json_string_value(json_object_get(f->metadata, "image_arch"));
    char *mine = resnet_config_string(&m->img.cfg);
    if (!arch || strcmp(arch, mine))
        die("%s: image encoder %s, but this run builds %s", f->path, arch ? arch : "(missing)", mine);
    free(mine);
    for (int k = 0; k < CONVIRT_NSETS; k++) param_load(m->sets[k], f, m->prefixes[k], 0);
    for (int k = 0; k < 3; k++) param_load(m->bufs[k], f, m->buf_prefixes[k], 0);
    st_close(f);

    for (int k = 0; k < CONVIRT_NSETS; k++) {
        param_set view = *m->sets[k];
        char *pa = xasprintf("exp_avg.%s", m->prefixes[k]), *pb = xasprintf("exp_avg_sq.%s", m->prefixes[k]);
        view.data = m_blocks[k];
        param_load(&view, sf, pa, 0);
        view.data = v_blocks[k];
        param_load(&view, sf, pb, 0);
        free(pa);
        free(pb);
    }
    st_close(sf);
    free(state_path);
}
