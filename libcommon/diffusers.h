/* diffusers.h — finds the files of a model folder as diffusers publishes it
 * (save_pretrained / the Hugging Face hub), e.g. RoentGen or
 * stabilityai/stable-diffusion-2-1-base:
 *   model_index.json                 pipeline class and its parts
 *   unet/config.json                 + diffusion_pytorch_model[.fp16].safetensors
 *   vae/config.json                  + diffusion_pytorch_model[.fp16].safetensors
 *   text_encoder/config.json         + model[.fp16].safetensors (transformers naming)
 *   tokenizer/vocab.json, merges.txt, tokenizer_config.json
 *   scheduler/scheduler_config.json
 * A sharded checkpoint (<base>.safetensors.index.json with a weight_map, or
 * <base>.safetensors.index.fp16.json) is found too. Weights must be
 * safetensors: a folder with only pickle (.bin) weights is an error saying so.
 * Every error names the folder and what was looked for. */
#ifndef SYNTHCXR_DIFFUSERS_H
#define SYNTHCXR_DIFFUSERS_H

#include <jansson.h>

/* Which weights to take when both the full-precision file and the .fp16
 * variant exist; with only one, that one is taken either way. */
typedef enum { DIFFUSERS_PREFER_FP32 = 0, DIFFUSERS_PREFER_FP16 = 1 } diffusers_pref;

typedef struct diffusers_part {
    char *name;            /* "unet" */
    char *library;         /* "diffusers", "transformers" (model_index.json), or NULL */
    char *class_name;      /* "UNet2DConditionModel", or NULL when not known */
    char *dir;             /* "<root>/unet" */
    char *config_path;     /* "<root>/unet/config.json"; scheduler_config.json for a scheduler;
                            * tokenizer_config.json for a tokenizer (NULL if it has none) */
    json_t *config;        /* that file parsed, or NULL */
    int n_weights;         /* 0 for parts without weights (scheduler, tokenizer) */
    char **weight_paths;   /* one file, or a sharded checkpoint's shards (sorted, unique) */
    int fp16_variant;      /* the chosen weights are the .fp16 files */
    char *index_path;      /* the shard index file, or NULL */
    json_t *weight_map;    /* sharded: {tensor name: shard file name}; NULL otherwise */
    json_t *index;         /* owns weight_map */
} diffusers_part;

typedef struct diffusers_model {
    char *root;            /* the folder as given, without trailing slashes */
    char *name;            /* display name for provenance: see diffusers_open */
    char *class_name;      /* "StableDiffusionPipeline" (model_index.json "_class_name"), or NULL */
    json_t *index;         /* model_index.json, or NULL for a single-part folder */
    diffusers_pref pref;
    int n_parts;
    diffusers_part **parts; /* resolved on first diffusers_part() call, NULL until then */
    char **part_names;      /* every part model_index.json lists (non-null entries) */
} diffusers_model;

/* Opens a pipeline folder: reads model_index.json (dies "<root>/: no
 * model_index.json" if absent, naming the file on a JSON error). Parts are
 * resolved when asked for. The display name is model_index.json's
 * "_name_or_path" when present, else "org/name" for a Hugging Face cache
 * snapshot (.../models--org--name/snapshots/<hash>), else the folder's name. */
diffusers_model *diffusers_open(const char *root, diffusers_pref pref);
void diffusers_close(diffusers_model *m);                    /* NULL is fine */

/* The part with this name ("unet", "vae", "text_encoder", "tokenizer",
 * "scheduler", ...), resolved: its config parsed and, for a model part
 * (one with config.json), its weights found. Dies naming the folder when the
 * part, its config or its weights are missing:
 *   "roentgen/: no unet weights: looked for unet/diffusion_pytorch_model.safetensors, ..." */
const diffusers_part *diffusers_part_get(diffusers_model *m, const char *name);
/* Does model_index.json list this part (with a non-null entry)? */
int diffusers_has_part(const diffusers_model *m, const char *name);

/* A file in a part's folder that must exist ("tokenizer", "vocab.json"):
 * a path in fresh memory, or dies "<root>/: no tokenizer/vocab.json". */
char *diffusers_file(const diffusers_model *m, const char *part, const char *file);

/* A lone model folder (config.json + weights, no model_index.json), such as
 * a VAE published on its own: resolved like a part. Free with diffusers_part_free. */
diffusers_part *diffusers_part_open(const char *dir, diffusers_pref pref);
void diffusers_part_free(diffusers_part *p);                 /* NULL is fine */

/* The weight file holding a tensor: the one file, or for a sharded
 * checkpoint the shard the weight_map names (NULL if the map lacks it). */
const char *diffusers_weight_file(const diffusers_part *p, const char *tensor_name);

#endif
