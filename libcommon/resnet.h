/* resnet.h — torchvision's ResNet with Bottleneck blocks (v1.5: the stride on
 * the 3x3 conv) as the image encoder of vision-language pre-training, forward
 * (training or eval mode) and backward on the CPU, without the fc head:
 *   conv1 7x7/2 -> bn1 -> relu -> maxpool 3x3/2 pad 1 -> layer1..layer4 -> global
 *   average pool -> features [B, planes*8*4] (2048 for ResNet-50).
 * Each Bottleneck: conv1 1x1 -> bn1 -> relu -> conv2 3x3/stride -> bn2 -> relu ->
 * conv3 1x1 -> bn3, plus the identity or (first block of a stage) downsample =
 * conv 1x1/stride -> BN, then relu.
 * Parameters live in one param_set (with gradients) and BN running statistics
 * in another (no gradients), both under torchvision's state-dict names
 * ("conv1.weight", "layer1.0.downsample.1.running_mean", ...), so a torchvision
 * state dict loads as is and a checkpoint loads back into torchvision. */
#ifndef SYNTHCXR_RESNET_H
#define SYNTHCXR_RESNET_H

#include "conv2d.h"
#include "params.h"
#include "safetensors.h"

#include <stdint.h>

typedef struct resnet_config {
    int layers[4];        /* Bottlenecks per stage: ResNet-50 = 3, 4, 6, 3 */
    int stem_width;       /* conv1's output channels (torchvision: 64) */
    int planes;           /* layer1's planes, doubled each stage (64); block output = planes * 4 */
    int width_per_group;  /* bottleneck width = planes * width_per_group / 64 (64; wide_resnet50_2: 128) */
} resnet_config;

/* torchvision.models.resnet50 (without fc). */
resnet_config resnet50_config(void);
/* "resnet50", or a JSON object {"layers":[1,1,1,1],"stem_width":8,"planes":8,
 * "width_per_group":64} (missing keys take ResNet-50's values). Dies naming
 * the problem. */
resnet_config resnet_config_parse(const char *s);
/* The inverse: "resnet50" for ResNet-50, else the JSON object (xmalloc'ed). */
char *resnet_config_string(const resnet_config *cfg);

typedef struct resnet_conv {
    float *w, *dw;        /* [out_ch, in_ch, k, k] */
    conv2d_dims d;        /* batch and input size filled per call */
} resnet_conv;

typedef struct resnet_bn {
    int ch;
    float *w, *b, *dw, *db;                 /* [ch] parameters and their gradients */
    float *running_mean, *running_var;      /* [ch] buffers */
    float *num_batches_tracked;             /* [1] buffer (int64 in the state dict) */
} resnet_bn;

typedef struct resnet_bottleneck {
    int in_ch, width, out_ch, stride;
    resnet_conv conv1, conv2, conv3, down;  /* down.w == NULL: identity shortcut */
    resnet_bn bn1, bn2, bn3, down_bn;
} resnet_bottleneck;

typedef struct resnet {
    resnet_config cfg;
    param_set params;     /* weights, with grads; all registered with decay = 1 */
    param_set buffers;    /* running_mean, running_var, num_batches_tracked */
    resnet_conv conv1;
    resnet_bn bn1;
    int nblocks;
    resnet_bottleneck *blocks; /* layer1.0, layer1.1, ..., layer4.x */
    int stage_end[4];     /* index one past the last block of each stage */
    int feat_dim;         /* planes * 8 * 4 */
    float momentum, eps;  /* BatchNorm2d defaults 0.1, 1e-5 */
} resnet;

/* Registers and allocates the parameters (with gradients, zeroed) and buffers,
 * and initialises them as torchvision does: convs kaiming_normal_(fan_out,
 * relu) = N(0, 2 / (out_ch*k*k)) drawn with torch's randn stream from seed
 * (conv by conv in module order), BN weight 1, bias 0, running mean 0, var 1. */
void resnet_init(resnet *m, const resnet_config *cfg, uint64_t seed);
void resnet_free(resnet *m);
/* Loads a torchvision state dict from f, each name looked up as prefix + name
 * (prefix "" or NULL for none); fc.* and any other extra tensors are ignored.
 * A missing parameter or running statistic dies naming it; a missing
 * num_batches_tracked (older torchvision files) is left at 0. */
void resnet_load(resnet *m, const st_file *f, const char *prefix);

/* Activations for one input size, allocated once. Training mode keeps every
 * tensor the backward needs (about 84 MB per 224x224 image for ResNet-50);
 * an eval-only cache (train = 0) keeps a few rotating buffers. */
typedef struct resnet_cache_block {
    float *c1, *a1, *c2, *a2, *c3, *cd, *out; /* conv outputs (BN inputs), ReLU outputs, block output */
    float *stats;                             /* save_mean, save_rstd of bn1, bn2, bn3, down_bn */
    int in_h, in_w, out_h, out_w;
} resnet_cache_block;

typedef struct resnet_cache {
    int batch, h, w, train;
    float *mem;                 /* one block for everything below */
    float *stem_c, *stem_a, *stem_pool, *stem_stats;
    int stem_h, stem_w, pool_h, pool_w;
    resnet_cache_block *blocks; /* [nblocks] */
    float *g[4];                /* backward scratch (train caches) */
    size_t gsize;               /* floats in each g */
    float *pooled_in;           /* layer4's output [batch, feat_dim, h4, w4] (= the last block's out) */
    /* layer3's output [batch, layer3_ch, layer3_h, layer3_w] after a forward (GLoRIA's local features) */
    float *layer3;
    int layer3_ch, layer3_h, layer3_w;
    int last_batch, last_train; /* of the last forward */
} resnet_cache;

/* batch, h, w: the largest batch and the input size (h, w >= 32 for ResNet-50's
 * five halvings; smaller inputs die when a layer's output would be empty). */
void resnet_cache_alloc(resnet_cache *c, const resnet *m, int batch, int h, int w, int train);
void resnet_cache_free(resnet_cache *c);

/* feat [batch, feat_dim] = ResNet(inp [batch, 3, h, w]). train != 0: BN uses
 * batch statistics and updates the running ones (momentum, unbiased variance,
 * num_batches_tracked += 1), and the cache keeps what resnet_backward needs
 * (needs a train cache); train == 0: BN uses the running statistics.
 * batch <= the cache's batch; h, w are the cache's. */
void resnet_forward(float *feat, resnet *m, resnet_cache *c, const float *inp, int batch, int train);

/* Backward of the last (training-mode) forward: the parameter gradients
 * ACCUMULATE (+=) into m->params.grad. dfeat [batch, feat_dim]; inp: the
 * forward's input [batch, 3, h, w]; dinp [batch, 3, h, w] += the input
 * gradient, or NULL to skip conv1's input gradient (it is never needed in
 * pre-training). */
void resnet_backward(float *dinp, resnet *m, resnet_cache *c, const float *dfeat, const float *inp);
/* The same with a gradient into layer3's output as well (GLoRIA's local
 * features): dlayer3 [batch, layer3_ch, layer3_h, layer3_w] or NULL; dfeat
 * may be NULL (no global term). */
void resnet_backward_layer3(float *dinp, resnet *m, resnet_cache *c, const float *dfeat, const float *dlayer3,
                            const float *inp);

#endif
