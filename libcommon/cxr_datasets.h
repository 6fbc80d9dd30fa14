/* cxr_datasets.h — the classification datasets of the study read as
 * distributed (and as cxrphantom writes them), split into train / validation /
 * test by patient, deterministically from a seed, with the training labels
 * sampled to a fraction. The rules (MGCA's protocol, STUDY.md; what MGCA's
 * scripts leave open is fixed here):
 *
 * CheXpert (--data: the folder holding CheXpert-v1.0-small/ or
 *   CheXpert-v1.0/, or that folder itself): train.csv and valid.csv with the
 *   columns Path, Frontal/Lateral and the 14 observations; only frontal rows;
 *   the 5 competition labels Atelectasis, Cardiomegaly, Consolidation, Edema,
 *   Pleural Effusion; 1.0 -> 1, 0.0 -> 0, blank -> 0, -1.0 (uncertain) -> 1
 *   for Atelectasis, Edema and Pleural Effusion and -> 0 for Cardiomegaly and
 *   Consolidation. Path is relative to the folder above the one holding the
 *   csv. The patient is the path's "patientNNNNN" component. Validation:
 *   whole patients of train.csv, in a seeded shuffle, until they hold at
 *   least V images, V = 5000 when train has >= 50,000 frontal images (the
 *   real data), else ceil(10 %) of them (small and phantom copies). Test:
 *   valid.csv (frontal).
 * RSNA Pneumonia (--data: the folder holding stage_2_train_labels.csv):
 *   patientId,x,y,width,height,Target, one row per box (or one with Target 0);
 *   an image is positive when its rows say Target 1 (rows that disagree are an
 *   error). One image per patientId; patients in a seeded shuffle: the first
 *   round(70 %) train, the next round(15 %) validation, the rest test. The
 *   image is stage_2_train_images/<patientId> + .png or .jpg (cxrphantom's
 *   copies, or the real DICOMs converted); a .dcm alone is refused with a
 *   note on converting it (this reader has no DICOM decoder).
 * COVIDx (--data: the folder holding train.txt, test.txt, train/, test/):
 *   lines "patient_id filename class [source]" separated by spaces; class
 *   normal, pneumonia or COVID-19 (any case) -> 0, 1, 2; train.txt split by
 *   patient (seeded shuffle, first round(80 %) train, the rest validation);
 *   test.txt is the test set. Images: train/<filename>, test/<filename>.
 *
 * Label fraction f < 1: a seeded shuffle of the training images, the first
 *   max(1, round(f n)) of them; then, for each label (CheXpert, RSNA) whose
 *   positives or negatives the sample lacks, and each class (COVIDx) it
 *   lacks, the next image of the shuffle that has it is added, where the
 *   training set has one. Validation and test are never sampled.
 * Every seeded draw is splitmix64 (metrics.h) from the seed and a tag per
 *   purpose; patients are sorted by id before shuffling, so the row order of
 *   the files does not matter. Training rows of a patient who is also in the
 *   official test set are left out (a warning says how many); the three sets
 *   are then checked to share no patient.
 * Bad tables die "file:line: what" (a missing column names it at the header
 *   line); an image that does not exist dies naming it and its file:line. */
#ifndef SYNTHCXR_CXR_DATASETS_H
#define SYNTHCXR_CXR_DATASETS_H

#include <stdint.h>

enum cxr_dataset { CXR_CHEXPERT, CXR_RSNA, CXR_COVIDX, CXR_N_DATASETS };
enum cxr_split { CXR_UNUSED = -1, CXR_TRAIN = 0, CXR_VAL = 1, CXR_TEST = 2 };

#define CXR_MAX_LABELS 5

typedef struct cxr_item {
    char *path;                     /* the image file (root joined) */
    char *patient;                  /* patient id */
    char *source;                   /* "file:line" it came from */
    int split;                      /* enum cxr_split; CXR_UNUSED: left out by --fraction (or dropped) */
    int dropped;                    /* 1: a training row of a test patient, never used (else 0) */
    uint8_t label[CXR_MAX_LABELS];  /* multi-label 0/1 (CheXpert 5, RSNA 1) */
    int32_t cls;                    /* class (COVIDx), else -1 */
} cxr_item;

typedef struct cxr_data {
    int dataset;                    /* enum cxr_dataset */
    int n_labels;                   /* outputs of the probe: 5, 1, or 3 classes */
    int multi_label;                /* 1: BCE + macro AUROC; 0: softmax + accuracy */
    const char *const *label_names; /* [n_labels] */
    long n;
    cxr_item *items;                /* [n] train+val rows, then test rows, in file order */
    long n_split[3];                /* images in train (after --fraction), val, test */
    long n_train_full;              /* training images before --fraction */
} cxr_data;

extern const char *const cxr_dataset_names[CXR_N_DATASETS + 1];   /* NULL-terminated */

/* Reads dataset ds under root, splits it with seed, samples the training
 * labels to fraction (0, 1], and checks that every image exists (those left
 * out by the fraction too: the feature cache covers the whole dataset, so
 * that all fractions and seeds share it). */
cxr_data *cxr_load(int ds, const char *root, double fraction, uint64_t seed);
void cxr_free(cxr_data *d);

/* Indices of the items of split s, in file order, into idx (n_split[s] of them). */
long cxr_split_indices(const cxr_data *d, int s, long *idx);

/* Dies naming the patient if any patient has images in two of train, val, test. */
void cxr_check_disjoint(const cxr_data *d);

/* Splits one line of a CSV table (RFC 4180 quotes) into at most cap fields,
 * in place (line is modified; fields point into it). Returns the field count
 * (more than cap fields: cap + 1). Exposed for the tests. */
int cxr_csv_split(char *line, char **fields, int cap);

#endif
