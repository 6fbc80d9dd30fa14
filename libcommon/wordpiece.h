/* wordpiece.h — the BERT tokenizer as Hugging Face's BertTokenizer runs it
 * (transformers 5: the `tokenizers` BertNormalizer, BertPreTokenizer, WordPiece
 * and the [CLS] $A [SEP] template), for report text: ids and attention masks
 * equal HF's (tests/oracle/make_wordpiece.py).
 *   1. clean: U+0000, U+FFFD and control/format/unassigned characters removed,
 *      every kind of white space made " "; CJK ideographs spaced apart;
 *   2. with strip_accents (default: same as lowercase): NFD, non-spacing
 *      marks removed; with lowercase: Unicode lower-case per character;
 *   3. split at spaces and around each punctuation character (BERT's: ASCII
 *      punctuation and the Unicode P* categories);
 *   4. each word of at most 100 characters matched greedily, longest vocab
 *      entry first, continuations prefixed "##"; a word with no match, or a
 *      longer one, becomes [UNK].
 * Not handled: added/special tokens written in the text ("[SEP]" in a report
 * is tokenised as its characters, where HF would match the special token). */
#ifndef SYNTHCXR_WORDPIECE_H
#define SYNTHCXR_WORDPIECE_H

#include <stdint.h>

typedef struct wordpiece wordpiece;

/* Loads vocab.txt (one token a line, id = line number from 0, as HF reads it;
 * a repeated token keeps its last id). lowercase: 0 or 1; strip_accents: 0, 1,
 * or -1 to follow lowercase (HF's default). Dies naming the file when it
 * cannot be read or lacks [UNK], [CLS], [SEP] or [PAD]. */
wordpiece *wordpiece_load(const char *vocab_path, int lowercase, int strip_accents);

/* A Hugging Face model folder: dir/vocab.txt, and do_lower_case (default
 * true, as BertTokenizer's) and strip_accents from dir/tokenizer_config.json
 * when it exists. lowercase >= 0 overrides do_lower_case. */
wordpiece *wordpiece_open_dir(const char *dir, int lowercase);
void wordpiece_free(wordpiece *wp); /* NULL is fine */

int wordpiece_lowercase(const wordpiece *wp);
int wordpiece_vocab_size(const wordpiece *wp);
/* The id of a vocab entry, or -1. */
int32_t wordpiece_id(const wordpiece *wp, const char *token);
/* The token of an id (0 <= id < vocab size). */
const char *wordpiece_token(const wordpiece *wp, int32_t id);

/* The ids of text (UTF-8; invalid bytes count as U+FFFD) without [CLS]/[SEP]:
 * a new array (free it) of *n ids. */
int32_t *wordpiece_tokenize(const wordpiece *wp, const char *text, int *n);

/* BertTokenizer(text, max_length=L, truncation=True, padding="max_length"):
 * ids [L] = [CLS], the first L - 2 word pieces, [SEP], then [PAD]; mask [L]
 * 1 over [CLS]..[SEP], 0 over padding. L >= 2. Returns the number of word
 * pieces before truncation. */
int wordpiece_encode(const wordpiece *wp, const char *text, int max_length, int32_t *ids, uint8_t *mask);

#endif
