/* test_report_clean.c — MGCA's report cleaning against the Python reference
 * (tests/oracle/make_report_clean.py, nltk's RegexpTokenizer): cxrphantom
 * reports and hand-written ones (numbered lists, decimals, "___", accents,
 * non-ASCII letters and marks, U+0130 and the Kelvin sign that lower-case to
 * ASCII, empty parts, seeded random strings): the cleaned text, its token
 * count and MGCA's keep decision all equal. */
#include "unit.h"
#include "json.h"
#include "report_clean.h"

#include <string.h>

static void test_against_python(void) {
    FILE *f = fopen(fixture_path("report_clean/cleaned.jsonl"), "r");
    CHECK(f);
    jsonl_reader r;
    jsonl_open(&r, f, "cleaned.jsonl");
    json_t *rec;
    int n = 0, bad = 0, kept = 0;
    while ((rec = jsonl_next(&r))) {
        n++;
        const char *imp = json_string_value(json_object_get(rec, "impression"));
        const char *fin = json_string_value(json_object_get(rec, "findings"));
        const char *want = json_string_value(json_object_get(rec, "text"));
        int want_tokens = (int)json_integer_value(json_object_get(rec, "tokens"));
        int want_kept = json_is_true(json_object_get(rec, "kept"));
        CHECK(imp && fin && want);
        int tokens;
        char *got = report_clean(imp, fin, &tokens);
        if (strcmp(got, want) != 0 || tokens != want_tokens || (tokens >= REPORT_MIN_TOKENS) != want_kept) {
            bad++;
            unit_fail("line %ld: \"%s\" (%d tokens), Python \"%s\" (%d)", r.lineno, got, tokens, want, want_tokens);
        }
        kept += want_kept;
        free(got);
        json_decref(rec);
    }
    jsonl_close(&r);
    fclose(f);
    EXPECT(n >= 150 && kept > 0 && kept < n, "%d reports, %d kept", n, kept);
    EXPECT(bad == 0, "%d of %d reports differ from the Python reference", bad, n);
    printf("# %d reports against MGCA's Python cleaning: %d differ (%d kept)\n", n, bad, kept);
}

static void test_null_parts(void) {
    int t;
    char *s = report_clean(NULL, "No acute process.", &t);
    EXPECT(strcmp(s, "no acute process") == 0 && t == 3, "NULL impression: \"%s\" %d", s, t);
    free(s);
    s = report_clean("Stable 1.2 cm nodule. No effusion", NULL, &t);
    EXPECT(strcmp(s, "2 cm nodule no effusion") == 0 && t == 5, "decimal split: \"%s\" %d", s, t);
    free(s);
    s = report_clean(NULL, NULL, &t);
    EXPECT(strcmp(s, "") == 0 && t == 0, "nothing: \"%s\" %d", s, t);
    free(s);
}

int main(void) {
    RUN(test_against_python);
    RUN(test_null_parts);
    return unit_done();
}
