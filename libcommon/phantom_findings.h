/* phantom_findings.h — one cxrphantom case: a patient (phantom_body), the
 * findings drawn for it with their location and severity, the labels a
 * dataset records (CheXpert's 14, RSNA's boxes, SIIM's mask, COVIDx's class,
 * Object-CXR's foreign objects), and the rendering of the case into a film
 * and its masks. A case depends on (seed, index) and the prevalences only. */
#ifndef SYNTHCXR_PHANTOM_FINDINGS_H
#define SYNTHCXR_PHANTOM_FINDINGS_H

#include "phantom_anatomy.h"

#include <stdint.h>

/* CheXpert's 14 observations, in its CSV column order. */
enum phantom_label {
    PL_NO_FINDING, PL_ENLARGED_CM, PL_CARDIOMEGALY, PL_LUNG_OPACITY, PL_LUNG_LESION, PL_EDEMA,
    PL_CONSOLIDATION, PL_PNEUMONIA, PL_ATELECTASIS, PL_PNEUMOTHORAX, PL_EFFUSION, PL_PLEURAL_OTHER,
    PL_FRACTURE, PL_SUPPORT_DEVICES, PL_N
};
extern const char *const phantom_label_names[PL_N];   /* "No Finding", ... as CheXpert spells them */

/* The findings --prevalence can set (NAME=P). Lung Opacity and No Finding
 * follow from the others; covid draws the COVIDx pattern. */
enum phantom_prev {
    PP_CARDIOMEGALY, PP_EFFUSION, PP_PNEUMOTHORAX, PP_EDEMA, PP_CONSOLIDATION, PP_PNEUMONIA,
    PP_ATELECTASIS, PP_NODULE, PP_DEVICES, PP_FOREIGN, PP_FRACTURE, PP_PLEURAL_OTHER, PP_ENLARGED_CM,
    PP_COVID, PP_N
};
extern const char *const phantom_prev_names[PP_N];    /* "cardiomegaly", "effusion", ... */
extern const float phantom_prev_default[PP_N];
/* Parse "name=p,name=p" into prev (which starts as the defaults); dies_usage
 * naming the option on an unknown name or a value outside [0, 1]. */
void phantom_prev_parse(float prev[PP_N], const char *spec);

/* Boxes, in pixels of the rendered image, [x0, x1) x [y0, y1). */
enum phantom_box_kind {
    PB_CONSOLIDATION, PB_NODULE, PB_ET_TUBE, PB_NG_TUBE, PB_CENTRAL_LINE, PB_PACEMAKER, PB_ECG_LEAD,
    PB_BUTTON, PB_CLIP, PB_COIN, PB_N
};
extern const char *const phantom_box_names[PB_N];
typedef struct phantom_box {
    int kind;           /* phantom_box_kind */
    int ellipse;        /* drawn round (Object-CXR's ellipse annotation) */
    int x0, y0, x1, y1;
} phantom_box;

#define PHANTOM_MAX_BOXES 16

typedef struct phantom_case {
    uint64_t seed;
    long index;
    int size;                    /* image side in pixels */
    int sex;                     /* 0 M, 1 F */
    int age;
    int ap;                      /* 1 AP (portable), 0 PA */
    phantom_body body;
    int present[PL_N];           /* drawn on the image */
    int uncertain[PL_N];         /* the report hedges it ("possible ..."): CheXpert -1 */
    int negated[PL_N];           /* absent and the report says so: CheXpert 0 (else blank) */
    /* where and how much */
    int eff_side;                /* 1 right, 2 left, 3 both */
    int eff_size;                /* 1 small, 2 moderate, 3 large */
    int ptx_side;                /* 0 right, 1 left */
    int ptx_size;                /* 1 small, 2 moderate, 3 large */
    int cons_side, cons_zone;    /* zone 0 upper, 1 middle/lingula, 2 lower */
    int atel_side;
    int edema_grade;             /* 1 mild, 2 moderate, 3 severe */
    int n_nodules;
    float nod_x[2], nod_y[2], nod_r[2];
    int covid;                   /* the COVID-19 pattern (bilateral peripheral opacities) */
    int devices;                 /* bit set of PB_ET_TUBE..PB_ECG_LEAD */
    int foreign;                 /* bit set of PB_BUTTON..PB_COIN */
    int n_boxes;
    phantom_box box[PHANTOM_MAX_BOXES];
    int has_ptx_mask, has_cons_mask;
} phantom_case;

/* Draw case `index` of world `seed` at size n (boxes are computed when it is rendered). */
void phantom_case_make(phantom_case *c, uint64_t seed, long index, int n, const float prev[PP_N]);
/* The generator seed of (seed, index, stream): stream 0 the image, 1 the report. */
uint64_t phantom_stream_seed(uint64_t seed, long index, int stream);

/* Render: the film [n, n] u8, and where not NULL the pneumothorax and
 * consolidation masks [n, n] (0/1). Fills c->box. */
void phantom_case_render(phantom_case *c, uint8_t *film, uint8_t *ptx_mask, uint8_t *cons_mask);
/* The same with maps the caller allocated (phantom_maps_init(ws, c->size))
 * and reuses from image to image: no allocation per image. */
void phantom_case_render_ws(phantom_case *c, phantom_maps *ws, uint8_t *film, uint8_t *ptx_mask, uint8_t *cons_mask);

/* The CheXpert value of label l: 1, 0, -1, or 2 for blank (not mentioned). */
int phantom_chexpert_value(const phantom_case *c, int l);
/* COVIDx class: 0 normal, 1 pneumonia, 2 COVID-19. */
int phantom_covidx_class(const phantom_case *c);

#endif
