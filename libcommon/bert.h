/* bert.h — the text encoder of vision-language pre-training: BERT exactly as
 * HF transformers' BertModel (no pooler), forward and backward on the CPU.
 *   embeddings: word[ids] + position[0..T) + token_type[0], LayerNorm;
 *   encoder (post-LN), per layer:
 *     a   = LayerNorm(x + Wo attention(Wq x, Wk x, Wv x, key padding mask))
 *     out = LayerNorm(a + W2 gelu(W1 a))
 * returning last_hidden_state [B, T, hidden]; the caller takes row 0 ([CLS]).
 * Token types are all 0 and positions 0..T-1, as BertModel's defaults.
 * Padding keys get the float minimum added to their scores, as HF does.
 * DROPOUT: none. The forward is BertModel in eval mode (or with
 * hidden_dropout_prob = attention_probs_dropout_prob = 0, as the oracle sets).
 *
 * Parameters live in one param_set (params.h) with gradients, under the HF
 * state-dict names (embeddings.word_embeddings.weight, ...,
 * encoder.layer.0.attention.self.query.weight, ...). Loaded from an HF folder
 * (config.json + model.safetensors), or initialised at random as HF does.
 * Activations for one (batch, T) are kept in a bert_cache allocated once.
 *
 * In a training step (vlptrain):
 *   bert_model *m = bert_load(dir, 6);               (or bert_new + bert_init_random)
 *   bert_cache *c = bert_cache_new(m, B, 112);
 *   const float *h = bert_forward(m, c, ids, mask, B, 112);  [CLS] of row b: h + b*112*H
 *   dh = zeros [B, 112, H]; dh[b*112*H .. +H] = d loss / d CLS_b; bert_backward(m, c, dh);
 *   checkpoint: param_list_append(&m->params, m->params.data, "text_encoder.", ...),
 *   metadata "text_config" = bert_config_text(m); reload with param_load(.., "text_encoder.", 0). */
#ifndef SYNTHCXR_BERT_H
#define SYNTHCXR_BERT_H

#include "params.h"

#include <jansson.h>
#include <stdint.h>

typedef struct bert_config {
    int vocab;          /* vocab_size */
    int hidden;         /* hidden_size */
    int layers;         /* layers in use: num_hidden_layers, or fewer if truncated */
    int layers_file;    /* num_hidden_layers of the config */
    int heads;          /* num_attention_heads */
    int inter;          /* intermediate_size */
    int max_pos;        /* max_position_embeddings */
    int type_vocab;     /* type_vocab_size */
    int pad_id;         /* pad_token_id: nn.Embedding's padding_idx (no gradient), or -1 */
    float eps;          /* layer_norm_eps */
    float init_range;   /* initializer_range: std of the random init */
} bert_config;

/* One layer's tensors: pointers into a param_set block (values or gradients). */
typedef struct bert_layer {
    float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b;  /* [H, H], [H] */
    float *ao_w, *ao_b;                        /* attention.output.dense [H, H], [H] */
    float *ln1_w, *ln1_b;                      /* attention.output.LayerNorm [H] */
    float *i_w, *i_b;                          /* intermediate.dense [I, H], [I] */
    float *o_w, *o_b;                          /* output.dense [H, I], [H] */
    float *ln2_w, *ln2_b;                      /* output.LayerNorm [H] */
} bert_layer;

typedef struct bert_weights {
    float *word;            /* [vocab, H] */
    float *pos;             /* [max_pos, H] */
    float *type;            /* [type_vocab, H] */
    float *ln_w, *ln_b;     /* embeddings.LayerNorm [H] */
    bert_layer *layer;      /* [layers] */
} bert_weights;

typedef struct bert_model {
    bert_config cfg;
    json_t *config;         /* the config.json object (owned), for bert_config_text */
    param_set params;       /* every parameter, with gradients */
    bert_weights w;         /* pointers into params.data */
    bert_weights g;         /* pointers into params.grad */
} bert_model;

/* Activations of one forward pass, kept for the backward, and the backward's
 * scratch; sized for at most max_batch x max_seq tokens. */
typedef struct bert_cache {
    int max_batch, max_seq;
    int batch, seq;         /* of the last bert_forward */
    float *block;           /* everything below, one allocation */
    size_t floats;
    int32_t *ids;           /* [B*T] the last forward's token ids */
    int32_t *pos_ids, *type_ids; /* [B*T] 0..T-1 per row; zeros */
    float *key_mask;        /* [B, T] additive: 0 or -FLT_MAX */
    float *emb;             /* [B*T, H] embedding sum (LayerNorm input) */
    float *emb_mean, *emb_rstd; /* [B*T] */
    float **h;              /* [layers+1] each [B*T, H]; h[0] embeddings output, h[layers] last_hidden_state */
    struct bert_layer_acts {
        float *q, *k, *v;       /* [B*T, H] = [B, T, heads, head_dim] */
        float *probs;           /* [B, heads, T, T] */
        float *ctx;             /* [B*T, H] attention output */
        float *res1;            /* [B*T, H] h + attention.output.dense(ctx) */
        float *mean1, *rstd1;   /* [B*T] */
        float *a;               /* [B*T, H] attention.output.LayerNorm(res1) */
        float *pre;             /* [B*T, I] intermediate.dense(a) */
        float *act;             /* [B*T, I] gelu(pre) */
        float *res2;            /* [B*T, H] a + output.dense(act) */
        float *mean2, *rstd2;   /* [B*T] */
    } *l;                   /* [layers] */
    /* backward scratch */
    float *dh0, *dh1, *dres, *da, *dctx, *dq, *dk, *dv; /* [B*T, H] */
    float *dact, *dpre;     /* [B*T, I] */
} bert_cache;

/* Reads an HF BertConfig object; keep_layers > 0 keeps only the first
 * keep_layers layers (MGCA's 6 of Bio_ClinicalBERT's 12; more than the config
 * has dies). Dies naming `what` for an unsupported setting: hidden_act other
 * than "gelu", position_embedding_type other than "absolute", a decoder or
 * cross-attention config, a model_type other than "bert" (RoBERTa shares the
 * field names, not the positions), or sizes that do not fit. */
void bert_config_read(bert_config *cfg, const json_t *config, int keep_layers, const char *what);

/* A model with its parameters registered and allocated (zero) for cfg. The
 * config object is copied. */
bert_model *bert_new(const json_t *config, int keep_layers, const char *what);
/* Loads an HF folder: dir/config.json and dir/model.safetensors. Keys may
 * carry the "bert." prefix (BertForPreTraining checkpoints such as
 * Bio_ClinicalBERT) and the old LayerNorm.gamma/.beta names; the pooler and
 * heads are ignored. A folder with only pytorch_model.bin dies saying how to
 * convert it. */
bert_model *bert_load(const char *dir, int keep_layers);
/* Random init as HF BertPreTrainedModel._init_weights: Linear and Embedding
 * weights normal(0, initializer_range), the padding row of the word embedding
 * zero, biases 0, LayerNorm weight 1 and bias 0. Seeded (torch's generator,
 * rng.h), but not the same draws as a torch model built with that seed. */
void bert_init_random(bert_model *m, uint64_t seed);
void bert_free(bert_model *m);            /* NULL is fine */

/* The config as JSON text with num_hidden_layers = the layers in use, so that
 * BertModel(BertConfig(**json)) loads a checkpoint of this model. xmalloc'ed. */
char *bert_config_text(const bert_model *m);

bert_cache *bert_cache_new(const bert_model *m, int max_batch, int max_seq);
void bert_cache_free(bert_cache *c);      /* NULL is fine */

/* The forward pass for batch x seq tokens (batch <= max_batch, seq <= max_seq
 * and <= max_position_embeddings). ids: token ids, int32 [batch, seq];
 * mask: the pairs stream's attention_mask, u8 [batch, seq] (1 real, 0 padding),
 * or NULL (all real). Returns last_hidden_state [batch, seq, H] inside the
 * cache (valid until the next forward). Dies naming the position of an id
 * outside the vocabulary. */
const float *bert_forward(const bert_model *m, bert_cache *c, const int32_t *ids, const uint8_t *mask, int batch,
                          int seq);

/* The backward pass of the last bert_forward: dlast [batch, seq, H] is the
 * gradient of the loss w.r.t. last_hidden_state (only the [CLS] rows are
 * non-zero in ConVIRT). Every parameter gradient ACCUMULATES into
 * m->params.grad (zero it once per step with param_zero_grad). */
void bert_backward(bert_model *m, bert_cache *c, const float *dlast);

#endif
