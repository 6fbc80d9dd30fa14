/* report_clean.h — a radiology report cleaned as MGCA prepares its
 * pre-training text (mgca/datasets/pretrain_dataset.py): impression + " " +
 * findings; split at each run of ASCII digits followed by "." (numbered
 * lists, and also decimals: "1.2 cm" loses its "1.") and then at each ".";
 * each piece lower-cased as Python's str.lower and cut into \w+ tokens
 * (Python re's \w, as the nltk 3.5 MGCA pins uses it: letters, digits, "_", not
 * combining marks); a piece of at most one token dropped;
 * each token keeps only its ASCII characters (empty ones dropped); the pieces
 * joined by single spaces. MGCA keeps a study when the total is at least 3
 * tokens. Equal to the Python reference (tests/oracle/make_report_clean.py). */
#ifndef SYNTHCXR_REPORT_CLEAN_H
#define SYNTHCXR_REPORT_CLEAN_H

enum { REPORT_MIN_TOKENS = 3 };

/* The cleaned text (a new string; "" when nothing is left) of impression and
 * findings (UTF-8; either may be NULL, taken as ""; invalid bytes count as
 * U+FFFD). *ntokens gets the number of tokens kept. */
char *report_clean(const char *impression, const char *findings, int *ntokens);

#endif
