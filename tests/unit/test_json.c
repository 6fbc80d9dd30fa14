/* test_json.c — JSON files and JSON Lines: values, blank lines, and errors that
 * name file, line and column; typed config lookups and their defaults. */
#include "unit.h"
#include "json.h"

static FILE *mem(const char *text) {
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    CHECK(f);
    return f;
}

static void test_jsonl_values_and_blank_lines(void) {
    FILE *f = mem("{\"id\": \"a\", \"text\": \"Clear lungs.\"}\n\n   \n{\"id\": 2}\r\n[1,2]");
    jsonl_reader r;
    jsonl_open(&r, f, "reports.jsonl");
    json_t *a = jsonl_next(&r);
    EXPECT(a && r.lineno == 1 && !strcmp(json_get_str(a, "text", "", "t"), "Clear lungs."), "line 1");
    json_t *b = jsonl_next(&r);
    EXPECT(b && r.lineno == 4 && json_get_int(b, "id", 0, "t") == 2, "line 4, got %ld", r.lineno);
    json_t *c = jsonl_next(&r);
    EXPECT(c && json_is_array(c) && r.lineno == 5, "line 5 without newline");
    EXPECT(jsonl_next(&r) == NULL, "end of input");
    json_decref(a), json_decref(b), json_decref(c);
    jsonl_close(&r);
    fclose(f);
}

static void read_all(void *arg) {
    FILE *f = mem(arg);
    jsonl_reader r;
    jsonl_open(&r, f, "reports.jsonl");
    json_t *j;
    while ((j = jsonl_next(&r))) json_decref(j);
}

static void test_jsonl_errors_name_the_line(void) {
    expect_dies("malformed line 3", read_all, "{\"a\":1}\n{\"b\":2}\n{\"c\": oops}\n", 2,
                "reports.jsonl:3: malformed JSON at column");
    expect_dies("two values on a line", read_all, "{\"a\":1} {\"b\":2}\n", 2, "reports.jsonl:1: malformed JSON");
    expect_dies("unterminated string", read_all, "\n\n{\"a\":\"x\n", 2, "reports.jsonl:3:");
}

static void load_missing(void *arg) { json_load_path(arg); }
static void load_bad(void *arg) {
    char path[] = "/tmp/synthcxr-json-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, arg, strlen(arg)) == (ssize_t)strlen(arg));
    close(fd);
    json_t *j = json_load_path(path);
    unlink(path);
    json_decref(j);
}

static void test_json_file_errors(void) {
    expect_dies("missing file", load_missing, "/nonexistent/config.json", 2,
                "cannot open /nonexistent/config.json");
    expect_dies("syntax error", load_bad, "{\n  \"a\": 1,\n  \"b\": }\n", 2, ":3: malformed JSON at column");
    EXPECT(json_load_path_opt("/nonexistent/config.json") == NULL, "optional missing file");
}

static json_t *cfg;
static void get_wrong_type(void *arg) { json_get_int(cfg, arg, 0, "unet/config.json"); }

static void test_typed_lookups(void) {
    cfg = json_loads("{\"in_channels\": 4, \"eps\": 1e-6, \"flag\": true, \"name\": \"x\", \"n\": null,"
                     " \"whole\": 8.0, \"s\": \"4\"}", 0, NULL);
    EXPECT(json_get_int(cfg, "in_channels", 0, "c") == 4, "int");
    EXPECT(json_get_int(cfg, "whole", 0, "c") == 8, "integral real accepted as int");
    EXPECT(json_get_int(cfg, "absent", 7, "c") == 7, "default");
    EXPECT(json_get_int(cfg, "n", 9, "c") == 9, "null takes the default");
    EXPECT(json_get_num(cfg, "eps", 0, "c") == 1e-6, "num");
    EXPECT(json_get_num(cfg, "in_channels", 0, "c") == 4.0, "int as num");
    EXPECT(json_get_bool(cfg, "flag", 0, "c") == 1, "bool");
    EXPECT(!strcmp(json_get_str(cfg, "name", "", "c"), "x"), "str");
    EXPECT(json_has(cfg, "eps") && !json_has(cfg, "n") && !json_has(cfg, "absent"), "has");
    expect_dies("string where int", get_wrong_type, "s", 2, "unet/config.json: \"s\" should be an integer");
    expect_dies("real where int", get_wrong_type, "eps", 2, "should be an integer");
    json_decref(cfg);
}

int main(int argc, char **argv) {
    (void)argc;
    prog_init(argv[0]);
    RUN(test_jsonl_values_and_blank_lines);
    RUN(test_jsonl_errors_name_the_line);
    RUN(test_json_file_errors);
    RUN(test_typed_lookups);
    return unit_done();
}
