/* test_clip_tokenizer.c — the CLIP tokenizer against Hugging Face: ids for
 * 300+ radiology-style sentences (tests/oracle/make_clip_tokenizer.py ran
 * transformers' CLIPTokenizer over the SD 1.x and SD 2.x tokenizer folders the
 * way StableDiffusionPipeline calls it) must be equal, every one; plus the
 * special ids, the error paths, and a speed figure. */
#include "unit.h"
#include "clip_tokenizer.h"
#include "json.h"

#include <sys/stat.h>
#include <time.h>

#define MAXS 1024

static char *sentences[MAXS];
static int nsent;

static void load_sentences(void) {
    if (nsent) return;
    FILE *f = fopen(fixture_path("clip_tokenizer_ref.jsonl"), "rb");
    CHECK(f);
    jsonl_reader r;
    jsonl_open(&r, f, "clip_tokenizer_ref.jsonl");
    json_t *j;
    while ((j = jsonl_next(&r))) {
        CHECK(json_is_string(j) && nsent < MAXS);
        sentences[nsent++] = xstrdup(json_string_value(j));
        json_decref(j);
    }
    jsonl_close(&r);
    fclose(f);
}

/* Prints the sentence with control characters escaped, for a failure message. */
static const char *shown(const char *s) {
    static char buf[600];
    size_t k = 0;
    for (; *s && k < sizeof buf - 8; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 32) k += (size_t)snprintf(buf + k, sizeof buf - k, "\\x%02x", c);
        else buf[k++] = (char)c;
    }
    buf[k] = 0;
    return buf;
}

static void check_folder(const char *name, int32_t want_pad) {
    load_sentences();
    char key[32];
    char *dir = xasprintf("%s/%s", fixture_path("tokenizers"), name);
    clip_tokenizer *t = clip_tokenizer_open(dir);
    free(dir);
    int L = clip_tokenizer_max_length(t);
    EXPECT(L == 77, "%s: max length %d", name, L);
    EXPECT(clip_tokenizer_bos(t) == 49406 && clip_tokenizer_eos(t) == 49407, "%s: bos %d eos %d", name,
           clip_tokenizer_bos(t), clip_tokenizer_eos(t));
    EXPECT(clip_tokenizer_pad(t) == want_pad, "%s: pad %d, want %d", name, clip_tokenizer_pad(t), want_pad);

    st_file *f = st_open(fixture_path("clip_tokenizer_ref.safetensors"));
    snprintf(key, sizeof key, "ids_%s", name);
    tensor *want = st_load(f, key);
    snprintf(key, sizeof key, "len_%s", name);
    tensor *wlen = st_load(f, key);
    CHECK(want->dtype == DTYPE_I32 && wlen->dtype == DTYPE_I32);
    char sbuf[64];
    EXPECT(tensor_same_shape(want, 2, (int64_t[]){nsent, 77}), "%s: fixture shape %s for %d sentences", name,
           shape_str(sbuf, sizeof sbuf, want->ndim, want->shape), nsent);
    EXPECT(nsent >= 300, "only %d sentences", nsent);
    int bad = 0;
    int32_t got[77];
    for (int s = 0; s < nsent && s < want->shape[0]; s++) {
        const int32_t *w = (const int32_t *)want->data + (size_t)s * 77;
        int n = clip_tokenize(t, sentences[s], got);
        int pos = -1;
        for (int k = 0; k < 77 && pos < 0; k++)
            if (got[k] != w[k]) pos = k;
        if (pos >= 0 || n != ((const int32_t *)wlen->data)[s]) {
            if (!bad)
                unit_fail("%s: sentence %d \"%s\": first difference at position %d: got %d, want %d "
                          "(length %d, want %d)", name, s, shown(sentences[s]), pos, pos >= 0 ? got[pos] : 0,
                          pos >= 0 ? w[pos] : 0, n, ((const int32_t *)wlen->data)[s]);
            bad++;
        }
    }
    EXPECT(bad == 0, "%s: %d of %d sentences differ from Hugging Face", name, bad, nsent);
    printf("# %s: %d sentences, %d mismatches\n", name, nsent, bad);
    tensor_free(want);
    tensor_free(wlen);
    st_close(f);
    clip_tokenizer_free(t);
}

static void test_sd1_ids_equal_hf(void) { check_folder("sd1", 49407); }
static void test_sd2_ids_equal_hf(void) { check_folder("sd2", 0); }

/* Hand-checked cases that hold whatever the fixture says (ids from the CLIP vocabulary). */
static void test_basic_layout(void) {
    clip_tokenizer *t = clip_tokenizer_open(fixture_path("tokenizers/sd1"));
    int32_t ids[77];
    int n = clip_tokenize(t, "", ids);
    EXPECT(n == 2 && ids[0] == 49406 && ids[1] == 49407 && ids[76] == 49407, "empty: n %d", n);
    n = clip_tokenize(t, "A photo", ids);
    EXPECT(n == 4 && ids[1] == 320 && ids[3] == 49407, "\"A photo\": n %d ids %d %d %d", n, ids[1], ids[2], ids[3]);
    /* Truncation keeps EOS last. */
    char longtext[2000] = "";
    for (int i = 0; i < 200; i++) strcat(longtext, "a ");
    n = clip_tokenize(t, longtext, ids);
    EXPECT(n == 77 && ids[75] == 320 && ids[76] == 49407, "long: n %d last %d", n, ids[76]);
    clip_tokenizer_free(t);
}

/* ---- error paths ---- */

static char errdir[512];

static void write_file(const char *name, const char *text) {
    char p[700];
    snprintf(p, sizeof p, "%s/%s", errdir, name);
    FILE *f = fopen(p, "wb");
    CHECK(f);
    fputs(text, f);
    fclose(f);
}

static void open_errdir(void *arg) {
    (void)arg;
    clip_tokenizer_open(errdir);
}

static void make_errdir(const char *sub) {
    snprintf(errdir, sizeof errdir, "%s/%s", unit_tmpdir(), sub);
    mkdir(errdir, 0755);
}

/* Copies the real vocab.json (and merges.txt) into errdir. */
static void copy_vocab(int merges_too) {
    char *vocab = xstrdup(fixture_path("clip-vocab/vocab.json"));
    char *merges = xstrdup(fixture_path("clip-vocab/merges.txt"));
    char *cmd = xasprintf("cp %s %s %s/", vocab, merges_too ? merges : "", errdir);
    CHECK(system(cmd) == 0);
    free(cmd);
    free(vocab);
    free(merges);
}

static void test_errors_name_the_file(void) {
    make_errdir("novocab");
    write_file("merges.txt", "#version: 0.2\na b\n");
    expect_dies("missing vocab.json", open_errdir, NULL, 2, "novocab/vocab.json");

    make_errdir("badvocab");
    write_file("vocab.json", "{\"a\": 0, \"b\": ");
    write_file("merges.txt", "#version: 0.2\na b\n");
    expect_dies("malformed vocab.json", open_errdir, NULL, 2, "badvocab/vocab.json:1: malformed JSON");

    make_errdir("nomerges");
    copy_vocab(0);
    expect_dies("missing merges.txt", open_errdir, NULL, 2, "nomerges/merges.txt");

    make_errdir("badmerge");
    copy_vocab(0);
    write_file("merges.txt", "#version: 0.2\ni n\nt h e x\n");
    expect_dies("malformed merges.txt line", open_errdir, NULL, 2, "badmerge/merges.txt:3:");
    write_file("merges.txt", "#version: 0.2\nzzzqqq xxyyzz\n");
    expect_dies("merge of unknown tokens", open_errdir, NULL, 2, "badmerge/merges.txt:2:");

    make_errdir("badcfg");
    copy_vocab(1);
    write_file("tokenizer_config.json", "{\"model_max_length\": 77,, }");
    expect_dies("malformed tokenizer_config.json", open_errdir, NULL, 2, "badcfg/tokenizer_config.json:1:");
    write_file("tokenizer_config.json", "{\"pad_token\": \"<|nosuchtoken|>\"}");
    expect_dies("pad token not in the vocabulary", open_errdir, NULL, 2, "<|nosuchtoken|>");
    write_file("tokenizer_config.json", "{}");
    write_file("special_tokens_map.json", "[1, 2");
    expect_dies("malformed special_tokens_map.json", open_errdir, NULL, 2, "badcfg/special_tokens_map.json:");
}

/* A folder with only vocab.json and merges.txt: transformers' defaults (pad = EOS). */
static void test_defaults_without_config(void) {
    make_errdir("bare");
    copy_vocab(1);
    clip_tokenizer *t = clip_tokenizer_open(errdir);
    EXPECT(clip_tokenizer_pad(t) == 49407 && clip_tokenizer_max_length(t) == 77, "pad %d len %d",
           clip_tokenizer_pad(t), clip_tokenizer_max_length(t));
    clip_tokenizer_free(t);
}

/* Tokenizing must not dominate a text-encoder pass: report sentences/s. */
static void test_speed(void) {
    load_sentences();
    clip_tokenizer *t = clip_tokenizer_open(fixture_path("tokenizers/sd2"));
    int32_t ids[77];
    struct timespec a, b;
    long count = 0, bytes = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    double el = 0;
    do {
        for (int s = 0; s < nsent; s++) { clip_tokenize(t, sentences[s], ids); bytes += (long)strlen(sentences[s]); }
        count += nsent;
        clock_gettime(CLOCK_MONOTONIC, &b);
        el = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    } while (el < 0.3);
    printf("# clip_tokenize: %.0f sentences/s (%.1f MB/s of text), one thread\n", (double)count / el,
           (double)bytes / el / 1e6);
    EXPECT(count / el > 1000, "only %.0f sentences/s", (double)count / el);
    clip_tokenizer_free(t);
}

int main(void) {
    RUN(test_basic_layout);
    RUN(test_sd1_ids_equal_hf);
    RUN(test_sd2_ids_equal_hf);
    RUN(test_errors_name_the_file);
    RUN(test_defaults_without_config);
    RUN(test_speed);
    for (int i = 0; i < nsent; i++) free(sentences[i]);
    return unit_done();
}
