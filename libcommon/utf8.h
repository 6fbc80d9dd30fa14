/* utf8.h — the UTF-8 and Unicode-table helpers the text code shares (the
 * CLIP tokenizer, the BERT WordPiece tokenizer, MGCA's report cleaning):
 * decoding one code point with the lossy rule of Python's
 * bytes.decode(errors="replace") per bad byte, encoding one, and membership in
 * the sorted code-point range tables that tests/oracle generates. */
#ifndef SYNTHCXR_UTF8_H
#define SYNTHCXR_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The code point at *sp (< end), advancing *sp past it. A byte that does not
 * start a valid, complete, shortest-form sequence (or one that would be a
 * surrogate or above U+10FFFF) gives U+FFFD and advances one byte. */
uint32_t utf8_next(const unsigned char **sp, const unsigned char *end);
/* Writes c (<= U+10FFFF) as 1-4 bytes at o; returns the count. */
int utf8_put(unsigned char *o, uint32_t c);
/* 1 when c lies in one of the n sorted, disjoint [lo, hi] ranges. */
int unicode_in_ranges(const uint32_t (*ranges)[2], size_t n, uint32_t c);
/* The row of a [rows][k] table sorted on its first column whose first entry is
 * c, or NULL (decomposition and case tables). */
const uint32_t *unicode_find_row(const uint32_t *table, size_t rows, size_t k, uint32_t c);
#define UNICODE_IN(table, c) unicode_in_ranges(table, sizeof table / sizeof table[0], c)

#endif
