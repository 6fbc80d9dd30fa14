/* phantom_formats.h — the folders and tables of the real chest X-ray datasets,
 * written for phantom cases: MIMIC-CXR(-JPG), CheXpert, RSNA Pneumonia, SIIM
 * pneumothorax (with its run-length masks), COVIDx and Object-CXR. Images are
 * 8-bit grey PNG wherever the real data has JPEG or DICOM, under the real
 * names with a .png suffix; tables keep the real columns and value spellings. */
#ifndef SYNTHCXR_PHANTOM_FORMATS_H
#define SYNTHCXR_PHANTOM_FORMATS_H

#include "phantom_findings.h"

enum phantom_format { PF_MIMIC, PF_CHEXPERT, PF_RSNA, PF_SIIM, PF_COVIDX, PF_OBJECT_CXR, PF_N };
extern const char *const phantom_format_names[PF_N + 1];   /* NULL-terminated, for parse_enum */

/* What the tables need of one case once its image is written. */
typedef struct phantom_record {
    phantom_case c;
    char *findings, *impression;   /* the report (mimic) */
    char *rle;                     /* SIIM EncodedPixels of the pneumothorax, NULL if none */
} phantom_record;

/* The image's path relative to the dataset root (into buf of size cap). */
void phantom_image_path(int fmt, const phantom_case *c, char *buf, size_t cap);
/* mkdir -p of path's parent folder; dies naming it when that fails. */
void phantom_mkdirs_for(const char *path);
/* The tables of format fmt for records[0..n) under root (atomic files). */
void phantom_write_tables(int fmt, const char *root, const phantom_record *rec, long n);

/* SIIM's run-length code of a mask [n, n] (row-major 0/1): pixels taken
 * column by column (the transposed image, flattened), pairs "start length"
 * where each start counts the pixels since the end of the previous run (the
 * first from pixel 0). Returns a fresh string, "" for an empty mask. */
char *phantom_rle_encode(const uint8_t *mask, int n);
/* The inverse, into mask [n, n]; dies "what: ..." on a malformed code or a run
 * past the image. */
void phantom_rle_decode(const char *rle, int n, uint8_t *mask, const char *what);

/* The split a case belongs to in the formats that have one: 0 train, 1
 * validation, 2 test (a fixed function of the index). */
int phantom_split(int fmt, long index);

/* Contact sheet (RGB [rows*n, cols*n, 3]): put case c's film into slot, with
 * its boxes in colour by kind, the pneumothorax mask hatched, and a tick per
 * CheXpert finding present along the top (colours in cxrphantom(1)). */
void phantom_sheet_put(uint8_t *sheet, int cols, int n, int slot, const phantom_case *c, const uint8_t *film,
                       const uint8_t *ptx_mask);

#endif
