/* clip_text.h — the CLIP text encoder (transformers' CLIPTextModel) that
 * conditions Stable Diffusion: token + position embeddings, a pre-LN causal
 * transformer (quick_gelu for SD 1.x's CLIP ViT-L/14, gelu for SD 2.x's
 * OpenCLIP ViT-H/14, as the config says), the final layer norm. Read from a
 * diffusers folder's text_encoder/ (config.json + safetensors); weights are
 * named as published (text_model.embeddings.token_embedding.weight, ...) or
 * without the text_model. prefix (as transformers 5 saves them); f16/bf16
 * files are converted to f32 once, on load. CPU, float32. */
#ifndef SYNTHCXR_CLIP_TEXT_H
#define SYNTHCXR_CLIP_TEXT_H

#include "diffusers.h"
#include "tensor.h"

#include <stdint.h>

typedef enum { CLIP_ACT_QUICK_GELU, CLIP_ACT_GELU, CLIP_ACT_GELU_TANH } clip_act;

typedef struct clip_text_config {
    int vocab;          /* vocab_size (49408) */
    int max_pos;        /* max_position_embeddings (77) */
    int hidden;         /* hidden_size D (768 SD 1.x, 1024 SD 2.x) */
    int heads;          /* num_attention_heads */
    int layers;         /* num_hidden_layers (12 SD 1.x, 23 SD 2.x as diffusers stores it) */
    int inter;          /* intermediate_size */
    clip_act act;       /* hidden_act: quick_gelu, gelu, gelu_new / gelu_pytorch_tanh */
    const char *act_name;
    float eps;          /* layer_norm_eps */
} clip_text_config;

/* One encoder layer's weights (pointers into the model's one block). */
typedef struct clip_text_layer {
    float *ln1_w, *ln1_b;            /* [D] */
    float *q_w, *k_w, *v_w, *o_w;    /* [D, D] */
    float *q_b, *k_b, *v_b, *o_b;    /* [D] */
    float *ln2_w, *ln2_b;            /* [D] */
    float *fc1_w, *fc1_b;            /* [I, D], [I] */
    float *fc2_w, *fc2_b;            /* [D, I], [D] */
} clip_text_layer;

typedef struct clip_text_model {
    clip_text_config cfg;
    float *params;                   /* every weight, one block */
    size_t n_params;
    float *tok_emb;                  /* [vocab, D] */
    float *pos_emb;                  /* [max_pos, D] */
    clip_text_layer *layer;          /* [layers] */
    float *lnf_w, *lnf_b;            /* [D] */
    char *source;                    /* the (first) weight file, for messages */
} clip_text_model;

/* Reads a config.json object (CLIPTextConfig's defaults for absent keys);
 * dies naming `what` (the file) on a bad value or an unknown hidden_act. */
void clip_text_config_read(clip_text_config *cfg, const json_t *config, const char *what);

/* Loads a text_encoder part (diffusers_part_get(m, "text_encoder")). round_to:
 * DTYPE_F32 keeps the weights as stored; DTYPE_F16 or DTYPE_BF16 rounds them
 * to that type (what a pipeline loaded with that torch_dtype holds). Dies
 * naming the file and the tensor for a missing or mis-shaped weight. */
clip_text_model *clip_text_load(const diffusers_part *part, dtype_t round_to);
void clip_text_free(clip_text_model *m);              /* NULL is fine */

/* The states Stable Diffusion conditions on, for batch rows of seq token ids:
 * clip_skip 0 = last_hidden_state; clip_skip k = diffusers' clip_skip=k, the
 * output of layer L-k (hidden_states[-(k+1)]) through the final layer norm.
 * Dies if an id is outside the vocabulary, seq > max_pos or k > layers.
 *   out [batch, seq, D];  ids [batch, seq] */
void clip_text_forward(const clip_text_model *m, float *out, const int32_t *ids, int batch, int seq,
                       int clip_skip);

#endif
