/* linear_probe.h — the evaluation head of the study: one torch.nn.Linear on
 * frozen image features, trained as MGCA's SSLFineTuner does (dropout 0):
 * BCE-with-logits (mean over all n x labels, multi-label CheXpert and RSNA) or
 * softmax cross-entropy (mean over n, COVIDx), AdamW (lr 5e-4, weight decay
 * 1e-6 on weight and bias, betas 0.9/0.999, eps 1e-8), batch 48, at most 50
 * epochs, early stopping on the validation loss with patience 10; the weights
 * of the best epoch are restored before testing.
 *
 * Choices MGCA's scripts leave to the framework, fixed here: each epoch
 * visits the training rows in a fresh seeded shuffle (splitmix64) and keeps
 * the last, smaller batch (drop_last false: 1 % of a small set may hold fewer
 * than 48 images); the validation loss is the mean over all validation rows;
 * an epoch is "better" when its loss is strictly lower; training stops after
 * `patience` epochs in a row without one. The initial weights are
 * nn.Linear's distribution, U(-1/sqrt(in), 1/sqrt(in)) for weight and bias,
 * drawn with splitmix64 (not torch's generator). */
#ifndef SYNTHCXR_LINEAR_PROBE_H
#define SYNTHCXR_LINEAR_PROBE_H

#include "optim.h"
#include "params.h"

#include <stdint.h>

typedef struct probe_config {
    float lr, weight_decay;
    int batch, max_epochs, patience;
    int multi_label;          /* 1: BCE-with-logits; 0: softmax cross-entropy */
    uint64_t seed;            /* init and shuffles */
} probe_config;

/* MGCA's settings (above) for a multi-label or a multi-class task. */
probe_config probe_defaults(int multi_label, uint64_t seed);

typedef struct linear_probe {
    param_set ps;             /* "weight" [out, in], "bias" [out], with grads */
    float *weight, *bias;     /* into ps.data */
    float *m, *v;             /* AdamW moments [ps.total] */
    int64_t t;                /* AdamW steps taken */
    int in_f, out_f;
} linear_probe;

/* Allocates and initialises (nn.Linear's distribution from seed). */
void probe_init(linear_probe *p, int in_f, int out_f, uint64_t seed);
void probe_free(linear_probe *p);

/* Loss of logits [n, out] against target [n, out] (0/1 labels, or a one-hot
 * row for cross-entropy); if dlogits [n, out] is given, the gradient of the
 * loss is ADDED to it. Accumulates in double. */
double probe_loss(const float *logits, const float *target, int n, int out, int multi_label, float *dlogits);

/* One AdamW step on a batch: x [b, in], target [b, out]. Returns the batch loss
 * (before the step). */
double probe_step(linear_probe *p, const probe_config *c, const float *x, const float *target, int b);

/* Logits [n, out] of x [n, in]. */
void probe_predict(const linear_probe *p, const float *x, long n, float *logits);
/* Mean loss over a set (batched so memory stays small). */
double probe_eval_loss(const linear_probe *p, const float *x, const float *target, long n, int multi_label);

typedef struct probe_result {
    int epochs_run, best_epoch;   /* 1-based */
    double best_val_loss, last_train_loss;
} probe_result;

/* Trains p on xtr [ntr, in] / ttr [ntr, out] with early stopping on xval /
 * tval; p holds the best epoch's weights on return. progress: info() lines
 * per epoch unless quiet. */
probe_result probe_train(linear_probe *p, const probe_config *c, const float *xtr, const float *ttr, long ntr,
                         const float *xval, const float *tval, long nval);

#endif
