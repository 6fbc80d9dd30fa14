/* phantomcheck — reads back a dataset that cxrphantom wrote and checks it
 * against the cases regenerated from the same seed: every image (pixels),
 * every table row, every label, box and run-length mask. The tables are
 * parsed here as a user of the real dataset would parse them, so a layout or
 * encoding fault shows as a mismatch. Exits 0 and prints a summary, or dies
 * (exit 2) naming the first mismatch.
 *   Usage: phantomcheck FORMAT DIR SEED COUNT SIZE [PREVALENCE] */
#include "common.h"
#include "phantom_formats.h"
#include "phantom_report.h"
#include "png_io.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static int fmt, n;
static long count;
static phantom_case *cases;
static uint8_t **films, **ptx;

static char *slurp(const char *dir, const char *name) {
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = xmalloc((size_t)len + 1);
    if (fread(s, 1, (size_t)len, f) != (size_t)len) die("cannot read %s", path);
    s[len] = 0;
    fclose(f);
    free(path);
    return s;
}

/* Split s at sep in place; returns the number of fields (at most max). */
static int split(char *s, char sep, char **field, int max) {
    int k = 0;
    field[k++] = s;
    for (; *s && k < max; s++)
        if (*s == sep) {
            *s = 0;
            field[k++] = s + 1;
        }
    return k;
}

/* index of the case whose image path (relative) ends with tail */
static long find_case(const char *tail) {
    char path[512];
    for (long i = 0; i < count; i++) {
        phantom_image_path(fmt, &cases[i], path, sizeof path);
        size_t a = strlen(path), b = strlen(tail);
        if (a >= b && !strcmp(path + a - b, tail)) return i;
    }
    die("no case has an image named %s", tail);
}

static void check_lines(const char *what, char *text, void (*row)(char *line, long lineno), int header) {
    long ln = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        ln++;
        if (header && ln == 1) continue;
        row(line, ln);
    }
    (void)what;
}

static long rows_seen;
static int seen[100000];

static void chexpert_row(char *line, long ln) {
    char *f[32];
    int k = split(line, ',', f, 32);
    if (k != 5 + PL_N) die("chexpert line %ld: %d fields, want %d", ln, k, 5 + PL_N);
    long i = find_case(f[0]);
    int valid = phantom_split(PF_CHEXPERT, i);
    const phantom_case *c = &cases[i];
    if (strcmp(f[1], c->sex ? "Female" : "Male") || atoi(f[2]) != c->age || strcmp(f[3], "Frontal") ||
        strcmp(f[4], c->ap ? "AP" : "PA"))
        die("chexpert line %ld: patient fields differ", ln);
    for (int l = 0; l < PL_N; l++) {
        int want = valid ? c->present[l] : phantom_chexpert_value(c, l);
        const char *v = f[5 + l];
        int got = !*v ? 2 : (int)strtod(v, NULL);
        if (got != want) die("chexpert line %ld: %s is '%s', want %d", ln, phantom_label_names[l], v, want);
    }
    seen[i]++;
    rows_seen++;
}

static long boxes_seen, masks_seen;

static void rsna_row(char *line, long ln) {
    char *f[8];
    if (split(line, ',', f, 8) != 6) die("rsna line %ld: not 6 fields", ln);
    long i = -1;
    char path[512];
    for (long j = 0; j < count && i < 0; j++) {
        phantom_image_path(PF_RSNA, &cases[j], path, sizeof path);
        if (strstr(path, f[0])) i = j;
    }
    if (i < 0) die("rsna line %ld: unknown patientId %s", ln, f[0]);
    const phantom_case *c = &cases[i];
    int target = atoi(f[5]);
    int ncons = 0;
    for (int b = 0; b < c->n_boxes; b++) ncons += c->box[b].kind == PB_CONSOLIDATION;
    if (target != (ncons > 0)) die("rsna line %ld: Target %d, the case has %d opacity boxes", ln, target, ncons);
    if (target) {
        int ok = 0;
        for (int b = 0; b < c->n_boxes; b++) {
            const phantom_box *x = &c->box[b];
            if (x->kind == PB_CONSOLIDATION && atof(f[1]) == x->x0 && atof(f[2]) == x->y0 &&
                atof(f[3]) == x->x1 - x->x0 && atof(f[4]) == x->y1 - x->y0)
                ok = 1;
        }
        if (!ok) die("rsna line %ld: box %s %s %s %s is not the case's", ln, f[1], f[2], f[3], f[4]);
        boxes_seen++;
    } else if (*f[1] || *f[2] || *f[3] || *f[4])
        die("rsna line %ld: a negative row with a box", ln);
    seen[i]++;
    rows_seen++;
}

static void siim_row(char *line, long ln) {
    char *f[4];
    if (split(line, ',', f, 4) != 2) die("siim line %ld: not 2 fields", ln);
    char *name = xasprintf("%s.png", f[0]);
    long i = find_case(name);
    free(name);
    uint8_t *m = xmalloc((size_t)n * n);
    char what[64];
    snprintf(what, sizeof what, "train-rle.csv line %ld", ln);
    phantom_rle_decode(f[1], n, m, what);
    const uint8_t *want = cases[i].has_ptx_mask ? ptx[i] : NULL;
    for (long p = 0; p < (long)n * n; p++)
        if (m[p] != (want ? want[p] : 0)) die("siim line %ld: the mask differs at pixel %ld", ln, p);
    masks_seen += want != NULL;
    free(m);
    seen[i]++;
    rows_seen++;
}

static void covidx_row(char *line, long ln) {
    char *f[8];
    if (split(line, ' ', f, 8) != 4) die("covidx line %ld: not 4 fields", ln);
    long i = find_case(f[1]);
    static const char *const cls[] = {"normal", "pneumonia", "COVID-19"};
    if (strcmp(f[2], cls[phantom_covidx_class(&cases[i])])) die("covidx line %ld: class %s", ln, f[2]);
    seen[i]++;
    rows_seen++;
}

static void object_row(char *line, long ln) {
    char *f[4];
    if (split(line, ',', f, 4) != 2) die("object-cxr line %ld: not 2 fields", ln);
    long i = find_case(f[0]);
    const phantom_case *c = &cases[i];
    int want = 0;
    for (int b = 0; b < c->n_boxes; b++) want += c->box[b].kind >= PB_PACEMAKER;
    int got = 0;
    if (*f[1]) {
        char *a[PHANTOM_MAX_BOXES];
        int k = split(f[1], ';', a, PHANTOM_MAX_BOXES);
        for (int j = 0; j < k; j++) {
            int t, x0, y0, x1, y1;
            if (sscanf(a[j], "%d %d %d %d %d", &t, &x0, &y0, &x1, &y1) != 5) die("object-cxr line %ld: '%s'", ln, a[j]);
            int ok = 0;
            for (int b = 0; b < c->n_boxes; b++) {
                const phantom_box *x = &c->box[b];
                ok |= x->kind >= PB_PACEMAKER && x->ellipse == t && x->x0 == x0 && x->y0 == y0 && x->x1 == x1 &&
                      x->y1 == y1;
            }
            if (!ok) die("object-cxr line %ld: annotation '%s' is not the case's", ln, a[j]);
            got++;
        }
    }
    if (got != want) die("object-cxr line %ld: %d annotations, the case has %d", ln, got, want);
    boxes_seen += got;
    seen[i]++;
    rows_seen++;
}

int main(int argc, char **argv) {
    prog_init(argv[0]);
    if (argc < 6) die_usage("usage: phantomcheck FORMAT DIR SEED COUNT SIZE [PREVALENCE]");
    fmt = parse_enum("FORMAT", argv[1], phantom_format_names);
    const char *dir = argv[2];
    uint64_t seed = (uint64_t)parse_long("SEED", argv[3], 0, INT64_MAX);
    count = parse_long("COUNT", argv[4], 1, 100000);
    n = (int)parse_long("SIZE", argv[5], 32, 1024);
    float prev[PP_N];
    memcpy(prev, phantom_prev_default, sizeof prev);
    if (argc > 6) phantom_prev_parse(prev, argv[6]);
    cases = xcalloc((size_t)count, sizeof *cases);
    films = xcalloc((size_t)count, sizeof *films);
    ptx = xcalloc((size_t)count, sizeof *ptx);
    for (long i = 0; i < count; i++) {
        phantom_case_make(&cases[i], seed, i, n, prev);
        films[i] = xmalloc((size_t)n * n);
        ptx[i] = xmalloc((size_t)n * n);
        phantom_case_render(&cases[i], films[i], ptx[i], NULL);
        /* the image, pixel for pixel */
        char rel[512];
        phantom_image_path(fmt, &cases[i], rel, sizeof rel);
        char *path = xasprintf("%s/%s", dir, rel);
        pngio_image *im = pngio_read(path);
        if (im->pixels->shape[0] != n || im->pixels->shape[1] != n || im->pixels->shape[2] != 1 || im->bit_depth != 8)
            die("%s: not an %dx%d 8-bit grey image", path, n, n);
        if (memcmp(im->pixels->data, films[i], (size_t)n * n)) die("%s: pixels differ from case %ld", path, i);
        pngio_image_free(im);
        free(path);
    }
    char *t;
    switch (fmt) {
    case PF_MIMIC: {
        json_error_t err;
        char *p = xasprintf("%s/reports.jsonl", dir);
        FILE *f = fopen(p, "r");
        if (!f) die("cannot open %s", p);
        char line[65536];
        long ln = 0;
        while (fgets(line, sizeof line, f)) {
            ln++;
            json_t *o = json_loads(line, 0, &err);
            if (!o) die("reports.jsonl line %ld: %s", ln, err.text);
            const char *path = json_string_value(json_object_get(o, "path"));
            if (!path || !json_is_string(json_object_get(o, "id"))) die("reports.jsonl line %ld: no id or path", ln);
            long i = find_case(path);
            phantom_report r;
            phantom_report_make(&cases[i], &r);
            const char *fi = json_string_value(json_object_get(o, "findings"));
            const char *im = json_string_value(json_object_get(o, "impression"));
            if (!fi || !im || strcmp(fi, r.findings) || strcmp(im, r.impression))
                die("reports.jsonl line %ld: the report differs from case %ld's", ln, i);
            phantom_report_free(&r);
            json_decref(o);
            seen[i]++;
            rows_seen++;
        }
        fclose(f);
        free(p);
        t = slurp(dir, "mimic-cxr-2.0.0-split.csv");
        long rows = 0;
        for (char *s = t; *s; s++) rows += *s == '\n';
        if (strncmp(t, "dicom_id,study_id,subject_id,split\n", 35) || rows != count + 1)
            die("mimic-cxr-2.0.0-split.csv: bad header or %ld lines for %ld images", rows, count);
        free(t);
        break;
    }
    case PF_CHEXPERT:
        t = slurp(dir, "CheXpert-v1.0-small/train.csv");
        if (strncmp(t, "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,", 46)) die("train.csv: header");
        check_lines("train.csv", t, chexpert_row, 1);
        free(t);
        t = slurp(dir, "CheXpert-v1.0-small/valid.csv");
        check_lines("valid.csv", t, chexpert_row, 1);
        free(t);
        break;
    case PF_RSNA:
        t = slurp(dir, "stage_2_train_labels.csv");
        if (strncmp(t, "patientId,x,y,width,height,Target\n", 34)) die("stage_2_train_labels.csv: header");
        check_lines("labels", t, rsna_row, 1);
        free(t);
        break;
    case PF_SIIM:
        t = slurp(dir, "train-rle.csv");
        if (strncmp(t, "ImageId, EncodedPixels\n", 23)) die("train-rle.csv: header");
        check_lines("rle", t, siim_row, 1);
        free(t);
        break;
    case PF_COVIDX:
        t = slurp(dir, "train.txt");
        check_lines("train.txt", t, covidx_row, 0);
        free(t);
        t = slurp(dir, "test.txt");
        check_lines("test.txt", t, covidx_row, 0);
        free(t);
        break;
    case PF_OBJECT_CXR:
        t = slurp(dir, "train.csv");
        check_lines("train.csv", t, object_row, 1);
        free(t);
        t = slurp(dir, "dev.csv");
        check_lines("dev.csv", t, object_row, 1);
        free(t);
        break;
    }
    for (long i = 0; i < count; i++)
        if (!seen[i]) die("case %ld has no row in the tables", i);
    printf("phantomcheck: %s: %ld images, %ld rows, %ld boxes, %ld masks agree\n", phantom_format_names[fmt], count,
           rows_seen, boxes_seen, masks_seen);
    for (long i = 0; i < count; i++) {
        free(films[i]);
        free(ptx[i]);
    }
    free(films);
    free(ptx);
    free(cases);
    return 0;
}
