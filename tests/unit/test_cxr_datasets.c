/* test_cxr_datasets.c — the dataset adapters on small hand-written tables in
 * the real layouts: CheXpert's frontal filter and uncertain-label mapping,
 * RSNA's rows per box, COVIDx's classes; splits disjoint by patient (checked
 * here independently of cxr_check_disjoint) and deterministic from the seed;
 * the --fraction rule; bad tables and missing images die naming file:line. */
#include "cxr_datasets.h"
#include "unit.h"

#include <sys/stat.h>

/* Paths here are short temp paths in fixed buffers; a truncation would show as a failed test. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

static void write_file(const char *path, const char *text) {
    char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') { *s = 0; mkdir(p, 0777); *s = '/'; }
    free(p);
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs(text, f);
    fclose(f);
}

static char *cat(char *s, const char *add) {
    size_t a = s ? strlen(s) : 0, b = strlen(add);
    s = xrealloc(s, a + b + 1);
    memcpy(s + a, add, b + 1);
    return s;
}

/* Every patient in one split only: an O(n^2) check of our own. */
static int disjoint(const cxr_data *d) {
    for (long i = 0; i < d->n; i++)
        for (long j = i + 1; j < d->n; j++)
            if (d->items[i].split >= 0 && d->items[j].split >= 0 && d->items[i].split != d->items[j].split &&
                !strcmp(d->items[i].patient, d->items[j].patient))
                return 0;
    return 1;
}

static const char *chex_root;
static char bad_root[1024];   /* scratch datasets */
static const char chex_header[] =
    "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,"
    "Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,"
    "Fracture,Support Devices\n";

/* 40 patients, patient k with 1 + k%3 frontal images and a lateral one; labels cycle. */
static void make_chexpert(const char *root) {
    char *tr = cat(NULL, chex_header), *va = cat(NULL, chex_header), line[512], path[512];
    static const char *const vals[] = {"1.0", "0.0", "-1.0", ""};
    for (int k = 1; k <= 40; k++) {
        for (int v = 0; v <= 1 + k % 3; v++) {
            int lateral = v == 1 + k % 3;
            snprintf(path, sizeof path, "CheXpert-v1.0-small/train/patient%05d/study1/view%d_%s.jpg", k, v + 1,
                     lateral ? "lateral" : "frontal");
            const char *a = vals[(k + v) % 4], *b = vals[(k + 2 * v + 1) % 4];
            /* Cardiomegaly=a, Edema=b, Consolidation=b, Atelectasis=a, Pleural Effusion=b */
            snprintf(line, sizeof line, "%s,Male,50,%s,%s,,,%s,,,%s,%s,,%s,,%s,,,\n", path,
                     lateral ? "Lateral" : "Frontal", lateral ? "" : "AP", a, b, b, a, b);
            tr = cat(tr, line);
            char full[1024];
            snprintf(full, sizeof full, "%s/%s", root, path);
            if (!lateral) write_file(full, "x");
        }
    }
    for (int k = 0; k < 6; k++) {
        snprintf(path, sizeof path, "CheXpert-v1.0-small/valid/patient%05d/study1/view1_frontal.jpg", 64541 + k);
        snprintf(line, sizeof line, "%s,Female,40,Frontal,PA,0.0,0.0,%d.0,0.0,0.0,%d.0,%d.0,0.0,%d.0,0.0,%d.0,0.0,0.0,0.0\n",
                 path, k % 2, (k / 2) % 2, k % 3 == 0, (k + 1) % 2, k < 3);
        va = cat(va, line);
        char full[1024];
        snprintf(full, sizeof full, "%s/%s", root, path);
        write_file(full, "x");
    }
    char p[1024];
    snprintf(p, sizeof p, "%s/CheXpert-v1.0-small/train.csv", root);
    write_file(p, tr);
    snprintf(p, sizeof p, "%s/CheXpert-v1.0-small/valid.csv", root);
    write_file(p, va);
    free(tr);
    free(va);
}

static const cxr_item *find_item(const cxr_data *d, const char *suffix) {
    size_t ls = strlen(suffix);
    for (long i = 0; i < d->n; i++) {
        size_t lp = strlen(d->items[i].path);
        if (lp >= ls && !strcmp(d->items[i].path + lp - ls, suffix)) return &d->items[i];
    }
    return NULL;
}

static void test_chexpert(void) {
    cxr_data *d = cxr_load(CXR_CHEXPERT, chex_root, 1, 0);
    /* frontal: sum over k of 1 + k%3 = 40 + (13*0+14*1+13*2...) */
    long frontal = 0;
    for (int k = 1; k <= 40; k++) frontal += 1 + k % 3;
    EXPECT(d->n == frontal + 6, "%ld items, want %ld (laterals dropped)", d->n, frontal + 6);
    EXPECT(d->n_split[CXR_TEST] == 6, "test %ld", d->n_split[CXR_TEST]);
    long target = (frontal + 9) / 10;
    EXPECT(d->n_split[CXR_VAL] >= target && d->n_split[CXR_VAL] < target + 3, "val %ld, target %ld",
           d->n_split[CXR_VAL], target);
    EXPECT(d->n_split[CXR_TRAIN] + d->n_split[CXR_VAL] == frontal, "train+val");
    EXPECT(d->n_train_full == d->n_split[CXR_TRAIN], "fraction 1 keeps all");
    EXPECT(disjoint(d), "splits share a patient");
    /* patient 1, view 1: a = vals[1] "0.0", b = vals[2] "-1.0":
     * Atelectasis a=0, Cardiomegaly a=0, Consolidation b -> 0 (U-zeros), Edema b -> 1, Effusion b -> 1 */
    const cxr_item *it = find_item(d, "patient00001/study1/view1_frontal.jpg");
    EXPECT(it && it->label[0] == 0 && it->label[1] == 0 && it->label[2] == 0 && it->label[3] == 1 && it->label[4] == 1,
           "patient 1 labels");
    /* patient 2, view 1: a = vals[2] "-1.0" (Atelectasis 1, Cardiomegaly 0), b = vals[3] blank -> 0 */
    it = find_item(d, "patient00002/study1/view1_frontal.jpg");
    EXPECT(it && it->label[0] == 1 && it->label[1] == 0 && it->label[2] == 0 && it->label[3] == 0 && it->label[4] == 0,
           "patient 2 labels");
    /* patient 3, view 1: a = vals[3] blank -> 0, b = vals[0] "1.0" -> 1 */
    it = find_item(d, "patient00003/study1/view1_frontal.jpg");
    EXPECT(it && it->label[0] == 0 && it->label[1] == 0 && it->label[2] == 1 && it->label[3] == 1 && it->label[4] == 1,
           "patient 3 labels");
    /* patient 1, view 2: a = vals[2] "-1.0": Atelectasis -> 1, Cardiomegaly -> 0 */
    it = find_item(d, "patient00001/study1/view2_frontal.jpg");
    EXPECT(it && it->label[0] == 1 && it->label[1] == 0, "uncertain atelectasis 1, cardiomegaly 0");
    EXPECT(it && !strcmp(it->patient, "patient00001"), "patient id %s", it ? it->patient : "?");
    EXPECT(!find_item(d, "view2_lateral.jpg") && !find_item(d, "view3_lateral.jpg"), "a lateral view was read");
    /* resolution: the image path exists as written under the root */
    EXPECT(access(d->items[0].path, F_OK) == 0, "%s", d->items[0].path);
    /* the root may also be the CheXpert-v1.0-small folder itself */
    char sub[1024];
    snprintf(sub, sizeof sub, "%s/CheXpert-v1.0-small", chex_root);
    cxr_data *d2 = cxr_load(CXR_CHEXPERT, sub, 1, 0);
    EXPECT(d2->n == d->n && access(d2->items[0].path, F_OK) == 0, "root = CheXpert-v1.0-small");
    cxr_free(d2);
    cxr_free(d);
}

static void test_splits_seeded_disjoint(void) {
    int differ = 0;
    for (uint64_t seed = 0; seed < 12; seed++) {
        cxr_data *a = cxr_load(CXR_CHEXPERT, chex_root, 1, seed), *b = cxr_load(CXR_CHEXPERT, chex_root, 1, seed);
        cxr_data *c = cxr_load(CXR_CHEXPERT, chex_root, 1, seed + 100);
        EXPECT(disjoint(a) && disjoint(c), "seed %d: splits share a patient", (int)seed);
        int same = a->n == b->n, other = 0;
        for (long i = 0; same && i < a->n; i++) same = a->items[i].split == b->items[i].split;
        for (long i = 0; i < a->n && i < c->n; i++) other |= a->items[i].split != c->items[i].split;
        EXPECT(same, "seed %d: two loads differ", (int)seed);
        differ += other;
        cxr_free(a);
        cxr_free(b);
        cxr_free(c);
    }
    EXPECT(differ >= 10, "only %d of 12 seed pairs gave different splits", differ);
}

static const char *rsna_root, *covidx_root;

static void make_rsna(const char *root) {
    char *t = cat(NULL, "patientId,x,y,width,height,Target\n"), line[256], p[1024];
    for (int k = 0; k < 40; k++) {
        if (k % 4 == 1) {   /* two boxes */
            snprintf(line, sizeof line, "id-%03d,10.0,20.0,30.0,40.0,1\nid-%03d,50.0,20.0,30.0,40.0,1\n", k, k);
        } else if (k % 4 == 3) {
            snprintf(line, sizeof line, "id-%03d,10.0,20.0,30.0,40.0,1\n", k);
        } else {
            snprintf(line, sizeof line, "id-%03d,,,,,0\n", k);
        }
        t = cat(t, line);
        snprintf(p, sizeof p, "%s/stage_2_train_images/id-%03d.png", root, k);
        write_file(p, "x");
    }
    snprintf(p, sizeof p, "%s/stage_2_train_labels.csv", root);
    write_file(p, t);
    free(t);
}

static void test_rsna(void) {
    cxr_data *d = cxr_load(CXR_RSNA, rsna_root, 1, 3);
    EXPECT(d->n == 40, "%ld images (one per patientId)", d->n);
    EXPECT(d->n_split[0] == 28 && d->n_split[1] == 6 && d->n_split[2] == 6, "70/15/15: %ld %ld %ld", d->n_split[0],
           d->n_split[1], d->n_split[2]);
    long pos = 0;
    for (long i = 0; i < d->n; i++) pos += d->items[i].label[0];
    EXPECT(pos == 20, "%ld positives", pos);
    EXPECT(disjoint(d), "disjoint");
    EXPECT(d->items[5].path && strstr(d->items[5].path, "stage_2_train_images/id-005.png"), "path %s",
           d->items[5].path ? d->items[5].path : "NULL");
    cxr_free(d);
}

static void make_covidx(const char *root) {
    char *tr = NULL, *te = NULL, line[256], p[1024];
    static const char *const cls[] = {"normal", "pneumonia", "COVID-19"};
    for (int k = 0; k < 50; k++) {   /* 25 patients, two images each */
        snprintf(line, sizeof line, "%d img%03d.png %s sourceA\n", 1000 + k / 2, k, cls[k % 3]);
        tr = cat(tr, line);
        snprintf(p, sizeof p, "%s/train/img%03d.png", root, k);
        write_file(p, "x");
    }
    for (int k = 0; k < 9; k++) {
        snprintf(line, sizeof line, "%d t%03d.png %s sourceB\n", 5000 + k, k, cls[k % 3]);
        te = cat(te, line);
        snprintf(p, sizeof p, "%s/test/t%03d.png", root, k);
        write_file(p, "x");
    }
    snprintf(p, sizeof p, "%s/train.txt", root);
    write_file(p, tr);
    snprintf(p, sizeof p, "%s/test.txt", root);
    write_file(p, te);
    free(tr);
    free(te);
}

static void test_covidx(void) {
    cxr_data *d = cxr_load(CXR_COVIDX, covidx_root, 1, 1);
    EXPECT(d->n == 59 && !d->multi_label && d->n_labels == 3, "n %ld", d->n);
    EXPECT(d->n_split[0] == 40 && d->n_split[1] == 10 && d->n_split[2] == 9, "80/20 by patient: %ld %ld %ld",
           d->n_split[0], d->n_split[1], d->n_split[2]);
    EXPECT(disjoint(d), "disjoint");
    EXPECT(d->items[2].cls == 2 && d->items[1].cls == 1, "classes");
    cxr_free(d);
}

/* A training patient who is also in the official test set: their training
 * rows are left out (the test set is fixed), never split into train or val. */
static void test_test_patient_dropped(void) {
    char root[1100], p[1200], *tr = NULL, line[128];
    snprintf(root, sizeof root, "%s/covleak", bad_root);
    for (int k = 0; k < 20; k++) {
        snprintf(line, sizeof line, "%d a%02d.png %s s\n", 200 + k, k, k % 2 ? "normal" : "pneumonia");
        tr = cat(tr, line);
        snprintf(p, sizeof p, "%s/train/a%02d.png", root, k);
        write_file(p, "x");
    }
    snprintf(p, sizeof p, "%s/train.txt", root);
    write_file(p, tr);
    snprintf(p, sizeof p, "%s/test.txt", root);
    write_file(p, "203 t1.png normal s\n207 t2.png pneumonia s\n");
    snprintf(p, sizeof p, "%s/test/t1.png", root);
    write_file(p, "x");
    snprintf(p, sizeof p, "%s/test/t2.png", root);
    write_file(p, "x");
    free(tr);
    for (uint64_t seed = 0; seed < 4; seed++) {
        cxr_data *d = cxr_load(CXR_COVIDX, root, 1, seed);
        EXPECT(d->items[3].dropped && d->items[3].split == CXR_UNUSED && d->items[7].dropped, "not dropped");
        EXPECT(d->n_split[0] + d->n_split[1] == 18 && d->n_split[2] == 2, "%ld + %ld, %ld", d->n_split[0],
               d->n_split[1], d->n_split[2]);
        EXPECT(disjoint(d), "disjoint");
        cxr_free(d);
    }
}

static void test_fraction(void) {
    for (uint64_t seed = 0; seed < 5; seed++) {
        cxr_data *d = cxr_load(CXR_CHEXPERT, chex_root, 0.01, seed);
        cxr_data *full = cxr_load(CXR_CHEXPERT, chex_root, 1, seed);
        EXPECT(d->n_train_full == full->n_split[0], "n_train_full");
        EXPECT(d->n_split[1] == full->n_split[1] && d->n_split[2] == full->n_split[2], "val/test unchanged");
        /* round(0.01 n) = 1 image, plus one per missing label value: at most 1 + 10 */
        EXPECT(d->n_split[0] >= 1 && d->n_split[0] <= 11, "%ld sampled", d->n_split[0]);
        for (int l = 0; l < 5; l++) {
            int has[2] = {0, 0}, full_has[2] = {0, 0};
            for (long i = 0; i < d->n; i++) {
                if (d->items[i].split == CXR_TRAIN) has[d->items[i].label[l]] = 1;
                if (full->items[i].split == CXR_TRAIN) full_has[full->items[i].label[l]] = 1;
            }
            EXPECT(has[0] == full_has[0] && has[1] == full_has[1], "seed %d label %d: both values kept", (int)seed, l);
        }
        /* sampled images are training images of the full split, never val/test */
        for (long i = 0; i < d->n; i++)
            if (d->items[i].split == CXR_TRAIN) EXPECT(full->items[i].split == CXR_TRAIN, "item %ld", i);
        cxr_free(d);
        cxr_free(full);
    }
    cxr_data *d = cxr_load(CXR_COVIDX, covidx_root, 0.1, 4);
    int has[3] = {0, 0, 0};
    for (long i = 0; i < d->n; i++)
        if (d->items[i].split == CXR_TRAIN) has[d->items[i].cls] = 1;
    EXPECT(has[0] && has[1] && has[2], "covidx 10 %%: every class");
    EXPECT(d->n_split[0] >= 4 && d->n_split[0] <= 6, "covidx 10 %% of 40: %ld", d->n_split[0]);
    cxr_free(d);
}

/* ---- bad input ---------------------------------------------------------- */

static void load_chexpert_bad(void *arg) { cxr_load(CXR_CHEXPERT, (const char *)arg, 1, 0); }
static void load_rsna_bad(void *arg) { cxr_load(CXR_RSNA, (const char *)arg, 1, 0); }
static void load_covidx_bad(void *arg) { cxr_load(CXR_COVIDX, (const char *)arg, 1, 0); }

static void test_bad_tables(void) {
    char p[1200], root[1100];
    /* CheXpert without an Edema column */
    snprintf(root, sizeof root, "%s/bad1", bad_root);
    snprintf(p, sizeof p, "%s/CheXpert-v1.0-small/train.csv", root);
    write_file(p, "Path,Sex,Age,Frontal/Lateral,AP/PA,Cardiomegaly,Consolidation,Atelectasis,Pleural Effusion\n");
    expect_dies("missing column", load_chexpert_bad, root, 2, "train.csv:1: no column \"Edema\"");
    /* a bad value on line 3 */
    snprintf(root, sizeof root, "%s/bad2", bad_root);
    snprintf(p, sizeof p, "%s/CheXpert-v1.0-small/train.csv", root);
    write_file(p, "Path,Frontal/Lateral,Atelectasis,Cardiomegaly,Consolidation,Edema,Pleural Effusion\n"
                  "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Frontal,1.0,,,0.0,\n"
                  "CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg,Frontal,1.0,,,2.0,\n");
    expect_dies("bad value", load_chexpert_bad, root, 2, "train.csv:3: Edema is \"2.0\"");
    /* a short row */
    write_file(p, "Path,Frontal/Lateral,Atelectasis,Cardiomegaly,Consolidation,Edema,Pleural Effusion\n"
                  "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Frontal,1.0,,\n");
    expect_dies("short row", load_chexpert_bad, root, 2, "train.csv:2: 5 fields, the header has 7");
    /* an image that does not exist (the chexpert fixture minus one file) */
    snprintf(p, sizeof p, "%s/CheXpert-v1.0-small/train/patient00007/study1/view1_frontal.jpg", chex_root);
    CHECK(unlink(p) == 0);
    expect_dies("missing image", load_chexpert_bad, (void *)chex_root, 2, "view1_frontal.jpg does not exist (");
    write_file(p, "x");
    /* RSNA: no Target column; Target 2; rows that disagree; a DICOM only */
    snprintf(root, sizeof root, "%s/rsna1", bad_root);
    snprintf(p, sizeof p, "%s/stage_2_train_labels.csv", root);
    write_file(p, "patientId,x,y,width,height\nid-1,,,,\n");
    expect_dies("rsna column", load_rsna_bad, root, 2, "stage_2_train_labels.csv:1: no column \"Target\"");
    write_file(p, "patientId,x,y,width,height,Target\nid-1,,,,,0\nid-2,,,,,2\n");
    expect_dies("rsna value", load_rsna_bad, root, 2, "stage_2_train_labels.csv:3: Target is \"2\"");
    write_file(p, "patientId,x,y,width,height,Target\nid-1,1,1,1,1,1\nid-1,,,,,0\n");
    expect_dies("rsna disagree", load_rsna_bad, root, 2, "stage_2_train_labels.csv:3: Target 0 for id-1");
    snprintf(root, sizeof root, "%s/rsna2", bad_root);
    make_rsna(root);
    snprintf(p, sizeof p, "%s/stage_2_train_images/id-004.png", root);
    unlink(p);
    snprintf(p, sizeof p, "%s/stage_2_train_images/id-004.dcm", root);
    write_file(p, "DICM");
    expect_dies("rsna dicom", load_rsna_bad, root, 2, "id-004.dcm (");
    /* COVIDx: an unknown class, too few fields */
    snprintf(root, sizeof root, "%s/cov1", bad_root);
    snprintf(p, sizeof p, "%s/train.txt", root);
    write_file(p, "1 a.png normal s\n2 b.png covid s\n");
    expect_dies("covidx class", load_covidx_bad, root, 2, "train.txt:2: class \"covid\"");
    write_file(p, "1 a.png\n");
    expect_dies("covidx fields", load_covidx_bad, root, 2, "train.txt:1: 2 fields");
}

static void test_csv_split(void) {
    char line[] = "a,\"b,c\",\"d\"\"e\",,f\r\n";
    char *f[8];
    int n = cxr_csv_split(line, f, 8);
    EXPECT(n == 5 && !strcmp(f[0], "a") && !strcmp(f[1], "b,c") && !strcmp(f[2], "d\"e") && !*f[3] &&
               !strcmp(f[4], "f"), "csv fields");
    char l2[] = "1,2,3";
    EXPECT(cxr_csv_split(l2, f, 2) == 3, "overflow count");
}

int main(void) {
    char buf[3][1024];
    snprintf(buf[0], sizeof buf[0], "%s/chexpert", unit_tmpdir());
    snprintf(buf[1], sizeof buf[1], "%s/rsna", unit_tmpdir());
    snprintf(buf[2], sizeof buf[2], "%s/covidx", unit_tmpdir());
    snprintf(bad_root, sizeof bad_root, "%s/bad", unit_tmpdir());
    chex_root = buf[0];
    rsna_root = buf[1];
    covidx_root = buf[2];
    make_chexpert(chex_root);
    make_rsna(rsna_root);
    make_covidx(covidx_root);
    RUN(test_csv_split);
    RUN(test_chexpert);
    RUN(test_splits_seeded_disjoint);
    RUN(test_rsna);
    RUN(test_covidx);
    RUN(test_fraction);
    RUN(test_test_patient_dropped);
    RUN(test_bad_tables);
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", unit_tmpdir());
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", unit_tmpdir());
    return unit_done();
}
