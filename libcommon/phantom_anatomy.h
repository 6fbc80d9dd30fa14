/* phantom_anatomy.h — the normal chest of cxrphantom(1): a patient's geometry
 * (thorax size, tilt, heart, diaphragm, ribs, habitus, exposure) drawn from a
 * seeded generator, and the maps it renders to. Coordinates are normalised:
 * x and y in [0, 1] across the image, y down; "side 0" is the patient's right
 * (the image's left, as a PA film is read), "side 1" the patient's left.
 * Rendering works in attenuation (line integrals): a body map of soft tissue,
 * bone and mediastinum, an air map of the lungs and a vessel map of the lung
 * markings, kept apart so that findings can change them before they are
 * composed into a film (phantom_film). */
#ifndef SYNTHCXR_PHANTOM_ANATOMY_H
#define SYNTHCXR_PHANTOM_ANATOMY_H

#include "rng.h"

#include <stdint.h>

typedef struct phantom_body {
    float cx;             /* midline (spine) x */
    float tilt;           /* y shift per unit x from the midline (patient rotation) */
    float hw;             /* thoracic half-width at the costophrenic angles */
    float apex_y;         /* lung apices */
    float dome_y[2];      /* top of each hemidiaphragm */
    float base_y[2];      /* costophrenic angles */
    float heart_w;        /* transverse cardiac diameter: CTR = heart_w / (2 hw) */
    float heart_top;      /* upper heart border (y) */
    float heart_shift;    /* how much of the heart lies left of the midline, 0.55-0.75 */
    float medi_w;         /* upper mediastinum half-width */
    float soft;           /* soft-tissue thickness (habitus) */
    float breast;         /* breast shadows, 0 = none */
    float rib_y0, rib_dy; /* first posterior rib at the spine, spacing */
    float gain;           /* film response (exposure) */
    float lo, hi;         /* display window of the film response */
    float noise;          /* quantum noise, standard deviation on [0, 1] */
    float texture;        /* strength of the lung markings */
    float gas;            /* gastric air bubble, 0-1 */
    int frac_rib;         /* rib with a fracture, -1 none (side in frac_side) */
    int frac_side;
    float frac_pos;       /* where along the rib, 0-1 from the spine */
} phantom_body;

/* Draw a patient. sex: 0 male, 1 female (breast shadows). */
void phantom_body_draw(phantom_body *b, torch_gen *g, int sex);

/* The thoracic cavity of one side at (x, y): 1 inside, 0 outside, soft over a
 * pixel or two (px = one pixel in normalised units). */
float phantom_cavity(const phantom_body *b, int side, float x, float y, float px);
/* Lateral wall of the cavity: distance from the midline at height y. */
float phantom_lateral(const phantom_body *b, float y);
/* Diaphragm of a side at distance d from the midline. */
float phantom_diaphragm(const phantom_body *b, int side, float d);
/* Top of the lung (the apical arch) at distance d from the midline, before tilt. */
float phantom_lung_top(const phantom_body *b, float d);
/* 1 inside the heart silhouette, 0 outside (soft edge). */
float phantom_heart(const phantom_body *b, float x, float y, float px);

/* The maps one image is built from, each [n, n] row-major. */
typedef struct phantom_maps {
    int n;
    float *body;    /* soft tissue, bone, mediastinum, heart, abdomen */
    float *air;     /* air in the chest: lungs, trachea, pneumothorax; subtracted */
    float *tissue;  /* where lung parenchyma is (vessels show only there), 0-1 */
    float *vessel;  /* lung markings (density where tissue is present) */
    float *extra;   /* findings' density (fluid, opacity, devices) */
    float *work0, *work1, *work2;  /* scratch of phantom_render_body and phantom_film */
} phantom_maps;

/* Allocate the maps of an n x n image once; reuse them for many images. */
void phantom_maps_init(phantom_maps *m, int n);
void phantom_maps_free(phantom_maps *m);
/* The normal chest into m (every map is overwritten). g draws the vessel trees
 * and the texture. vessel_gain scales the markings (oedema makes them prominent). */
void phantom_render_body(const phantom_body *b, phantom_maps *m, torch_gen *g, float vessel_gain);

/* Stamp a capsule (segment a-b, radius r, normalised units) into map (n x n):
 * adds dens at the centre falling off as a cylinder's chord; edge > 0 adds a
 * brighter rim (a tube's wall). */
void phantom_stamp_segment(float *map, int n, float ax, float ay, float bx, float by, float r, float dens,
                           float edge);
/* A polyline of k points (xy[2k], normalised) as one tube: no doubling at
 * the joints. */
void phantom_stamp_polyline(float *map, int n, const float *xy, int k, float r, float dens, float edge);
/* Stamp a filled ellipse (centre, semi-axes) with a chord profile. */
void phantom_stamp_ellipse(float *map, int n, float cx, float cy, float rx, float ry, float dens);

/* Compose the maps into an 8-bit film [n, n]: attenuation -> exposure ->
 * display window, a blur of about half a pixel at 256, quantum noise from g. */
void phantom_film(const phantom_body *b, const phantom_maps *m, torch_gen *g, uint8_t *out);

/* Generator helpers on top of torch_gen: uniform in [lo, hi), normal, and an
 * integer in [0, k). */
float ph_unif(torch_gen *g, float lo, float hi);
float ph_normal(torch_gen *g, float mean, float sd);
int ph_int(torch_gen *g, int k);

#endif
