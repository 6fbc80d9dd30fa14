/* test_wordpiece.c — the BERT WordPiece tokenizer against transformers'
 * BertTokenizer (tests/oracle/make_wordpiece.py): every text of
 * tests/fixtures/wordpiece/encoded.jsonl (cxrphantom reports raw and
 * MGCA-cleaned, long ones truncated at 112, hand-written radiology sentences
 * with numbers, "___", punctuation, accents, non-ASCII, controls and
 * over-long words, seeded random strings) encoded with bert-base-uncased's
 * vocab, lower-cased as its tokenizer_config.json says and again cased: ids
 * and attention masks equal, 0 mismatches. Plus the vocab loader's rules and
 * its errors. */
#include "unit.h"
#include "json.h"
#include "wordpiece.h"

#include <string.h>

enum { L = 112 };

static const char *token_or(const wordpiece *wp, int32_t id) {
    return id >= 0 && id < wordpiece_vocab_size(wp) ? wordpiece_token(wp, id) : "?";
}

static int check_mode(const wordpiece *wp, json_t *rec, const char *mode, long line) {
    const char *text = json_string_value(json_object_get(rec, "text"));
    json_t *want = json_object_get(rec, mode);
    char nkey[32];
    snprintf(nkey, sizeof nkey, "n_%s", mode);
    long want_n = (long)json_integer_value(json_object_get(rec, nkey));
    int32_t ids[L], want_ids[L];
    uint8_t mask[L], want_mask[L];
    size_t k = json_array_size(want);
    CHECK(text && k >= 2 && k <= L);
    for (size_t i = 0; i < L; i++) { /* HF's padding, asserted by the oracle */
        want_ids[i] = i < k ? (int32_t)json_integer_value(json_array_get(want, i)) : wordpiece_id(wp, "[PAD]");
        want_mask[i] = i < k;
    }
    int n = wordpiece_encode(wp, text, L, ids, mask);
    int ok = memcmp(ids, want_ids, sizeof ids) == 0 && memcmp(mask, want_mask, sizeof mask) == 0 && n == want_n;
    if (!ok) {
        size_t at = 0;
        while (at < L && ids[at] == want_ids[at]) at++;
        unit_fail("line %ld (%s): ids differ from HF's at %zu (%d, HF %d; \"%s\" vs \"%s\"), %d pieces (HF %ld): %.80s",
                  line, mode, at, at < L ? ids[at] : -1, at < L ? want_ids[at] : -1,
                  at < L ? token_or(wp, ids[at]) : "", at < L ? token_or(wp, want_ids[at]) : "", n,
                  want_n, text);
    }
    return ok;
}

static void test_against_hf(void) {
    wordpiece *lower = wordpiece_open_dir(fixture_path("bert"), -1);
    wordpiece *cased = wordpiece_open_dir(fixture_path("bert"), 0);
    EXPECT(wordpiece_lowercase(lower) == 1, "tokenizer_config.json says do_lower_case");
    EXPECT(wordpiece_lowercase(cased) == 0, "the override turns it off");
    EXPECT(wordpiece_vocab_size(lower) == 30522, "vocab size %d", wordpiece_vocab_size(lower));
    FILE *f = fopen(fixture_path("wordpiece/encoded.jsonl"), "r");
    CHECK(f);
    jsonl_reader r;
    jsonl_open(&r, f, "encoded.jsonl");
    json_t *rec;
    int texts = 0, bad_lower = 0, bad_cased = 0, truncated = 0;
    while ((rec = jsonl_next(&r))) {
        texts++;
        bad_lower += !check_mode(lower, rec, "lower", r.lineno);
        bad_cased += !check_mode(cased, rec, "cased", r.lineno);
        truncated += json_integer_value(json_object_get(rec, "n_lower")) > L - 2;
        json_decref(rec);
    }
    jsonl_close(&r);
    fclose(f);
    EXPECT(texts >= 300 && truncated >= 5, "%d texts, %d truncated", texts, truncated);
    EXPECT(bad_lower == 0 && bad_cased == 0, "mismatches: %d lower-cased, %d cased of %d texts", bad_lower,
           bad_cased, texts);
    printf("# %d texts x 2 modes against HF BertTokenizer: %d + %d mismatches, %d truncated\n", texts, bad_lower,
           bad_cased, truncated);
    wordpiece_free(lower);
    wordpiece_free(cased);
}

static void test_pieces(void) {
    wordpiece *wp = wordpiece_open_dir(fixture_path("bert"), -1);
    int n;
    int32_t *ids = wordpiece_tokenize(wp, "Unaffable!", &n);
    /* una ##ffa ##ble ! in bert-base-uncased (HF tokenize) */
    const char *want[] = {"una", "##ffa", "##ble", "!"};
    EXPECT(n == 4, "\"Unaffable!\" gives %d pieces", n);
    for (int i = 0; i < n && i < 4; i++)
        EXPECT(strcmp(wordpiece_token(wp, ids[i]), want[i]) == 0, "piece %d: %s, want %s", i,
               wordpiece_token(wp, ids[i]), want[i]);
    free(ids);
    ids = wordpiece_tokenize(wp, "", &n);
    EXPECT(n == 0, "empty text: %d pieces", n);
    free(ids);
    int32_t e[8];
    uint8_t m[8];
    EXPECT(wordpiece_encode(wp, "", 8, e, m) == 0, "empty encode");
    EXPECT(e[0] == wordpiece_id(wp, "[CLS]") && e[1] == wordpiece_id(wp, "[SEP]") && e[2] == 0 && m[1] == 1 &&
               m[2] == 0, "empty text: [CLS] [SEP] [PAD]...");
    wordpiece_free(wp);
}

static void test_vocab_rules(void) {
    const char *dir = unit_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    /* a repeated token keeps its last id; the last line needs no newline */
    const char *v = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nab\n##c\nab\nx";
    unit_spit(path, v, strlen(v));
    wordpiece *wp = wordpiece_load(path, 1, -1);
    EXPECT(wordpiece_vocab_size(wp) == 8, "8 lines, %d tokens", wordpiece_vocab_size(wp));
    EXPECT(wordpiece_id(wp, "ab") == 6, "repeated token: id %d, want the last (6)", wordpiece_id(wp, "ab"));
    EXPECT(wordpiece_id(wp, "x") == 7 && wordpiece_id(wp, "y") == -1, "last line and a missing token");
    int n;
    int32_t *ids = wordpiece_tokenize(wp, "ABC abd", &n);
    EXPECT(n == 3 && ids[0] == 6 && ids[1] == 5 && ids[2] == 1, "ABC -> ab ##c, abd -> [UNK] (%d ids)", n);
    free(ids);
    wordpiece_free(wp);
}

static void load_bad(void *arg) { wordpiece_load((const char *)arg, 1, -1); }

static void test_vocab_errors(void) {
    const char *dir = unit_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/nounk.txt", dir);
    unit_spit(path, "[PAD]\n[CLS]\n[SEP]\n", 18);
    expect_dies("a vocab without [UNK]", load_bad, path, 2, "the vocab has no [UNK] token");
    expect_dies("a missing vocab", load_bad, "/nonexistent/vocab.txt", 2, "cannot open /nonexistent/vocab.txt");
    snprintf(path, sizeof path, "%s/empty.txt", dir);
    unit_spit(path, "", 0);
    static char empty[512];
    snprintf(empty, sizeof empty, "%s", path);
    expect_dies("an empty vocab", load_bad, empty, 2, "empty vocab");
}

int main(void) {
    RUN(test_against_hf);
    RUN(test_pieces);
    RUN(test_vocab_rules);
    RUN(test_vocab_errors);
    return unit_done();
}
