/* clip_tokenizer.h — the CLIP byte-level BPE tokenizer as Stable Diffusion
 * pipelines run it (Hugging Face CLIPTokenizer over a model folder's
 * tokenizer/vocab.json and merges.txt): text fixing and lower-casing, the split
 * pattern, BPE with "</w>", BOS/EOS, truncation and padding to the model's
 * max length (77). SD 1.x pads with the EOS id, SD 2.x with its pad_token ("!"). */
#ifndef SYNTHCXR_CLIP_TOKENIZER_H
#define SYNTHCXR_CLIP_TOKENIZER_H

#include <stdint.h>

typedef struct clip_tokenizer clip_tokenizer;

/* Loads dir/vocab.json, dir/merges.txt and, when present, dir/tokenizer_config.json
 * and dir/special_tokens_map.json (pad token, model_max_length). Dies naming the
 * file on a missing or malformed one. */
clip_tokenizer *clip_tokenizer_open(const char *dir);
void clip_tokenizer_free(clip_tokenizer *t);

int clip_tokenizer_max_length(const clip_tokenizer *t);   /* 77 */
int32_t clip_tokenizer_bos(const clip_tokenizer *t);
int32_t clip_tokenizer_eos(const clip_tokenizer *t);
int32_t clip_tokenizer_pad(const clip_tokenizer *t);

/* Tokenizes text into exactly max_length ids: BOS, tokens (truncated so EOS
 * fits), EOS, then padding. Returns the count before padding (BOS..EOS). */
int clip_tokenize(const clip_tokenizer *t, const char *text, int32_t *ids);

#endif
