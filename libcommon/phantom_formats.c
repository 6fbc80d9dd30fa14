/* phantom_formats.c — dataset layouts for cxrphantom: paths, split rules and
 * the CSV / JSON Lines / text tables each dataset ships, written atomically
 * (report text goes only into JSON and .txt files, so no CSV field needs
 * quoting); and the contact sheet of examples/phantom.png. */
#include "phantom_formats.h"
#include "atomic_file.h"
#include "common.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *const phantom_format_names[PF_N + 1] = {"mimic", "chexpert", "rsna", "siim", "covidx", "object-cxr",
                                                    NULL};

int phantom_split(int fmt, long index) {
    switch (fmt) {
    case PF_MIMIC: return index % 20 == 7 ? 1 : index % 20 == 13 ? 2 : 0;   /* 90/5/5 */
    case PF_CHEXPERT: return index % 25 == 3 ? 1 : 0;                       /* valid.csv: 4 % */
    case PF_COVIDX: return index % 10 == 5 ? 2 : 0;                         /* test.txt: 10 % */
    case PF_OBJECT_CXR: return index % 10 == 5 ? 1 : 0;                     /* dev.csv: 10 % */
    default: return 0;
    }
}

/* A hex identifier from the case's seed and index, as dataset ids look. */
static uint64_t case_hash(const phantom_case *c, int k) { return phantom_stream_seed(c->seed, c->index, 4 + k); }

static void mimic_ids(const phantom_case *c, long *subject, long *study, char *dicom, size_t cap) {
    *subject = 10000000 + c->index;
    *study = 50000000 + c->index;
    snprintf(dicom, cap, "%08llx-%08llx-%08llx-%08llx-%08llx", (unsigned long long)case_hash(c, 0),
             (unsigned long long)case_hash(c, 1), (unsigned long long)case_hash(c, 2),
             (unsigned long long)case_hash(c, 3), (unsigned long long)c->index);
}

static void rsna_id(const phantom_case *c, char *buf, size_t cap) {
    uint64_t a = case_hash(c, 0), b = case_hash(c, 1), d = case_hash(c, 2);
    snprintf(buf, cap, "%08llx-%04llx-%04llx-%04llx-%04llx%08llx", (unsigned long long)a,
             (unsigned long long)(b >> 16), (unsigned long long)(b & 0xffff), (unsigned long long)(d >> 16),
             (unsigned long long)(d & 0xffff), (unsigned long long)(uint32_t)c->index);
}

static void siim_uid(const phantom_case *c, int part, char *buf, size_t cap) {
    snprintf(buf, cap, "1.2.276.0.7230010.3.1.%d.8323329.%ld.%llu", part, 1000 + c->index,
             (unsigned long long)(case_hash(c, 0) % 100000000u + 1517875000000ull));
}

void phantom_image_path(int fmt, const phantom_case *c, char *buf, size_t cap) {
    char id[128], a[96], b[96];
    long subject, study;
    int split = phantom_split(fmt, c->index);
    switch (fmt) {
    case PF_MIMIC:
        mimic_ids(c, &subject, &study, id, sizeof id);
        snprintf(buf, cap, "files/p%02ld/p%ld/s%ld/%s.png", subject / 1000000, subject, study, id);
        break;
    case PF_CHEXPERT:
        snprintf(buf, cap, "CheXpert-v1.0-small/%s/patient%05ld/study1/view1_frontal.png", split ? "valid" : "train",
                 c->index + 1);
        break;
    case PF_RSNA:
        rsna_id(c, id, sizeof id);
        snprintf(buf, cap, "stage_2_train_images/%s.png", id);
        break;
    case PF_SIIM:
        siim_uid(c, 4, id, sizeof id);
        siim_uid(c, 2, a, sizeof a);
        siim_uid(c, 3, b, sizeof b);
        snprintf(buf, cap, "dicom-images-train/%s/%s/%s.png", a, b, id);
        break;
    case PF_COVIDX:
        snprintf(buf, cap, "%s/phantom-%06ld.png", split ? "test" : "train", c->index);
        break;
    case PF_OBJECT_CXR:
        snprintf(buf, cap, "%s/%05ld.png", split ? "dev" : "train", c->index + 1);
        break;
    default: die("unknown format %d", fmt);
    }
}

void phantom_mkdirs_for(const char *path) {
    char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            int err = errno;
            die("cannot create folder %s: %s", p, strerror(err));
        }
        *s = '/';
    }
    free(p);
}

char *phantom_rle_encode(const uint8_t *mask, int n) {
    size_t cap = 64, len = 0;
    char *out = xmalloc(cap);
    out[0] = 0;
    long pos = 0, last_end = 0, run_start = -1;
    long total = (long)n * n;
    for (pos = 0; pos <= total; pos++) {
        int on = 0;
        if (pos < total) {
            long x = pos / n, y = pos % n; /* column-major: x outer */
            on = mask[(size_t)y * n + x] != 0;
        }
        if (on && run_start < 0) run_start = pos;
        if (!on && run_start >= 0) {
            char tmp[48];
            int k = snprintf(tmp, sizeof tmp, "%s%ld %ld", len ? " " : "", run_start - last_end, pos - run_start);
            if (len + (size_t)k + 1 > cap) {
                cap = (len + (size_t)k + 1) * 2;
                out = xrealloc(out, cap);
            }
            memcpy(out + len, tmp, (size_t)k + 1);
            len += (size_t)k;
            last_end = pos;
            run_start = -1;
        }
    }
    return out;
}

void phantom_rle_decode(const char *rle, int n, uint8_t *mask, const char *what) {
    memset(mask, 0, (size_t)n * n);
    long total = (long)n * n, cur = 0;
    const char *s = rle;
    while (*s == ' ') s++;
    if (!strcmp(s, "-1")) return;
    while (*s) {
        char *end;
        long start = strtol(s, &end, 10);
        if (end == s || start < 0) die("%s: malformed run-length code near '%.20s'", what, s);
        s = end;
        long len = strtol(s, &end, 10);
        if (end == s || len <= 0) die("%s: a start without a positive length near '%.20s'", what, s);
        s = end;
        cur += start;
        if (cur + len > total) die("%s: a run ends at pixel %ld, past the %dx%d image", what, cur + len, n, n);
        for (long p = cur; p < cur + len; p++) mask[(size_t)(p % n) * n + p / n] = 1;
        cur += len;
        while (*s == ' ') s++;
    }
}

static FILE *table_open(atomic_file *af, const char *root, const char *name) {
    char *path = xasprintf("%s/%s", root, name);
    phantom_mkdirs_for(path);
    atomic_open(af, path);
    free(path);
    return af->f;
}

static const char *split_name(long i) { return i == 1 ? "validate" : i == 2 ? "test" : "train"; }

static void chexpert_row(FILE *f, const phantom_case *c, int valid) {
    char path[512];
    phantom_image_path(PF_CHEXPERT, c, path, sizeof path);
    fprintf(f, "%s,%s,%d,Frontal,%s", path, c->sex ? "Female" : "Male", c->age, c->ap ? "AP" : "PA");
    for (int l = 0; l < PL_N; l++) {
        int v = valid ? c->present[l] : phantom_chexpert_value(c, l);
        if (v == 2) fputs(",", f);
        else fprintf(f, ",%.1f", (double)v);
    }
    fputc('\n', f);
}

void phantom_write_tables(int fmt, const char *root, const phantom_record *rec, long n) {
    atomic_file af, af2;
    char path[512];
    if (fmt == PF_MIMIC) {
        FILE *f = table_open(&af, root, "reports.jsonl");
        for (long i = 0; i < n; i++) {
            long subject, study;
            char dicom[128];
            mimic_ids(&rec[i].c, &subject, &study, dicom, sizeof dicom);
            phantom_image_path(fmt, &rec[i].c, path, sizeof path);
            json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "id", dicom, "path", path, "findings", rec[i].findings,
                                  "impression", rec[i].impression, "subject_id", (json_int_t)subject, "study_id",
                                  (json_int_t)study);
            char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
            fprintf(f, "%s\n", line);
            free(line);
            json_decref(o);
            /* and the study's free-text report, as MIMIC-CXR ships it */
            char *txt = xasprintf("%s/files/p%02ld/p%ld/s%ld.txt", root, subject / 1000000, subject, study);
            atomic_open(&af2, txt);
            fprintf(af2.f, "                                 FINAL REPORT\n EXAMINATION:  CHEST (%s)\n\n FINDINGS:\n\n %s\n\n IMPRESSION:\n\n %s\n",
                    rec[i].c.ap ? "PORTABLE AP" : "PA AND LAT", rec[i].findings, rec[i].impression);
            atomic_commit(&af2);
            free(txt);
        }
        atomic_commit(&af);
        f = table_open(&af, root, "mimic-cxr-2.0.0-split.csv");
        fputs("dicom_id,study_id,subject_id,split\n", f);
        for (long i = 0; i < n; i++) {
            long subject, study;
            char dicom[128];
            mimic_ids(&rec[i].c, &subject, &study, dicom, sizeof dicom);
            fprintf(f, "%s,%ld,%ld,%s\n", dicom, study, subject, split_name(phantom_split(fmt, rec[i].c.index)));
        }
        atomic_commit(&af);
        f = table_open(&af, root, "mimic-cxr-2.0.0-chexpert.csv");
        fputs("subject_id,study_id", f);
        static const int order[PL_N] = {PL_ATELECTASIS, PL_CARDIOMEGALY, PL_CONSOLIDATION, PL_EDEMA, PL_ENLARGED_CM,
                                        PL_FRACTURE, PL_LUNG_LESION, PL_LUNG_OPACITY, PL_NO_FINDING, PL_EFFUSION,
                                        PL_PLEURAL_OTHER, PL_PNEUMONIA, PL_PNEUMOTHORAX, PL_SUPPORT_DEVICES};
        for (int l = 0; l < PL_N; l++) fprintf(f, ",%s", phantom_label_names[order[l]]);
        fputc('\n', f);
        for (long i = 0; i < n; i++) {
            fprintf(f, "%ld,%ld", 10000000 + rec[i].c.index, 50000000 + rec[i].c.index);
            for (int l = 0; l < PL_N; l++) {
                int v = phantom_chexpert_value(&rec[i].c, order[l]);
                if (v == 2) fputs(",", f);
                else fprintf(f, ",%.1f", (double)v);
            }
            fputc('\n', f);
        }
        atomic_commit(&af);
    } else if (fmt == PF_CHEXPERT) {
        for (int valid = 0; valid < 2; valid++) {
            FILE *f = table_open(&af, root, valid ? "CheXpert-v1.0-small/valid.csv" : "CheXpert-v1.0-small/train.csv");
            fputs("Path,Sex,Age,Frontal/Lateral,AP/PA", f);
            for (int l = 0; l < PL_N; l++) fprintf(f, ",%s", phantom_label_names[l]);
            fputc('\n', f);
            for (long i = 0; i < n; i++)
                if (phantom_split(fmt, rec[i].c.index) == valid) chexpert_row(f, &rec[i].c, valid);
            atomic_commit(&af);
        }
    } else if (fmt == PF_RSNA) {
        FILE *f = table_open(&af, root, "stage_2_train_labels.csv");
        FILE *g = table_open(&af2, root, "stage_2_detailed_class_info.csv");
        fputs("patientId,x,y,width,height,Target\n", f);
        fputs("patientId,class\n", g);
        for (long i = 0; i < n; i++) {
            const phantom_case *c = &rec[i].c;
            char id[128];
            rsna_id(c, id, sizeof id);
            int k = 0;
            for (int b = 0; b < c->n_boxes; b++)
                if (c->box[b].kind == PB_CONSOLIDATION) {
                    const phantom_box *x = &c->box[b];
                    fprintf(f, "%s,%.1f,%.1f,%.1f,%.1f,1\n", id, (double)x->x0, (double)x->y0, (double)(x->x1 - x->x0),
                            (double)(x->y1 - x->y0));
                    fprintf(g, "%s,Lung Opacity\n", id);
                    k++;
                }
            if (!k) {
                fprintf(f, "%s,,,,,0\n", id);
                fprintf(g, "%s,%s\n", id, c->present[PL_NO_FINDING] ? "Normal" : "No Lung Opacity / Not Normal");
            }
        }
        atomic_commit(&af);
        atomic_commit(&af2);
    } else if (fmt == PF_SIIM) {
        FILE *f = table_open(&af, root, "train-rle.csv");
        fputs("ImageId, EncodedPixels\n", f);
        for (long i = 0; i < n; i++) {
            char id[128];
            siim_uid(&rec[i].c, 4, id, sizeof id);
            fprintf(f, "%s, %s\n", id, rec[i].rle && *rec[i].rle ? rec[i].rle : "-1");
        }
        atomic_commit(&af);
    } else if (fmt == PF_COVIDX) {
        for (int test = 0; test < 2; test++) {
            FILE *f = table_open(&af, root, test ? "test.txt" : "train.txt");
            static const char *const cls[] = {"normal", "pneumonia", "COVID-19"};
            for (long i = 0; i < n; i++) {
                if ((phantom_split(fmt, rec[i].c.index) == 2) != test) continue;
                phantom_image_path(fmt, &rec[i].c, path, sizeof path);
                const char *base = strrchr(path, '/') + 1;
                fprintf(f, "%ld %s %s phantom\n", 100000 + rec[i].c.index, base, cls[phantom_covidx_class(&rec[i].c)]);
            }
            atomic_commit(&af);
        }
    } else if (fmt == PF_OBJECT_CXR) {
        for (int dev = 0; dev < 2; dev++) {
            FILE *f = table_open(&af, root, dev ? "dev.csv" : "train.csv");
            fputs("image_name,annotation\n", f);
            for (long i = 0; i < n; i++) {
                const phantom_case *c = &rec[i].c;
                if (phantom_split(fmt, c->index) != dev) continue;
                phantom_image_path(fmt, c, path, sizeof path);
                fprintf(f, "%s,", strrchr(path, '/') + 1);
                int k = 0;
                for (int b = 0; b < c->n_boxes; b++) {
                    const phantom_box *x = &c->box[b];
                    if (x->kind < PB_PACEMAKER) continue; /* foreign objects: not tubes or nodules */
                    fprintf(f, "%s%d %d %d %d %d", k ? ";" : "", x->ellipse ? 1 : 0, x->x0, x->y0, x->x1, x->y1);
                    k++;
                }
                fputc('\n', f);
            }
            atomic_commit(&af);
        }
    }
}

/* ---- contact sheet ----------------------------------------------------------- */

/* Box colours by kind (RGB), for the sheet and its legend. */
static const uint8_t box_rgb[PB_N][3] = {
    {255, 64, 64},   /* consolidation: red */
    {255, 160, 0},   /* nodule: orange */
    {64, 160, 255},  /* ET tube: blue */
    {0, 220, 220},   /* NG tube: cyan */
    {160, 96, 255},  /* central line: violet */
    {255, 64, 255},  /* pacemaker: magenta */
    {64, 255, 64},   /* ECG lead: green */
    {255, 255, 0},   /* button: yellow */
    {255, 255, 0},   /* clip */
    {255, 255, 0}};  /* coin */

void phantom_sheet_put(uint8_t *sheet, int cols, int n, int slot, const phantom_case *c, const uint8_t *film,
                       const uint8_t *ptx_mask) {
    int W = cols * n, gx = (slot % cols) * n, gy = (slot / cols) * n;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < n; i++) {
            uint8_t v = film[(size_t)j * n + i];
            uint8_t *p = &sheet[((size_t)(gy + j) * W + gx + i) * 3];
            p[0] = p[1] = p[2] = v;
            /* the pneumothorax mask: a sparse hatch over the film */
            if (ptx_mask && ptx_mask[(size_t)j * n + i] && (i + j) % 5 == 0) {
                p[0] = 255; p[1] = 255; p[2] = 255;
            }
        }
    for (int b = 0; b < c->n_boxes; b++) {
        const phantom_box *x = &c->box[b];
        for (int j = x->y0; j < x->y1; j++)
            for (int i = x->x0; i < x->x1; i++) {
                if (i != x->x0 && i != x->x1 - 1 && j != x->y0 && j != x->y1 - 1) continue;
                uint8_t *p = &sheet[((size_t)(gy + j) * W + gx + i) * 3];
                memcpy(p, box_rgb[x->kind], 3);
            }
    }
    /* A strip of coloured ticks along the top: one per CheXpert finding present. */
    static const uint8_t lab_rgb[PL_N][3] = {{255, 255, 255}, {200, 200, 0}, {255, 0, 0}, {160, 160, 160},
                                             {255, 160, 0}, {0, 128, 255}, {255, 64, 64}, {255, 0, 128},
                                             {128, 255, 0}, {255, 255, 255}, {0, 255, 255}, {128, 128, 255},
                                             {255, 128, 128}, {64, 160, 255}};
    int k = 0, t = n / 24 > 4 ? n / 24 : 4;
    for (int l = 0; l < PL_N; l++) {
        if (!c->present[l]) continue;
        for (int j = 2; j < 2 + t; j++)
            for (int i = 2 + k * (t + 2); i < 2 + k * (t + 2) + t && i < n; i++)
                memcpy(&sheet[((size_t)(gy + j) * W + gx + i) * 3], lab_rgb[l], 3);
        k++;
    }
}
