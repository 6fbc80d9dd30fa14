/* bench_bert.c — the BERT text encoder of vlptrain at full size.
 *   bench_bert --check DIR   loads the HF folder DIR (bench/bert_base.py writes
 *                            a random BERT-base there with reference.safetensors)
 *                            and compares last_hidden_state, and the gradients
 *                            the reference holds, with torch's float64 answer;
 *   bench_bert               times forward and backward of BERT-base (random
 *                            weights, HF init) keeping --layers (6) layers at
 *                            --batch (8) x --seq (112), as vlptrain
 *                            --text-layers 6 trains it; median of --reps (5).
 * One JSON object per line on stdout; readable lines on stderr. */
#include "bench_util.h"
#include "bert.h"
#include "common.h"
#include "safetensors.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static double rel_err(const float *got, const float *want, size_t n, double *scale) {
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs((double)got[i] - want[i])), s = fmax(s, fabs(want[i]));
    *scale = s;
    return e / (s > 0 ? s : 1);
}

static void check(const char *dir) {
    double t0 = now_s();
    bert_model *m = bert_load(dir, 0);
    double t1 = now_s();
    char *rp = xasprintf("%s/reference.safetensors", dir);
    st_file *f = st_open(rp);
    tensor *ids = st_load(f, "ids"), *mask = st_load(f, "mask");
    int B = (int)ids->shape[0], T = (int)ids->shape[1];
    bert_cache *c = bert_cache_new(m, B, T);
    param_zero_grad(&m->params);
    double t2 = now_s();
    const float *h = bert_forward(m, c, ids->data, mask->data, B, T);
    double t3 = now_s();
    size_t n = (size_t)B * T * m->cfg.hidden;
    tensor *want = st_load_f32(f, "last_hidden", 3, (int64_t[]){B, T, m->cfg.hidden});
    tensor *want32 = st_load_f32(f, "last_hidden_f32", 3, (int64_t[]){B, T, m->cfg.hidden});
    double s, e = rel_err(h, want->data, n, &s), s32, e32 = rel_err(want32->data, want->data, n, &s32);
    fprintf(stderr, "bench_bert: %s (%d layers, hidden %d) loaded in %.1f s; forward [%d, %d] %.2f s\n", dir,
            m->cfg.layers, m->cfg.hidden, t1 - t0, B, T, t3 - t2);
    fprintf(stderr, "bench_bert: last_hidden_state max err %.3e of scale %.3g (abs %.3e); torch float32: %.3e\n", e, s,
            e * s, e32);
    printf("{\"bench\":\"bert_check\",\"layers\":%d,\"batch\":%d,\"seq\":%d,\"forward_rel_err\":%.3e,"
           "\"torch_f32_rel_err\":%.3e",
           m->cfg.layers, B, T, e, e32);
    tensor *dout = st_find(f, "dout") ? st_load_f32(f, "dout", -1, NULL) : NULL;
    if (dout) {
        bert_backward(m, c, dout->data);
        double worst = 0;
        for (int i = 0; i < f->n; i++) {
            const char *k = f->entries[i].name;
            if (strncmp(k, "grad.", 5)) continue;
            const param_entry *pe = param_find(&m->params, k + 5);
            if (!pe) die("%s: %s names no parameter", rp, k);
            tensor *g = st_load_f32(f, k, pe->ndim, pe->shape);
            double gs, ge = rel_err(m->params.grad + pe->offset, g->data, pe->numel, &gs);
            fprintf(stderr, "bench_bert:   gradient %-48s max err %.3e of scale %.3g\n", k + 5, ge, gs);
            worst = fmax(worst, ge);
            tensor_free(g);
        }
        printf(",\"grad_rel_err_worst\":%.3e", worst);
        tensor_free(dout);
    }
    printf("}\n");
    tensor_free(want), tensor_free(want32), tensor_free(ids), tensor_free(mask);
    st_close(f);
    free(rp);
    bert_cache_free(c);
    bert_free(m);
}

static void timing(int layers, int B, int T, int reps) {
    json_t *cfg = json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:s,s:f,s:f,s:i}", "vocab_size", 30522, "hidden_size", 768,
                            "num_hidden_layers", 12, "num_attention_heads", 12, "intermediate_size", 3072,
                            "max_position_embeddings", 512, "type_vocab_size", 2, "hidden_act", "gelu",
                            "layer_norm_eps", 1e-12, "initializer_range", 0.02, "pad_token_id", 0);
    bert_model *m = bert_new(cfg, layers, "bert-base");
    json_decref(cfg);
    bert_init_random(m, 1);
    bert_cache *c = bert_cache_new(m, B, T);
    int32_t *ids = xmalloc((size_t)B * T * sizeof *ids);
    uint8_t *mask = xmalloc((size_t)B * T);
    float *dlast = xcalloc((size_t)B * T * 768, sizeof(float));
    unsigned s = 1;
    for (int b = 0; b < B; b++) {
        int len = T - (b * T) / (B + 1); /* T down to ~T/B real tokens */
        for (int t = 0; t < T; t++) {
            s = s * 1664525u + 1013904223u;
            ids[b * T + t] = t < len ? (t ? 1000 + (int)(s >> 8) % 29000 : 101) : 0;
            mask[b * T + t] = t < len;
        }
        for (int j = 0; j < 768; j++) dlast[(size_t)b * T * 768 + j] = 0.01f * (float)((j % 7) - 3); /* CLS rows */
    }
    double *tf = xmalloc((size_t)reps * sizeof *tf), *tb = xmalloc((size_t)reps * sizeof *tb);
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        param_zero_grad(&m->params);
        double t0 = now_s();
        bert_forward(m, c, ids, mask, B, T);
        double t1 = now_s();
        bert_backward(m, c, dlast);
        double t2 = now_s();
        if (r >= 0) tf[r] = t1 - t0, tb[r] = t2 - t1;
    }
    qsort(tf, (size_t)reps, sizeof *tf, cmp_double);
    qsort(tb, (size_t)reps, sizeof *tb, cmp_double);
    double f = tf[reps / 2], bw = tb[reps / 2];
    /* 2 flops per multiply-add: linear layers 2*N*(4H^2 + 2HI), attention 4*N*T*H */
    double N = (double)B * T, H = 768, I = 3072;
    double fwd_flops = layers * (2 * N * (4 * H * H + 2 * H * I) + 4 * N * T * H);
    fprintf(stderr,
            "bench_bert: BERT-base %d layers, batch %d x %d, %d threads: forward %.3f s (%.1f GFLOP/s), "
            "backward %.3f s, %.2f train samples/s (median of %d)\n",
            layers, B, T, threads_get(), f, fwd_flops / f * 1e-9, bw, B / (f + bw), reps);
    printf("{\"bench\":\"bert\",\"layers\":%d,\"batch\":%d,\"seq\":%d,\"threads\":%d,\"forward_s\":%.4f,"
           "\"backward_s\":%.4f,\"train_samples_per_s\":%.2f,\"forward_gflops\":%.1f}\n",
           layers, B, T, threads_get(), f, bw, B / (f + bw), fwd_flops / f * 1e-9);
    free(tf), free(tb), free(ids), free(mask), free(dlast);
    bert_cache_free(c);
    bert_free(m);
}

int main(int argc, char **argv) {
    prog_init(argv[0]);
    static const struct option opts[] = {{"check", required_argument, 0, 'c'}, {"layers", required_argument, 0, 'l'},
                                         {"batch", required_argument, 0, 'b'}, {"seq", required_argument, 0, 's'},
                                         {"reps", required_argument, 0, 'r'}, {0, 0, 0, 0}};
    const char *dir = NULL;
    int layers = 6, B = 8, T = 112, reps = 5, o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'c': dir = optarg; break;
        case 'l': layers = (int)parse_long("--layers", optarg, 1, 12); break;
        case 'b': B = (int)parse_long("--batch", optarg, 1, 1024); break;
        case 's': T = (int)parse_long("--seq", optarg, 1, 512); break;
        case 'r': reps = (int)parse_long("--reps", optarg, 1, 1000); break;
        default: die_usage("usage: bench_bert [--check DIR] [--layers N] [--batch B] [--seq T] [--reps R]");
        }
    }
    if (dir) check(dir);
    else timing(layers, B, T, reps);
    return 0;
}
