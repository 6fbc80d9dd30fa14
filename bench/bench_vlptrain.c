/* bench_vlptrain.c — training samples/s of vlptrain's ConVIRT step: one
 * optimiser step = zero the gradients, forward and backward of the ResNet,
 * BERT, heads and InfoNCE on a batch, clip_grad_norm, AdamW, exactly what
 * vlptrain runs per step, on a random batch (images N(0,1) in [B, 3, crop,
 * crop], token ids of full length). Weights are random (BERT from a
 * config.json). Prints one JSON object on stdout: median and best step times
 * after warm-up steps. bench/vlptrain.sh runs it next to PyTorch.
 *   bench_vlptrain --text-config DIR [--image-arch A] [--text-layers N]
 *                  [--batch B] [--crop N] [--seq T] [--steps N] [--warmup N]
 *                  [--label NAME] [--threads N] */
#include "bench_util.h"
#include "common.h"
#include "convirt.h"
#include "optim.h"
#include "rng.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    prog_init(argv[0]);
    const char *text_dir = NULL, *arch = "resnet50", *label = "model";
    int layers = 6, batch = 8, crop = 224, seq = 112, steps = 3, warm = 1, threads = 0;
    static const struct option lo[] = {{"text-config", 1, 0, 't'}, {"image-arch", 1, 0, 'a'},
                                       {"text-layers", 1, 0, 'L'}, {"batch", 1, 0, 'b'},
                                       {"crop", 1, 0, 'c'},        {"seq", 1, 0, 's'},
                                       {"steps", 1, 0, 'n'},       {"warmup", 1, 0, 'w'},
                                       {"label", 1, 0, 'l'},       {"threads", 1, 0, 'j'},
                                       {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 't': text_dir = optarg; break;
        case 'a': arch = optarg; break;
        case 'L': layers = (int)parse_long("--text-layers", optarg, 0, 48); break;
        case 'b': batch = (int)parse_long("--batch", optarg, 2, 4096); break;
        case 'c': crop = (int)parse_long("--crop", optarg, 32, 4096); break;
        case 's': seq = (int)parse_long("--seq", optarg, 2, 512); break;
        case 'n': steps = (int)parse_long("--steps", optarg, 1, 100000); break;
        case 'w': warm = (int)parse_long("--warmup", optarg, 0, 100000); break;
        case 'l': label = optarg; break;
        case 'j': threads = (int)parse_long("--threads", optarg, 0, 4096); break;
        default: die_usage("unknown option");
        }
    }
    if (!text_dir) die_usage("--text-config DIR is required");
    threads_set(threads);
    resnet_config icfg = resnet_config_parse(arch);
    convirt_model *m = convirt_new(&icfg, NULL, text_dir, layers, 1, 2048, 128, 0.07f, 0.5f, 0);
    convirt_batch_alloc(m, batch, crop, seq);
    size_t npix = (size_t)batch * 3 * crop * crop;
    float *images = xmalloc(npix * sizeof(float));
    torch_gen g;
    torch_gen_seed(&g, 1);
    torch_randn_f32(&g, images, (int64_t)npix);
    int32_t *ids = xmalloc((size_t)batch * seq * sizeof(int32_t));
    uint8_t *mask = xmalloc((size_t)batch * seq);
    int vocab = m->txt->cfg.vocab;
    for (int i = 0; i < batch * seq; i++) {
        ids[i] = 1 + (int32_t)((unsigned)(i * 2654435761u) % (unsigned)(vocab - 1));
        mask[i] = 1;
    }
    float *mb[CONVIRT_NSETS], *vb[CONVIRT_NSETS];
    size_t nparams = 0;
    for (int k = 0; k < CONVIRT_NSETS; k++) {
        mb[k] = xcalloc(m->sets[k]->total + 1, sizeof(float));
        vb[k] = xcalloc(m->sets[k]->total + 1, sizeof(float));
        for (int j = 0; j < m->sets[k]->n; j++) nparams += m->sets[k]->e[j].numel;
    }
    adamw_config ac = adamw_defaults(2e-5f);
    ac.weight_decay = 0.05f;
    double *t = xmalloc(sizeof(double) * (size_t)steps), loss = 0;
    for (int s = 0; s < warm + steps; s++) {
        double t0 = now_s();
        for (int k = 0; k < CONVIRT_NSETS; k++) param_zero_grad(m->sets[k]);
        loss = convirt_train_step(m, images, ids, mask, batch, 1.0f, NULL);
        clip_grad_norm_multi(m->sets, CONVIRT_NSETS, 1.0);
        for (int k = 0; k < CONVIRT_NSETS; k++) adamw_step(m->sets[k], mb[k], vb[k], s + 1, &ac);
        double dt = now_s() - t0;
        if (s >= warm) t[s - warm] = dt;
        fprintf(stderr, "bench_vlptrain: %s: step %d: %.3f s%s\n", label, s + 1, dt, s < warm ? " (warm-up)" : "");
    }
    qsort(t, (size_t)steps, sizeof(double), cmp_double);
    double med = steps % 2 ? t[steps / 2] : 0.5 * (t[steps / 2 - 1] + t[steps / 2]);
    printf("{\"bench\":\"vlptrain_train\",\"impl\":\"synthcxr\",\"model\":\"%s\",\"image_arch\":\"%s\","
           "\"text_layers\":%d,\"params\":%zu,\"batch\":%d,\"crop\":%d,\"seq\":%d,\"threads\":%d,\"steps\":%d,"
           "\"step_s_median\":%.4f,\"step_s_best\":%.4f,\"samples_per_s\":%.3f,\"loss\":%.5f}\n",
           label, strchr(arch, '"') ? "json" : arch, m->txt->cfg.layers, nparams, batch, crop, seq, threads_get(),
           steps, med, t[0], batch / med, loss);
    for (int k = 0; k < CONVIRT_NSETS; k++) {
        free(mb[k]);
        free(vb[k]);
    }
    free(t);
    free(images);
    free(ids);
    free(mask);
    convirt_free(m);
    return 0;
}
