/* convirt.h — the ConVIRT model of vlptrain: a torchvision ResNet image
 * encoder (resnet.h), an HF BERT text encoder (bert.h, [CLS] row as the report
 * feature), MGCA's projection head on each (proj_head.h), L2 normalisation and
 * the symmetric InfoNCE loss (contrastive.h). One training step's forward and
 * backward, eval-mode embeddings for validation, and the checkpoint files:
 *   CKPT                   model tensors under image_encoder., text_encoder.,
 *                          image_projection., text_projection. (torch names);
 *                          metadata method, image_arch, text_config, step
 *   CKPT.state.safetensors AdamW exp_avg.<name> / exp_avg_sq.<name> for every
 *                          parameter, and the counters (step, epoch, pos, seed)
 * Each is written atomically (temporary name, rename), in the order: the model
 * as CKPT.next, the state, then CKPT.next renamed to CKPT. Both record the
 * step, so a crash at any point leaves a pair of one step to resume from:
 * the old pair, or the new state with CKPT.next (which convirt_load takes). */
#ifndef SYNTHCXR_CONVIRT_H
#define SYNTHCXR_CONVIRT_H

#include "bert.h"
#include "proj_head.h"
#include "resnet.h"

#include <stdint.h>

#define CONVIRT_NSETS 4 /* trainable blocks: image, text, image head, text head */

typedef struct convirt_model {
    resnet img;
    bert_model *txt;
    proj_head img_head, txt_head;
    float temperature, lambda;
    /* batch buffers (convirt_batch_alloc) */
    int max_batch, crop, seq;
    resnet_cache rc, rc_eval;
    bert_cache *bc;
    proj_head_cache ihc, thc;
    float *img_feat, *txt_feat;   /* [B, feat_dim], [B, hidden] */
    float *img_emb, *txt_emb;     /* [B, E] head outputs */
    float *img_n, *txt_n;         /* [B, E] normalised */
    float *img_norm, *txt_norm;   /* [B] */
    float *logits;                /* [B, B] */
    float *d_img_n, *d_txt_n, *d_img_emb, *d_txt_emb, *d_img_feat, *d_txt_feat; /* gradients */
    float *dlast;                 /* [B, seq, hidden], zero except the [CLS] rows */
    /* the four trainable param_sets and their checkpoint prefixes; the buffer sets */
    param_set *sets[CONVIRT_NSETS];
    const char *prefixes[CONVIRT_NSETS];
    param_set *bufs[3];
    const char *buf_prefixes[3];
} convirt_model;

/* Builds the model: image encoder of config icfg (random init from seed, then
 * image_weights loaded if not NULL: a torchvision state dict, fc.* ignored),
 * the BERT of text_dir's first text_layers layers (0: all; text_random: built
 * from text_dir/config.json and initialised at random from seed, as HF does,
 * instead of loading weights), heads in -> hidden -> embed initialised from seed. */
convirt_model *convirt_new(const resnet_config *icfg, const char *image_weights, const char *text_dir,
                           int text_layers, int text_random, int proj_hidden, int embed_dim, float temperature,
                           float lambda, uint64_t seed);
void convirt_free(convirt_model *m);

/* Activation buffers for batches of up to max_batch pairs of crop^2 images and
 * seq tokens. */
void convirt_batch_alloc(convirt_model *m, int max_batch, int crop, int seq);

/* One training forward and backward on b pairs: images [b, 3, crop, crop],
 * ids [b, seq], mask [b, seq] (u8). Returns the loss; parts (if not NULL) the
 * image->text and text->image terms. Gradients of dloss * loss ACCUMULATE
 * into every set's grad (zero them per optimiser step; dloss = 1/accum). */
double convirt_train_step(convirt_model *m, const float *images, const int32_t *ids, const uint8_t *mask, int b,
                          float dloss, double *parts);

/* Eval mode (BatchNorm running statistics): normalised embeddings of b pairs
 * into img_n, txt_n [b, E]. */
void convirt_embed_eval(convirt_model *m, const float *images, const int32_t *ids, const uint8_t *mask, int b,
                        float *img_n, float *txt_n);

int convirt_embed_dim(const convirt_model *m);

/* Training counters saved beside the model. */
typedef struct convirt_state {
    int64_t step;   /* optimiser steps done */
    int64_t epoch;  /* epoch of the next batch */
    int64_t pos;    /* pairs of that epoch's order already used */
    uint64_t seed;
} convirt_state;

/* Writes path (model) and path.state.safetensors (m_blocks/v_blocks: Adam's
 * moments, one per trainable set). */
void convirt_save(const convirt_model *m, const char *path, float *const *m_blocks, float *const *v_blocks,
                  const convirt_state *st);
/* Loads both files written by convirt_save into a model built with the same
 * architecture; dies naming what does not fit. */
void convirt_load(convirt_model *m, const char *path, float *const *m_blocks, float *const *v_blocks,
                  convirt_state *st);

#endif
