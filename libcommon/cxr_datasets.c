/* cxr_datasets.c — CheXpert, RSNA Pneumonia and COVIDx label tables: parsing,
 * patient-disjoint seeded splits, label-fraction sampling (rules in the header). */
#include "cxr_datasets.h"

#include "common.h"
#include "metrics.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

const char *const cxr_dataset_names[CXR_N_DATASETS + 1] = {"chexpert", "rsna", "covidx", NULL};

static const char *const chexpert_labels[5] = {"Atelectasis", "Cardiomegaly", "Consolidation", "Edema",
                                               "Pleural Effusion"};
static const uint8_t chexpert_uncertain[5] = {1, 0, 0, 1, 1};   /* U-Ones / U-Zeros per label */
static const char *const rsna_labels[1] = {"Pneumonia"};
static const char *const covidx_classes[3] = {"normal", "pneumonia", "COVID-19"};

/* Seed tags, one per purpose, so no two draws share a stream. */
enum { TAG_SPLIT = 1, TAG_FRACTION = 2 };
static uint64_t stream_seed(uint64_t seed, int ds, int tag) {
    uint64_t s = seed ^ (0x5eed0000ull + (uint64_t)ds * 16 + (uint64_t)tag);
    return splitmix64_next(&s);
}

/* ---- parsing helpers ------------------------------------------------------ */

int cxr_csv_split(char *line, char **fields, int cap) {
    int n = 0;
    char *p = line;
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
    for (;;) {
        char *start = p, *w = p;
        if (*p == '"') {            /* quoted: "" is a quote, ends at the closing quote */
            p++;
            for (;;) {
                if (!*p) break;
                if (*p == '"') {
                    if (p[1] == '"') { *w++ = '"'; p += 2; continue; }
                    p++;
                    break;
                }
                *w++ = *p++;
            }
            while (*p && *p != ',') p++;   /* junk after the closing quote is dropped */
        } else {
            while (*p && *p != ',') *w++ = *p++;
        }
        int more = *p == ',';
        *w = 0;
        if (n < cap) fields[n] = start;
        n++;
        if (!more) break;
        p++;
    }
    return n > cap ? cap + 1 : n;
}

typedef struct table {
    FILE *f;
    const char *path;
    long line;
    char *buf;
    size_t cap;
} table;

static void table_open(table *t, const char *path) {
    t->f = fopen(path, "r");
    if (!t->f) {
        int err = errno;
        die("cannot open %s: %s", path, strerror(err));
    }
    t->path = path;
    t->line = 0;
    t->buf = NULL;
    t->cap = 0;
}

/* Next non-empty line (trailing newline removed), or NULL at the end. */
static char *table_next(table *t) {
    for (;;) {
        ssize_t k = getline(&t->buf, &t->cap, t->f);
        if (k < 0) {
            if (ferror(t->f)) die("%s: read error after line %ld", t->path, t->line);
            return NULL;
        }
        t->line++;
        while (k && (t->buf[k - 1] == '\n' || t->buf[k - 1] == '\r')) t->buf[--k] = 0;
        if (k) return t->buf;
    }
}

static void table_close(table *t) {
    fclose(t->f);
    free(t->buf);
}

static char *path_join(const char *a, const char *b) { return xasprintf("%s/%s", a, b); }

static int file_exists(const char *p) { return access(p, F_OK) == 0; }

static void items_push(cxr_data *d, long *cap, const cxr_item *it) {
    if (d->n == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        d->items = xrealloc(d->items, (size_t)*cap * sizeof *d->items);
    }
    d->items[d->n++] = *it;
}

/* ---- CheXpert ------------------------------------------------------------- */

/* 1.0 / 0.0 / -1.0 / blank (also 1, 0, -1) -> 1, 0, -1, 2 (blank); else -9. */
static int chexpert_value(const char *s) {
    if (!*s) return 2;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno) return -9;
    if (v == 1) return 1;
    if (v == 0) return 0;
    if (v == -1) return -1;
    return -9;
}

static void chexpert_read(cxr_data *d, long *cap, const char *csv, const char *base, int test) {
    table t;
    table_open(&t, csv);
    char *line = table_next(&t);
    if (!line) die("%s:1: empty file (a header line was expected)", csv);
    char *hdr[64];
    int nh = cxr_csv_split(line, hdr, 64);
    if (nh > 64) die("%s:1: more than 64 columns", csv);
    int col_path = -1, col_view = -1, col_lab[5] = {-1, -1, -1, -1, -1};
    for (int j = 0; j < nh; j++) {
        if (!strcmp(hdr[j], "Path")) col_path = j;
        if (!strcmp(hdr[j], "Frontal/Lateral")) col_view = j;
        for (int l = 0; l < 5; l++)
            if (!strcmp(hdr[j], chexpert_labels[l])) col_lab[l] = j;
    }
    if (col_path < 0) die("%s:1: no column \"Path\"", csv);
    if (col_view < 0) die("%s:1: no column \"Frontal/Lateral\"", csv);
    for (int l = 0; l < 5; l++)
        if (col_lab[l] < 0) die("%s:1: no column \"%s\"", csv, chexpert_labels[l]);
    char *fl[64];
    while ((line = table_next(&t))) {
        int nf = cxr_csv_split(line, fl, 64);
        if (nf != nh) die("%s:%ld: %d fields, the header has %d", csv, t.line, nf, nh);
        const char *view = fl[col_view];
        if (!strcmp(view, "Lateral")) continue;
        if (strcmp(view, "Frontal")) die("%s:%ld: Frontal/Lateral is \"%s\" (Frontal or Lateral)", csv, t.line, view);
        const char *path = fl[col_path];
        if (!*path) die("%s:%ld: empty Path", csv, t.line);
        cxr_item it = {0};
        it.cls = -1;
        for (int l = 0; l < 5; l++) {
            int v = chexpert_value(fl[col_lab[l]]);
            if (v == -9) die("%s:%ld: %s is \"%s\" (1.0, 0.0, -1.0 or blank)", csv, t.line, chexpert_labels[l],
                             fl[col_lab[l]]);
            it.label[l] = v == 1 ? 1 : v == -1 ? chexpert_uncertain[l] : 0;
        }
        const char *pat = strstr(path, "patient");
        if (!pat) die("%s:%ld: Path \"%s\" has no patientNNNNN folder", csv, t.line, path);
        size_t pl = strcspn(pat, "/");
        it.patient = xmalloc(pl + 1);
        memcpy(it.patient, pat, pl);
        it.patient[pl] = 0;
        it.path = path_join(base, path);
        it.source = xasprintf("%s:%ld", csv, t.line);
        it.split = test ? CXR_TEST : CXR_TRAIN;
        items_push(d, cap, &it);
    }
    table_close(&t);
}

/* ---- RSNA ----------------------------------------------------------------- */

static void rsna_read(cxr_data *d, long *cap, const char *root) {
    char *csv = path_join(root, "stage_2_train_labels.csv");
    table t;
    table_open(&t, csv);
    char *line = table_next(&t);
    if (!line) die("%s:1: empty file (a header line was expected)", csv);
    char *hdr[16];
    int nh = cxr_csv_split(line, hdr, 16);
    if (nh > 16) die("%s:1: more than 16 columns", csv);
    int col_id = -1, col_t = -1;
    for (int j = 0; j < nh; j++) {
        if (!strcmp(hdr[j], "patientId")) col_id = j;
        if (!strcmp(hdr[j], "Target")) col_t = j;
    }
    if (col_id < 0) die("%s:1: no column \"patientId\"", csv);
    if (col_t < 0) die("%s:1: no column \"Target\"", csv);
    char *fl[16];
    long first = d->n;
    while ((line = table_next(&t))) {
        int nf = cxr_csv_split(line, fl, 16);
        if (nf != nh) die("%s:%ld: %d fields, the header has %d", csv, t.line, nf, nh);
        const char *id = fl[col_id], *tg = fl[col_t];
        if (!*id) die("%s:%ld: empty patientId", csv, t.line);
        if (strcmp(tg, "0") && strcmp(tg, "1")) die("%s:%ld: Target is \"%s\" (0 or 1)", csv, t.line, tg);
        int target = tg[0] == '1';
        /* rows of one image are adjacent in the real file; look back to be sure */
        long found = -1;
        if (d->n > first && !strcmp(d->items[d->n - 1].patient, id)) found = d->n - 1;
        else
            for (long i = first; i < d->n; i++)
                if (!strcmp(d->items[i].patient, id)) { found = i; break; }
        if (found >= 0) {
            if (d->items[found].label[0] != target)
                die("%s:%ld: Target %d for %s, but %s said %d", csv, t.line, target, id, d->items[found].source,
                    d->items[found].label[0]);
            continue;
        }
        cxr_item it = {0};
        it.cls = -1;
        it.label[0] = (uint8_t)target;
        it.patient = xstrdup(id);
        it.path = NULL;   /* resolved for the images used (see resolve_rsna) */
        it.source = xasprintf("%s:%ld", csv, t.line);
        it.split = CXR_TRAIN;
        items_push(d, cap, &it);
    }
    table_close(&t);
    free(csv);
}

/* The image file of an RSNA patientId: .png or .jpg beside where the .dcm is. */
static char *rsna_image(const char *root, const cxr_item *it) {
    static const char *const ext[] = {".png", ".jpg", ".jpeg"};
    for (int k = 0; k < 3; k++) {
        char *p = xasprintf("%s/stage_2_train_images/%s%s", root, it->patient, ext[k]);
        if (file_exists(p)) return p;
        free(p);
    }
    char *dcm = xasprintf("%s/stage_2_train_images/%s.dcm", root, it->patient);
    if (file_exists(dcm))
        die("%s (%s) is DICOM, which cxreval does not decode: convert the folder to 8-bit PNG first, "
            "e.g. `dcmj2pnm +on2 +Wm X.dcm X.png` (dcmtk) or `gdcmconv`, keeping the names", dcm, it->source);
    die("image %s/stage_2_train_images/%s.png (or .jpg, .dcm) does not exist (%s)", root, it->patient, it->source);
}

/* ---- COVIDx --------------------------------------------------------------- */

static void covidx_read(cxr_data *d, long *cap, const char *root, int test) {
    char *txt = path_join(root, test ? "test.txt" : "train.txt");
    table t;
    table_open(&t, txt);
    char *line;
    while ((line = table_next(&t))) {
        char *fl[8];
        int nf = 0;
        for (char *s = strtok(line, " \t"); s && nf < 8; s = strtok(NULL, " \t")) fl[nf++] = s;
        if (nf < 3) die("%s:%ld: %d fields (patient_id filename class [source] expected)", txt, t.line, nf);
        int c = -1;
        for (int k = 0; k < 3; k++)
            if (!strcasecmp(fl[2], covidx_classes[k])) c = k;
        if (c < 0) die("%s:%ld: class \"%s\" (normal, pneumonia or COVID-19)", txt, t.line, fl[2]);
        cxr_item it = {0};
        it.cls = c;
        it.patient = xstrdup(fl[0]);
        it.path = xasprintf("%s/%s/%s", root, test ? "test" : "train", fl[1]);
        it.source = xasprintf("%s:%ld", txt, t.line);
        it.split = test ? CXR_TEST : CXR_TRAIN;
        items_push(d, cap, &it);
    }
    table_close(&t);
    free(txt);
}

/* ---- splitting ------------------------------------------------------------ */

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void shuffle_ptrs(char **a, long n, uint64_t *st) {
    for (long i = n - 1; i > 0; i--) {
        long j = (long)splitmix64_below(st, (uint64_t)i + 1);
        char *t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* Sorted unique patients of the training items; *n set. */
static char **train_patients(const cxr_data *d, long *n) {
    char **p = xmalloc((size_t)(d->n + 1) * sizeof *p);
    long k = 0;
    for (long i = 0; i < d->n; i++)
        if (d->items[i].split == CXR_TRAIN) p[k++] = d->items[i].patient;
    qsort(p, (size_t)k, sizeof *p, str_cmp);
    long u = 0;
    for (long i = 0; i < k; i++)
        if (!u || strcmp(p[u - 1], p[i])) p[u++] = p[i];
    *n = u;
    return p;
}

/* Index of patient s among sorted patients (binary search). */
static long patient_index(char *const *sorted, long n, const char *s) {
    long lo = 0, hi = n - 1;
    while (lo <= hi) {
        long m = (lo + hi) / 2;
        int c = strcmp(sorted[m], s);
        if (!c) return m;
        if (c < 0) lo = m + 1;
        else hi = m - 1;
    }
    return -1;
}

/* Training images of patients who are also in the official test set are
 * dropped (with a warning): the test set is fixed, so the train side gives way. */
static void drop_test_patients(cxr_data *d) {
    long nt = 0;
    char **t = xmalloc((size_t)(d->n + 1) * sizeof *t);
    for (long i = 0; i < d->n; i++)
        if (d->items[i].split == CXR_TEST) t[nt++] = d->items[i].patient;
    qsort(t, (size_t)nt, sizeof *t, str_cmp);
    long dropped = 0;
    for (long i = 0; i < d->n; i++)
        if (d->items[i].split == CXR_TRAIN && patient_index(t, nt, d->items[i].patient) >= 0) {
            d->items[i].split = CXR_UNUSED;
            d->items[i].dropped = 1;
            dropped++;
        }
    if (dropped)
        warn("%s: %ld training image(s) belong to patients of the official test set; left out",
             cxr_dataset_names[d->dataset], dropped);
    free(t);
}

/* Assigns the training items' patients to splits: a shuffled order of
 * patients, split_of[k] for the k-th patient (sorted index) via fn. */
static void split_train(cxr_data *d, uint64_t seed) {
    long np;
    char **sorted = train_patients(d, &np);
    if (np < 2) die("%s: %ld training patient(s); a validation set needs at least 2", cxr_dataset_names[d->dataset], np);
    char **order = xmalloc((size_t)np * sizeof *order);
    memcpy(order, sorted, (size_t)np * sizeof *order);
    uint64_t st = stream_seed(seed, d->dataset, TAG_SPLIT);
    shuffle_ptrs(order, np, &st);
    int *split = xmalloc((size_t)np * sizeof *split);   /* by sorted index */
    long *count = xcalloc((size_t)np, sizeof *count);    /* images per patient */
    long n_img = 0;
    for (long i = 0; i < d->n; i++)
        if (d->items[i].split == CXR_TRAIN) {
            count[patient_index(sorted, np, d->items[i].patient)]++;
            n_img++;
        }
    if (d->dataset == CXR_CHEXPERT) {
        long target = n_img >= 50000 ? 5000 : (n_img + 9) / 10, got = 0;
        for (long k = 0; k < np; k++) {
            long s = patient_index(sorted, np, order[k]);
            split[s] = got < target ? CXR_VAL : CXR_TRAIN;
            if (split[s] == CXR_VAL) got += count[s];
        }
    } else {
        long n_tr = lround(0.70 * (double)np), n_val = lround(0.15 * (double)np);
        if (d->dataset == CXR_COVIDX) n_tr = lround(0.80 * (double)np), n_val = np - n_tr;
        if (n_tr < 1) n_tr = 1;
        if (n_val < 1) n_val = 1;
        for (long k = 0; k < np; k++) {
            long s = patient_index(sorted, np, order[k]);
            split[s] = k < n_tr ? CXR_TRAIN : k < n_tr + n_val ? CXR_VAL : CXR_TEST;
        }
    }
    for (long i = 0; i < d->n; i++)
        if (d->items[i].split == CXR_TRAIN) d->items[i].split = split[patient_index(sorted, np, d->items[i].patient)];
    free(count);
    free(split);
    free(order);
    free(sorted);
}

/* Does item it have value v of output j (a label's 0/1, or class j when v < 0)? */
static int item_has(const cxr_data *d, const cxr_item *it, int j, int v) {
    return d->multi_label ? it->label[j] == v : it->cls == j;
}

static void sample_fraction(cxr_data *d, double fraction, uint64_t seed) {
    long n = 0;
    long *tr = xmalloc((size_t)(d->n + 1) * sizeof *tr);
    for (long i = 0; i < d->n; i++)
        if (d->items[i].split == CXR_TRAIN) tr[n++] = i;
    d->n_train_full = n;
    if (fraction >= 1 || n == 0) { free(tr); return; }
    uint64_t st = stream_seed(seed, d->dataset, TAG_FRACTION);
    for (long i = n - 1; i > 0; i--) {
        long j = (long)splitmix64_below(&st, (uint64_t)i + 1), t = tr[i];
        tr[i] = tr[j];
        tr[j] = t;
    }
    long m = lround(fraction * (double)n);
    if (m < 1) m = 1;
    if (m > n) m = n;
    uint8_t *keep = xcalloc((size_t)n, 1);
    for (long k = 0; k < m; k++) keep[k] = 1;
    int nv = d->multi_label ? 2 : 1;
    for (int j = 0; j < d->n_labels; j++)
        for (int v = 0; v < nv; v++) {
            int val = d->multi_label ? v : -1;
            int have = 0;
            for (long k = 0; k < n && !have; k++) have = keep[k] && item_has(d, &d->items[tr[k]], j, val);
            for (long k = 0; k < n && !have; k++)
                if (!keep[k] && item_has(d, &d->items[tr[k]], j, val)) keep[k] = have = 1;
        }
    for (long k = 0; k < n; k++)
        if (!keep[k]) d->items[tr[k]].split = CXR_UNUSED;
    free(keep);
    free(tr);
}

void cxr_check_disjoint(const cxr_data *d) {
    /* (patient, split) pairs sorted by patient: a patient with two splits is adjacent to itself */
    long m = 0;
    long *ix = xmalloc((size_t)(d->n + 1) * sizeof *ix);
    for (long i = 0; i < d->n; i++)
        if (d->items[i].split >= 0) ix[m++] = i;
    char **p = xmalloc((size_t)(m + 1) * sizeof *p);
    for (long k = 0; k < m; k++) p[k] = d->items[ix[k]].patient;
    qsort(p, (size_t)m, sizeof *p, str_cmp);
    long np = 0;
    for (long k = 0; k < m; k++)
        if (!np || strcmp(p[np - 1], p[k])) p[np++] = p[k];
    int *seen = xmalloc((size_t)(np + 1) * sizeof *seen);
    for (long k = 0; k < np; k++) seen[k] = -1;
    for (long k = 0; k < m; k++) {
        const cxr_item *it = &d->items[ix[k]];
        long s = patient_index(p, np, it->patient);
        if (seen[s] >= 0 && seen[s] != it->split) {
            static const char *const nm[] = {"train", "validation", "test"};
            die("%s: patient %s is in both %s and %s (%s); the splits must not share patients",
                cxr_dataset_names[d->dataset], it->patient, nm[seen[s]], nm[it->split], it->source);
        }
        seen[s] = it->split;
    }
    free(seen);
    free(p);
    free(ix);
}

/* ---- loading -------------------------------------------------------------- */

/* CheXpert: the folder holding train.csv, given root or root/CheXpert-v1.0-small
 * or root/CheXpert-v1.0. */
static char *chexpert_dir(const char *root) {
    static const char *const sub[] = {"", "/CheXpert-v1.0-small", "/CheXpert-v1.0"};
    for (int k = 0; k < 3; k++) {
        char *p = xasprintf("%s%s/train.csv", root, sub[k]);
        int ok = file_exists(p);
        free(p);
        if (ok) return xasprintf("%s%s", root, sub[k]);
    }
    die("%s: no train.csv here nor in CheXpert-v1.0-small/ or CheXpert-v1.0/ (is this CheXpert?)", root);
}

cxr_data *cxr_load(int ds, const char *root, double fraction, uint64_t seed) {
    CHECK(ds >= 0 && ds < CXR_N_DATASETS);
    CHECKF(fraction > 0 && fraction <= 1, "fraction %g outside (0, 1]", fraction);
    cxr_data *d = xcalloc(1, sizeof *d);
    d->dataset = ds;
    long cap = 0;
    if (ds == CXR_CHEXPERT) {
        d->n_labels = 5;
        d->multi_label = 1;
        d->label_names = chexpert_labels;
        char *dir = chexpert_dir(root);
        char *base = xasprintf("%s/..", dir);   /* Path starts with the folder's own name */
        char *tr = path_join(dir, "train.csv"), *va = path_join(dir, "valid.csv");
        chexpert_read(d, &cap, tr, base, 0);
        chexpert_read(d, &cap, va, base, 1);
        free(tr);
        free(va);
        free(base);
        free(dir);
    } else if (ds == CXR_RSNA) {
        d->n_labels = 1;
        d->multi_label = 1;
        d->label_names = rsna_labels;
        rsna_read(d, &cap, root);
    } else {
        d->n_labels = 3;
        d->multi_label = 0;
        d->label_names = covidx_classes;
        covidx_read(d, &cap, root, 0);
        covidx_read(d, &cap, root, 1);
    }
    if (d->n == 0) die("%s: no images in %s", cxr_dataset_names[ds], root);
    drop_test_patients(d);
    split_train(d, seed);
    sample_fraction(d, fraction, seed);
    for (long i = 0; i < d->n; i++) {
        cxr_item *it = &d->items[i];
        if (it->dropped) continue;
        if (it->split >= 0) d->n_split[it->split]++;
        if (ds == CXR_RSNA) it->path = rsna_image(root, it);
        else if (!file_exists(it->path)) die("image %s does not exist (%s)", it->path, it->source);
    }
    for (int s = 0; s < 3; s++)
        if (!d->n_split[s]) die("%s: the %s set is empty (%ld images in %s)", cxr_dataset_names[ds],
                                s == 0 ? "training" : s == 1 ? "validation" : "test", d->n, root);
    cxr_check_disjoint(d);
    return d;
}

void cxr_free(cxr_data *d) {
    if (!d) return;
    for (long i = 0; i < d->n; i++) {
        free(d->items[i].path);
        free(d->items[i].patient);
        free(d->items[i].source);
    }
    free(d->items);
    free(d);
}

long cxr_split_indices(const cxr_data *d, int s, long *idx) {
    long k = 0;
    for (long i = 0; i < d->n; i++)
        if (d->items[i].split == s) idx[k++] = i;
    return k;
}
