/* pairs_data.h — the training data of vlptrain: pairpack's "pairs" streams
 * (files, shell globs, or standard input) loaded whole into memory (u8 images
 * of image_size^2 bytes each, 64 KiB at 256^2, plus 5 bytes per token: 4,000
 * pairs take about 260 MB), split into training and validation pairs, shuffled
 * per epoch, and turned into batches with MGCA's augmentation: a random crop
 * (training) or the centre crop (validation) of crop^2 pixels, x/255 normalised
 * with mean 0.5 and std 0.5, the grey channel repeated three times.
 *
 * Every random choice is a pure function of (seed, epoch, position) through a
 * counter-based generator (splitmix64), so training resumed at a step draws
 * exactly what an uninterrupted run would: the "RNG state" is the counters. */
#ifndef SYNTHCXR_PAIRS_DATA_H
#define SYNTHCXR_PAIRS_DATA_H

#include <stdint.h>

typedef struct pairs_data {
    int n;                  /* pairs loaded */
    int image_size;         /* side of the stored square images (header meta; 256) */
    int max_tokens;         /* token slots per pair (header meta; 112) */
    uint8_t *images;        /* [n, image_size, image_size] */
    int32_t *input_ids;     /* [n, max_tokens] */
    uint8_t *attn_mask;     /* [n, max_tokens] */
    char **ids;             /* [n] record ids */
    char *vocab;            /* header meta "vocab" (may be NULL) */
    int lowercase;          /* header meta "lowercase" (-1 if absent) */
} pairs_data;

/* Loads every record of the streams named in paths (npaths 0, or a path "-":
 * standard input; a path with *, ? or [ is expanded as a shell glob and must
 * match something). Every stream must be of kind "pairs" with the same
 * image_size and max_tokens. Dies naming the stream and record on bad input,
 * and when nothing at all was read. Progress on stderr unless quiet. */
void pairs_data_load(pairs_data *d, char *const *paths, int npaths, int quiet);
void pairs_data_free(pairs_data *d);

/* Validation split: the round(fraction * n) pairs whose hash of (seed, id)
 * is smallest go to validation (so the split depends on the ids and the seed,
 * not on the order or sharding of the input); the rest train. Both lists are
 * in input order, allocated. fraction > 0 keeps at least one pair on each
 * side when n >= 2. */
void pairs_split(const pairs_data *d, double fraction, uint64_t seed, int **train, int *ntrain, int **val,
                 int *nval);

/* The order of the training list in epoch `epoch` (0-based): perm [n] gets
 * 0..n-1 shuffled (Fisher-Yates) by a generator keyed on (seed, epoch). */
void pairs_epoch_order(int *perm, int n, uint64_t seed, int64_t epoch);

/* A batch of b pairs idx[0..b) into
 *   images [b, 3, crop, crop] (float, normalised), input_ids [b, max_tokens]
 *   (int32), attn_mask [b, max_tokens] (u8 0/1, as bert_forward takes it).
 * train: the crop offset of item k is drawn from (seed, epoch, pos + k),
 * uniform in 0..image_size-crop each way (torchvision RandomCrop); otherwise
 * the centre crop (offset round((image_size - crop) / 2), torchvision CenterCrop). */
void pairs_make_batch(const pairs_data *d, const int *idx, int b, int crop, int train, uint64_t seed,
                      int64_t epoch, int64_t pos, float *images, int32_t *input_ids, uint8_t *attn_mask);

/* The crop offsets pairs_make_batch uses for position pos (top, left). */
void pairs_crop_offset(int *top, int *left, int image_size, int crop, uint64_t seed, int64_t epoch, int64_t pos);

/* splitmix64 of a key: the generator behind every draw above. */
uint64_t pairs_hash(uint64_t a, uint64_t b, uint64_t c);

#endif
