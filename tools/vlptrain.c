/* vlptrain.c — vision-language pre-training on pairpack shards: a ResNet-50
 * image encoder and a BERT text encoder with projection heads, trained with a
 * contrastive loss (ConVIRT; GLoRIA and MGCA later), AdamW with MGCA's warm-up
 * cosine schedule, checkpoints as safetensors with torchvision / HF names.
 * The model and its step live in libcommon/convirt; this file is the command
 * line, the loop over steps, validation, logging and resuming. */
#include "common.h"
#include "contrastive.h"
#include "convirt.h"
#include "json.h"
#include "optim.h"
#include "pairs_data.h"
#include "progress.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "Usage: vlptrain --text-model DIR -o CKPT [OPTION]... [SHARD]...\n"
    "Pre-train an image and a text encoder on image-report pairs with a contrastive\n"
    "loss. SHARDs are pairpack streams, cxrstream(5) (files or quoted globs; with\n"
    "none, or -, standard input). Writes a JSON line per logged step and per\n"
    "validation to standard output.\n"
    "\n"
    "      --method M            convirt, gloria or mgca (default convirt)\n"
    "      --text-model DIR      BERT folder such as Bio_ClinicalBERT; required\n"
    "      --text-random         initialise BERT at random from DIR/config.json\n"
    "                            instead of loading its weights\n"
    "      --text-layers N       keep the first N BERT layers, 1-48 (default 6, or\n"
    "                            all of a model with fewer)\n"
    "      --image-weights FILE  torchvision ResNet weights, safetensors\n"
    "                            (default: random initialisation)\n"
    "      --image-arch A        resnet50, or a JSON ResNet config such as\n"
    "                            {\"layers\":[1,1,1,1],\"stem_width\":8,\"planes\":4}\n"
    "                            (default resnet50)\n"
    "      --embed-dim N         projection size, 1-4096 (default 128)\n"
    "      --proj-hidden N       projection heads' hidden width, 1-65536\n"
    "                            (default 2048)\n"
    "      --temperature T       InfoNCE temperature, 0.001-10 (default 0.07)\n"
    "      --lambda L            weight of the image-to-text loss, 0-1 (default 0.5;\n"
    "                            the ConVIRT paper used 0.75 with temperature 0.1)\n"
    "      --crop N              side of the random (training) and centre\n"
    "                            (validation) crops, 32-4096 (default 224)\n"
    "      --epochs N            passes over the pairs, 1-100000 (default 50)\n"
    "      --steps N             optimiser steps in all (default: from --epochs)\n"
    "      --batch B             pairs per forward pass, 2-65536 (default 72)\n"
    "      --accumulate N        batches per optimiser step, 1-1024 (default 1;\n"
    "                            also --accum)\n"
    "      --lr LR               peak learning rate, 0-1 (default 2e-5)\n"
    "      --min-lr LR           learning rate floor, 0-1 (default 1e-8)\n"
    "      --weight-decay W      AdamW weight decay, 0-1 (default 0.05)\n"
    "      --warmup F            fraction of the steps in linear warm-up, 0-1\n"
    "                            (default 0.4)\n"
    "      --clip-grad N         clip the global gradient norm to N; 0 = off\n"
    "                            (default 0; also --clip)\n"
    "      --val-fraction F      pairs held out for validation, 0-0.5 (default 0.05)\n"
    "      --val-every N         steps between validations; 0 = at the end of each\n"
    "                            epoch and of training (default 0)\n"
    "      --seed N              initialisation, split, shuffling, crops (default 0)\n"
    "  -o, --output CKPT         checkpoint file (safetensors); required (also --out)\n"
    "      --save-every N        steps between checkpoints; 0 = only at the end\n"
    "                            (default 1000)\n"
    "      --log-every N         steps between JSON log lines, 1-1000000 (default 10)\n"
    "      --resume CKPT         continue exactly from a checkpoint\n"
    "      --stop-after N        save and stop after step N, as if interrupted\n"
    COMMON_HELP
    "\n"
    "Example:\n"
    "  vlptrain --text-model bio_clinicalbert --image-weights resnet50.safetensors \\\n"
    "           -o convirt.safetensors 'shards/pairs-*.cxs' >train.jsonl\n";

static const char *const methods[] = {"convirt", "gloria", "mgca", NULL};
enum { METHOD_CONVIRT, METHOD_GLORIA, METHOD_MGCA };

struct cmdline {
    int method;
    const char *text_model;     /* HF BERT folder */
    long text_layers;
    int text_random;            /* BERT from config.json, random weights */
    const char *image_weights;  /* NULL: random init */
    const char *image_arch;     /* "resnet50" or a JSON config */
    long embed_dim, proj_hidden, crop, steps, stop_after, val_every;
    double temperature, lambda;
    long epochs, batch, accumulate;
    double lr, min_lr, weight_decay, warmup, clip_grad, val_fraction;
    long seed;
    const char *output;         /* checkpoint path */
    long save_every, log_every;
    const char *resume;         /* NULL: fresh start */
    char **shards;              /* argv tail; nshards == 0: stdin */
    int nshards;
    struct common_opts common;
};

enum { OPT_METHOD = OPT_COMMON_LAST, OPT_TEXT_MODEL, OPT_TEXT_LAYERS, OPT_IMAGE_WEIGHTS,
       OPT_EMBED_DIM, OPT_TEMPERATURE, OPT_LAMBDA, OPT_EPOCHS, OPT_BATCH, OPT_ACCUMULATE,
       OPT_LR, OPT_MIN_LR, OPT_WEIGHT_DECAY, OPT_WARMUP, OPT_CLIP_GRAD, OPT_VAL_FRACTION,
       OPT_SEED, OPT_SAVE_EVERY, OPT_LOG_EVERY, OPT_RESUME, OPT_IMAGE_ARCH, OPT_PROJ_HIDDEN, OPT_CROP,
       OPT_STEPS, OPT_STOP_AFTER, OPT_VAL_EVERY, OPT_TEXT_RANDOM };

static const struct option longopts[] = {
    {"method", required_argument, 0, OPT_METHOD},
    {"text-model", required_argument, 0, OPT_TEXT_MODEL},
    {"text-layers", required_argument, 0, OPT_TEXT_LAYERS},
    {"image-weights", required_argument, 0, OPT_IMAGE_WEIGHTS},
    {"embed-dim", required_argument, 0, OPT_EMBED_DIM},
    {"temperature", required_argument, 0, OPT_TEMPERATURE},
    {"lambda", required_argument, 0, OPT_LAMBDA},
    {"epochs", required_argument, 0, OPT_EPOCHS},
    {"batch", required_argument, 0, OPT_BATCH},
    {"accumulate", required_argument, 0, OPT_ACCUMULATE},
    {"lr", required_argument, 0, OPT_LR},
    {"min-lr", required_argument, 0, OPT_MIN_LR},
    {"weight-decay", required_argument, 0, OPT_WEIGHT_DECAY},
    {"warmup", required_argument, 0, OPT_WARMUP},
    {"clip-grad", required_argument, 0, OPT_CLIP_GRAD},
    {"val-fraction", required_argument, 0, OPT_VAL_FRACTION},
    {"seed", required_argument, 0, OPT_SEED},
    {"output", required_argument, 0, 'o'},
    {"save-every", required_argument, 0, OPT_SAVE_EVERY},
    {"log-every", required_argument, 0, OPT_LOG_EVERY},
    {"resume", required_argument, 0, OPT_RESUME},
    {"image-arch", required_argument, 0, OPT_IMAGE_ARCH},
    {"proj-hidden", required_argument, 0, OPT_PROJ_HIDDEN},
    {"crop", required_argument, 0, OPT_CROP},
    {"steps", required_argument, 0, OPT_STEPS},
    {"stop-after", required_argument, 0, OPT_STOP_AFTER},
    {"val-every", required_argument, 0, OPT_VAL_EVERY},
    {"text-random", no_argument, 0, OPT_TEXT_RANDOM},
    {"accum", required_argument, 0, OPT_ACCUMULATE},
    {"clip", required_argument, 0, OPT_CLIP_GRAD},
    {"out", required_argument, 0, 'o'},
    COMMON_LONGOPTS,
    {0, 0, 0, 0}};

static void cmdline_parse(struct cmdline *cl, int argc, char **argv) {
    static const struct prog_doc doc = {"vlptrain", usage};
    /* Defaults: the MGCA recipe (STUDY.md), ConVIRT loss with temperature 0.07. */
    *cl = (struct cmdline){.method = METHOD_CONVIRT, .text_layers = 0, .embed_dim = 128,
                           .temperature = 0.07, .lambda = 0.5, .epochs = 50, .batch = 72,
                           .accumulate = 1, .lr = 2e-5, .min_lr = 1e-8, .weight_decay = 0.05,
                           .warmup = 0.4, .val_fraction = 0.05, .save_every = 1000,
                           .log_every = 10, .image_arch = "resnet50", .proj_hidden = 2048,
                           .crop = 224};
    common_defaults(&cl->common);
    int c;
    while ((c = getopt_long(argc, argv, "o:" COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_METHOD: cl->method = parse_enum("--method", optarg, methods); break;
        case OPT_TEXT_MODEL: cl->text_model = optarg; break;
        case OPT_TEXT_LAYERS: cl->text_layers = parse_long("--text-layers", optarg, 1, 48); break;
        case OPT_IMAGE_WEIGHTS: cl->image_weights = optarg; break;
        case OPT_EMBED_DIM: cl->embed_dim = parse_long("--embed-dim", optarg, 1, 4096); break;
        case OPT_TEMPERATURE:
            cl->temperature = parse_double("--temperature", optarg, 1e-3, 10);
            break;
        case OPT_LAMBDA: cl->lambda = parse_double("--lambda", optarg, 0, 1); break;
        case OPT_EPOCHS: cl->epochs = parse_long("--epochs", optarg, 1, 100000); break;
        case OPT_BATCH: cl->batch = parse_long("--batch", optarg, 2, 65536); break;
        case OPT_ACCUMULATE: cl->accumulate = parse_long("--accumulate", optarg, 1, 1024); break;
        case OPT_LR: cl->lr = parse_double("--lr", optarg, 0, 1); break;
        case OPT_MIN_LR: cl->min_lr = parse_double("--min-lr", optarg, 0, 1); break;
        case OPT_WEIGHT_DECAY:
            cl->weight_decay = parse_double("--weight-decay", optarg, 0, 1);
            break;
        case OPT_WARMUP: cl->warmup = parse_double("--warmup", optarg, 0, 1); break;
        case OPT_CLIP_GRAD: cl->clip_grad = parse_double("--clip-grad", optarg, 0, 1e6); break;
        case OPT_VAL_FRACTION:
            cl->val_fraction = parse_double("--val-fraction", optarg, 0, 0.5);
            break;
        case OPT_SEED: cl->seed = parse_long("--seed", optarg, 0, INT64_MAX); break;
        case 'o':
            if (!*optarg) die_usage("--output: the file name is empty");
            cl->output = optarg;
            break;
        case OPT_SAVE_EVERY: cl->save_every = parse_long("--save-every", optarg, 0, INT64_MAX); break;
        case OPT_LOG_EVERY: cl->log_every = parse_long("--log-every", optarg, 1, 1000000); break;
        case OPT_RESUME: cl->resume = optarg; break;
        case OPT_IMAGE_ARCH: cl->image_arch = optarg; break;
        case OPT_PROJ_HIDDEN: cl->proj_hidden = parse_long("--proj-hidden", optarg, 1, 65536); break;
        case OPT_CROP: cl->crop = parse_long("--crop", optarg, 32, 4096); break;
        case OPT_STEPS: cl->steps = parse_long("--steps", optarg, 1, INT64_MAX); break;
        case OPT_STOP_AFTER: cl->stop_after = parse_long("--stop-after", optarg, 1, INT64_MAX); break;
        case OPT_TEXT_RANDOM: cl->text_random = 1; break;
        case OPT_VAL_EVERY: cl->val_every = parse_long("--val-every", optarg, 0, INT64_MAX); break;
        default: common_option(c, optarg, &cl->common, &doc);
        }
    }
    cl->shards = argv + optind;
    cl->nshards = argc - optind;
    if (!cl->text_model) die_usage("--text-model DIR is required (a BERT folder)");
    if (!cl->output) die_usage("--output CKPT is required (where the checkpoint goes)");
    if (cl->min_lr > cl->lr) die_usage("--min-lr %g is above --lr %g", cl->min_lr, cl->lr);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Validation in eval mode: the loss over batches of `batch` pairs (a last
 * batch of one is left out of the loss: one pair has no negatives), weighted by
 * batch size, and recall@1/5/10 both ways over all validation pairs. */
static void validate(convirt_model *m, const pairs_data *d, const int *val, int nval, int batch, int crop,
                     int64_t step, int64_t epoch) {
    if (nval < 2) return;
    int e = convirt_embed_dim(m), t = d->max_tokens;
    float *img_n = xmalloc((size_t)nval * e * sizeof(float)), *txt_n = xmalloc((size_t)nval * e * sizeof(float));
    float *images = xmalloc((size_t)batch * 3 * crop * crop * sizeof(float));
    int32_t *ids = xmalloc((size_t)batch * t * sizeof(int32_t));
    uint8_t *mask = xmalloc((size_t)batch * t);
    float *logits = xmalloc((size_t)batch * batch * sizeof(float));
    double loss_sum = 0;
    int loss_n = 0;
    for (int s0 = 0; s0 < nval; s0 += batch) {
        int b = nval - s0 < batch ? nval - s0 : batch;
        pairs_make_batch(d, val + s0, b, crop, 0, 0, 0, 0, images, ids, mask);
        float *in = img_n + (size_t)s0 * e, *tn = txt_n + (size_t)s0 * e;
        convirt_embed_eval(m, images, ids, mask, b, in, tn);
        if (b >= 2) {
            loss_sum += b * infonce_forward(logits, NULL, in, tn, b, e, m->temperature, m->lambda);
            loss_n += b;
        }
    }
    float *sim = xmalloc((size_t)nval * nval * sizeof(float));
    for (int i = 0; i < nval; i++)
        for (int j = 0; j < nval; j++) {
            double acc = 0;
            for (int k = 0; k < e; k++) acc += (double)img_n[(size_t)i * e + k] * txt_n[(size_t)j * e + k];
            sim[(size_t)i * nval + j] = (float)acc;
        }
    int ks[3] = {1, 5, 10};
    double i2t[3], t2i[3];
    retrieval_recall(i2t, t2i, sim, nval, ks, 3);
    printf("{\"val\":true,\"step\":%lld,\"epoch\":%lld,\"n_val\":%d,\"val_loss\":%.9g,"
           "\"i2t_r1\":%.6g,\"i2t_r5\":%.6g,\"i2t_r10\":%.6g,\"t2i_r1\":%.6g,\"t2i_r5\":%.6g,"
           "\"t2i_r10\":%.6g,\"chance_r10\":%.6g}\n",
           (long long)step, (long long)epoch, nval, loss_n ? loss_sum / loss_n : NAN, i2t[0], i2t[1], i2t[2],
           t2i[0], t2i[1], t2i[2], nval < 10 ? 1.0 : 10.0 / nval);
    fflush(stdout);
    info("step %lld: validation loss %.4f, image->text R@1/5/10 %.3f/%.3f/%.3f (%d pairs)", (long long)step,
         loss_n ? loss_sum / loss_n : NAN, i2t[0], i2t[1], i2t[2], nval);
    free(img_n);
    free(txt_n);
    free(images);
    free(ids);
    free(mask);
    free(logits);
    free(sim);
}

static void save(const convirt_model *m, const char *path, float **mb, float **vb, const convirt_state *st) {
    convirt_save(m, path, mb, vb, st);
    info("step %lld: checkpoint %s", (long long)st->step, path);
}

int main(int argc, char **argv) {
    prog_init(argv[0]);
    argv[0] = (char *)prog_name; /* so getopt's own messages begin "vlptrain:" */
    struct cmdline cl;
    cmdline_parse(&cl, argc, argv);
    common_start(&cl.common);
    if (cl.method != METHOD_CONVIRT)
        die("--method %s is not built yet (it follows ConVIRT, issue #8); nothing was read or written",
            methods[cl.method]);
    resnet_config icfg = resnet_config_parse(cl.image_arch);
    if (cl.text_layers == 0) { /* MGCA's 6, or all of a smaller model */
        char *cfg_path = xasprintf("%s/config.json", cl.text_model);
        json_t *cfg = json_load_path(cfg_path);
        long nl = json_get_int(cfg, "num_hidden_layers", 12, cfg_path);
        cl.text_layers = nl < 6 ? nl : 6;
        json_decref(cfg);
        free(cfg_path);
    }

    pairs_data d;
    pairs_data_load(&d, cl.shards, cl.nshards, cl.common.quiet);
    if (cl.crop > d.image_size) die_usage("--crop %ld is larger than the images (%d)", cl.crop, d.image_size);
    int *train, *val, ntrain, nval;
    convirt_state st = {0, 0, 0, (uint64_t)cl.seed};
    convirt_model *m = convirt_new(&icfg, cl.resume ? NULL : cl.image_weights, cl.text_model,
                                   (int)cl.text_layers, cl.text_random, (int)cl.proj_hidden, (int)cl.embed_dim,
                                   (float)cl.temperature, (float)cl.lambda, (uint64_t)cl.seed);
    float *mb[CONVIRT_NSETS], *vb[CONVIRT_NSETS];
    for (int k = 0; k < CONVIRT_NSETS; k++) {
        mb[k] = xcalloc(m->sets[k]->total ? m->sets[k]->total : 1, sizeof(float));
        vb[k] = xcalloc(m->sets[k]->total ? m->sets[k]->total : 1, sizeof(float));
    }
    if (cl.resume) {
        convirt_load(m, cl.resume, mb, vb, &st);
        if (st.seed != (uint64_t)cl.seed) info("resuming with the checkpoint's seed %llu", (unsigned long long)st.seed);
        info("resumed %s at step %lld (epoch %lld)", cl.resume, (long long)st.step, (long long)st.epoch);
    }
    pairs_split(&d, cl.val_fraction, st.seed, &train, &ntrain, &val, &nval);
    if (ntrain < cl.batch)
        die("%d training pairs, fewer than --batch %ld (%d pairs held out for validation)", ntrain, cl.batch, nval);
    int64_t batches_per_epoch = ntrain / cl.batch;
    int64_t total = cl.steps ? cl.steps : (batches_per_epoch / cl.accumulate) * cl.epochs;
    if (total < 1) die("one epoch of %d pairs makes no optimiser step (--batch %ld, --accumulate %ld)", ntrain,
                       cl.batch, cl.accumulate);
    int64_t warmup = (int64_t)((double)total * cl.warmup);
    info("%d pairs: %d training, %d validation; %lld steps of %ld x %ld pairs, warm-up %lld", d.n, ntrain, nval,
         (long long)total, cl.batch, cl.accumulate, (long long)warmup);
    convirt_batch_alloc(m, (int)cl.batch, (int)cl.crop, d.max_tokens);

    int b = (int)cl.batch, t = d.max_tokens, crop = (int)cl.crop;
    float *images = xmalloc((size_t)b * 3 * crop * crop * sizeof(float));
    int32_t *ids = xmalloc((size_t)b * t * sizeof(int32_t));
    uint8_t *mask = xmalloc((size_t)b * t);
    int *perm = xmalloc((size_t)ntrain * sizeof(int)), *idx = xmalloc((size_t)b * sizeof(int));
    int64_t perm_epoch = -1;
    adamw_config ac = adamw_defaults((float)cl.lr);
    ac.weight_decay = (float)cl.weight_decay;
    progress pr;
    progress_start(&pr, "training", total, "step");
    double t_log = now_s();
    int64_t samples_log = 0;
    while (st.step < total) {
        for (int k = 0; k < CONVIRT_NSETS; k++) param_zero_grad(m->sets[k]);
        double loss = 0;
        for (long a = 0; a < cl.accumulate; a++) {
            if (st.pos + b > ntrain) { /* the epoch is over: drop the incomplete batch, as MGCA */
                if (cl.val_every == 0) validate(m, &d, val, nval, b, crop, st.step, st.epoch);
                st.epoch++;
                st.pos = 0;
            }
            if (perm_epoch != st.epoch) {
                pairs_epoch_order(perm, ntrain, st.seed, st.epoch);
                perm_epoch = st.epoch;
            }
            for (int k = 0; k < b; k++) idx[k] = train[perm[st.pos + k]];
            pairs_make_batch(&d, idx, b, crop, 1, st.seed, st.epoch, st.pos, images, ids, mask);
            loss += convirt_train_step(m, images, ids, mask, b, (float)(1.0 / cl.accumulate), NULL);
            st.pos += b;
        }
        loss /= (double)cl.accumulate;
        if (!isfinite(loss)) die("step %lld: the loss is %g; stopping", (long long)st.step + 1, loss);
        double gnorm = clip_grad_norm_multi(m->sets, CONVIRT_NSETS, cl.clip_grad);
        double lr = lr_cosine_warmup(st.step, total, warmup, cl.lr, cl.min_lr);
        ac.lr = (float)lr;
        for (int k = 0; k < CONVIRT_NSETS; k++) adamw_step(m->sets[k], mb[k], vb[k], st.step + 1, &ac);
        st.step++;
        samples_log += (int64_t)b * cl.accumulate;
        if (st.step % cl.log_every == 0 || st.step == total) {
            double tn = now_s();
            printf("{\"step\":%lld,\"epoch\":%lld,\"loss\":%.17g,\"lr\":%.9g,\"grad_norm\":%.9g,"
                   "\"samples_per_s\":%.4g}\n",
                   (long long)st.step, (long long)st.epoch, loss, lr, gnorm, (double)samples_log / (tn - t_log));
            fflush(stdout);
            t_log = tn;
            samples_log = 0;
        }
        progress_update(&pr, st.step);
        if (cl.val_every > 0 && st.step % cl.val_every == 0) validate(m, &d, val, nval, b, crop, st.step, st.epoch);
        int stop = cl.stop_after && st.step >= cl.stop_after && st.step < total;
        if ((cl.save_every && st.step % cl.save_every == 0) || stop) save(m, cl.output, mb, vb, &st);
        if (stop) {
            info("stopped after step %lld as --stop-after asks; --resume %s continues", (long long)st.step,
                 cl.output);
            break;
        }
    }
    progress_end(&pr);
    if (st.step >= total) {
        if (cl.val_every == 0 || st.step % cl.val_every != 0) validate(m, &d, val, nval, b, crop, st.step, st.epoch);
        save(m, cl.output, mb, vb, &st);
    }
    for (int k = 0; k < CONVIRT_NSETS; k++) {
        free(mb[k]);
        free(vb[k]);
    }
    free(images);
    free(ids);
    free(mask);
    free(perm);
    free(idx);
    free(train);
    free(val);
    convirt_free(m);
    pairs_data_free(&d);
    return 0;
}
