/* phantom_anatomy.c — the normal chest of cxrphantom: patient geometry drawn
 * from a generator, rendered as attenuation maps, composed into a film. Every
 * shape is a closed-form curve in normalised coordinates, so a finding can ask
 * where the lung, the wall or the diaphragm is (phantom_anatomy.h). */
#include "phantom_anatomy.h"
#include "common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PI_F 3.14159265358979f

float ph_unif(torch_gen *g, float lo, float hi) {
    return lo + (hi - lo) * (float)(torch_gen_random(g) & 0xffffffu) * 0x1p-24f;
}

float ph_normal(torch_gen *g, float mean, float sd) {
    /* Box-Muller on two 24-bit uniforms; the first is kept away from 0. */
    float u1 = ((float)(torch_gen_random(g) & 0xffffffu) + 0.5f) * 0x1p-24f;
    float u2 = (float)(torch_gen_random(g) & 0xffffffu) * 0x1p-24f;
    return mean + sd * sqrtf(-2.0f * logf(u1)) * cosf(2.0f * PI_F * u2);
}

int ph_int(torch_gen *g, int k) { return (int)(torch_gen_random(g) % (uint32_t)k); }

static float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }
/* fminf/fmaxf are library calls under strict IEEE rules; these run per pixel
 * and never see a NaN. */
static inline float minf(float a, float b) { return a < b ? a : b; }
static float smoothstep(float e0, float e1, float x) {
    float t = clampf((x - e0) / (e1 - e0), 0.0f, 1.0f);
    return t * t * (3.0f - 2.0f * t);
}

void phantom_body_draw(phantom_body *b, torch_gen *g, int sex) {
    memset(b, 0, sizeof *b);
    b->cx = ph_normal(g, 0.5f, 0.012f);
    b->tilt = ph_normal(g, 0.0f, 0.025f);
    b->hw = clampf(ph_normal(g, sex ? 0.34f : 0.36f, 0.025f), 0.29f, 0.42f);
    b->apex_y = ph_unif(g, 0.10f, 0.15f);
    float base = b->apex_y + ph_unif(g, 0.63f, 0.74f) * (b->hw / 0.36f);
    if (base > 0.89f) base = 0.89f;
    /* The right hemidiaphragm (side 0) usually sits a little higher. */
    float lift = ph_normal(g, 0.018f, 0.010f);
    b->base_y[0] = base - lift + ph_normal(g, 0, 0.006f);
    b->base_y[1] = base + ph_normal(g, 0, 0.006f);
    float dome = ph_unif(g, 0.08f, 0.12f);
    b->dome_y[0] = b->base_y[0] - dome;
    b->dome_y[1] = b->base_y[1] - dome + ph_normal(g, 0.01f, 0.006f);
    /* Normal cardiothoracic ratio about 0.38-0.52; cardiomegaly widens it later. */
    b->heart_w = 2.0f * b->hw * clampf(ph_normal(g, 0.45f, 0.04f), 0.36f, 0.54f);
    b->heart_top = b->apex_y + (b->dome_y[1] - b->apex_y) * ph_unif(g, 0.40f, 0.48f);
    b->heart_shift = ph_unif(g, 0.58f, 0.72f);
    b->medi_w = ph_unif(g, 0.040f, 0.055f);
    b->soft = ph_unif(g, 0.85f, 1.20f);
    b->breast = sex ? ph_unif(g, 0.3f, 1.0f) : 0.0f;
    b->rib_dy = (b->base_y[1] - b->apex_y) / ph_unif(g, 8.6f, 9.6f);
    b->rib_y0 = b->apex_y - ph_unif(g, 0.0f, 0.3f) * b->rib_dy;
    b->gain = ph_unif(g, 0.9f, 1.15f);
    b->lo = ph_unif(g, 0.12f, 0.20f);
    b->hi = ph_unif(g, 0.80f, 0.88f);
    b->noise = ph_unif(g, 0.010f, 0.030f);
    b->texture = ph_unif(g, 0.7f, 1.3f);
    b->gas = ph_unif(g, 0.0f, 1.0f);
    b->frac_rib = -1;
}

float phantom_lateral(const phantom_body *b, float y) {
    float base = 0.5f * (b->base_y[0] + b->base_y[1]);
    float t = clampf((y - b->apex_y) / (base - b->apex_y), 0.0f, 1.0f);
    float u = minf(1.0f, t / 0.85f), u2 = u * u;
    /* sin(u pi/2) by its odd polynomial (error < 2e-4): this runs per pixel */
    return b->hw * (0.45f + 0.55f * u * (1.5707963f - u2 * (0.6459640f - 0.0796926f * u2)));
}

float phantom_diaphragm(const phantom_body *b, int side, float d) {
    float dn = d / b->hw, dome = b->dome_y[side], base = b->base_y[side];
    if (dn > 0.55f) return dome + (base - dome) * ((dn - 0.55f) / 0.45f) * ((dn - 0.55f) / 0.45f);
    return dome + 0.30f * (base - dome) * ((0.55f - dn) / 0.55f) * ((0.55f - dn) / 0.55f);
}

/* Top of the lung (the apex arch) at distance d from the midline. */
float phantom_lung_top(const phantom_body *b, float d) {
    float dn = d / b->hw - 0.42f;
    return b->apex_y + 1.4f * b->hw * dn * dn;
}

float phantom_cavity(const phantom_body *b, int side, float x, float y, float px) {
    float dx = x - b->cx, d = side ? dx : -dx;
    if (d <= 0 || d > b->hw + 0.02f) return 0.0f;
    float yy = y - b->tilt * dx;
    if (yy < b->apex_y - 0.01f || yy > b->base_y[side] + 0.01f) return 0.0f;
    float m = minf(minf(yy - phantom_lung_top(b, d), phantom_diaphragm(b, side, d) - yy),
                   minf(phantom_lateral(b, yy) - d, d - 0.015f));
    return clampf(m / (1.5f * px) + 0.5f, 0.0f, 1.0f);
}

/* The heart: three overlapping ellipses, the right atrium forming the right
 * border, the left ventricle the left border and the apex, a core between;
 * the union spans exactly heart_w. Returns the smallest normalised radius
 * squared (< 1 inside). */
static float heart_r2(const phantom_body *b, float x, float y) {
    float yy = y - b->tilt * (x - b->cx);
    float bottom = b->dome_y[1] + 0.035f;
    float h = bottom - b->heart_top, w = b->heart_w;
    float L = b->cx - w * (1.0f - b->heart_shift);
    static const float lobe[3][4] = {/* xc/w from L, rx/w, yc/h from bottom, ry/h */
                                     {0.22f, 0.22f, 0.34f, 0.50f},
                                     {0.68f, 0.32f, 0.26f, 0.55f},
                                     {0.48f, 0.40f, 0.40f, 0.52f}};
    float best = 1e30f;
    for (int k = 0; k < 3; k++) {
        float u = (x - (L + lobe[k][0] * w)) / (lobe[k][1] * w);
        float v = (yy - (bottom - lobe[k][2] * h)) / (lobe[k][3] * h);
        float r2 = u * u + v * v;
        if (r2 < best) best = r2;
    }
    return best;
}

float phantom_heart(const phantom_body *b, float x, float y, float px) {
    float r2 = heart_r2(b, x, y);
    float r = sqrtf(r2);
    return clampf((1.0f - r) * (0.5f * b->heart_w) / (1.5f * px) + 0.5f, 0.0f, 1.0f);
}

void phantom_maps_init(phantom_maps *m, int n) {
    m->n = n;
    size_t sz = (size_t)n * n * sizeof(float);
    m->body = xmalloc(sz);
    m->air = xmalloc(sz);
    m->tissue = xmalloc(sz);
    m->vessel = xmalloc(sz);
    m->extra = xmalloc(sz);
    m->work0 = xmalloc(sz);
    m->work1 = xmalloc(sz);
}

void phantom_maps_free(phantom_maps *m) {
    free(m->body);
    free(m->air);
    free(m->tissue);
    free(m->vessel);
    free(m->extra);
    free(m->work0);
    free(m->work1);
    memset(m, 0, sizeof *m);
}

void phantom_stamp_segment(float *map, int n, float ax, float ay, float bx, float by, float r, float dens,
                           float edge) {
    float rp = r * n; /* radius in pixels; below one pixel the line still shows, fainter */
    if (rp < 0.6f) { dens *= rp / 0.6f; rp = 0.6f; }
    float x0 = fminf(ax, bx) * n - rp - 1, x1 = fmaxf(ax, bx) * n + rp + 1;
    float y0 = fminf(ay, by) * n - rp - 1, y1 = fmaxf(ay, by) * n + rp + 1;
    int i0 = (int)fmaxf(0, floorf(x0)), i1 = (int)fminf(n - 1, ceilf(x1));
    int j0 = (int)fmaxf(0, floorf(y0)), j1 = (int)fminf(n - 1, ceilf(y1));
    float Ax = ax * n, Ay = ay * n, Dx = bx * n - Ax, Dy = by * n - Ay;
    float L2 = Dx * Dx + Dy * Dy;
    for (int j = j0; j <= j1; j++)
        for (int i = i0; i <= i1; i++) {
            float px = i + 0.5f - Ax, py = j + 0.5f - Ay;
            float t = L2 > 0 ? clampf((px * Dx + py * Dy) / L2, 0.0f, 1.0f) : 0.0f;
            float ex = px - t * Dx, ey = py - t * Dy;
            float q = (ex * ex + ey * ey) / (rp * rp);
            if (q >= 1.0f) continue;
            float v = sqrtf(1.0f - q);
            if (edge > 0) v += edge * expf(-(1.0f - sqrtf(q)) * (1.0f - sqrtf(q)) * 40.0f);
            map[(size_t)j * n + i] += dens * v;
        }
}

void phantom_stamp_polyline(float *map, int n, const float *xy, int k, float r, float dens, float edge) {
    float rp = r * n;
    if (rp < 0.6f) { dens *= rp / 0.6f; rp = 0.6f; }
    float x0 = 1e9f, x1 = -1e9f, y0 = 1e9f, y1 = -1e9f;
    for (int p = 0; p < k; p++) {
        x0 = fminf(x0, xy[2 * p] * n); x1 = fmaxf(x1, xy[2 * p] * n);
        y0 = fminf(y0, xy[2 * p + 1] * n); y1 = fmaxf(y1, xy[2 * p + 1] * n);
    }
    int i0 = (int)fmaxf(0, floorf(x0 - rp - 1)), i1 = (int)fminf(n - 1, ceilf(x1 + rp + 1));
    int j0 = (int)fmaxf(0, floorf(y0 - rp - 1)), j1 = (int)fminf(n - 1, ceilf(y1 + rp + 1));
    for (int j = j0; j <= j1; j++)
        for (int i = i0; i <= i1; i++) {
            float best = 1e30f;
            for (int p = 0; p + 1 < k; p++) {
                float Ax = xy[2 * p] * n, Ay = xy[2 * p + 1] * n;
                float Dx = xy[2 * p + 2] * n - Ax, Dy = xy[2 * p + 3] * n - Ay, L2 = Dx * Dx + Dy * Dy;
                float px = i + 0.5f - Ax, py = j + 0.5f - Ay;
                float t = L2 > 0 ? clampf((px * Dx + py * Dy) / L2, 0.0f, 1.0f) : 0.0f;
                float ex = px - t * Dx, ey = py - t * Dy;
                best = fminf(best, ex * ex + ey * ey);
            }
            float q = best / (rp * rp);
            if (q >= 1.0f) continue;
            float v = sqrtf(1.0f - q);
            if (edge > 0) v += edge * expf(-(1.0f - sqrtf(q)) * (1.0f - sqrtf(q)) * 40.0f);
            map[(size_t)j * n + i] += dens * v;
        }
}

void phantom_stamp_ellipse(float *map, int n, float cx, float cy, float rx, float ry, float dens) {
    int i0 = (int)fmaxf(0, floorf((cx - rx) * n - 1)), i1 = (int)fminf(n - 1, ceilf((cx + rx) * n + 1));
    int j0 = (int)fmaxf(0, floorf((cy - ry) * n - 1)), j1 = (int)fminf(n - 1, ceilf((cy + ry) * n + 1));
    for (int j = j0; j <= j1; j++)
        for (int i = i0; i <= i1; i++) {
            float u = ((i + 0.5f) / n - cx) / rx, v = ((j + 0.5f) / n - cy) / ry;
            float q = u * u + v * v;
            if (q < 1.0f) map[(size_t)j * n + i] += dens * sqrtf(1.0f - q);
        }
}

/* A vessel and its branches, drawn recursively: each generation shorter,
 * thinner and fainter, bending a little, as lung markings taper outwards. */
static void vessel_tree(float *map, int n, torch_gen *g, float x, float y, float ang, float len, float r,
                        float dens, int depth) {
    float bend = ph_normal(g, 0, 0.18f);
    float mx = x + 0.5f * len * cosf(ang), my = y + 0.5f * len * sinf(ang);
    float ex = mx + 0.5f * len * cosf(ang + bend), ey = my + 0.5f * len * sinf(ang + bend);
    phantom_stamp_segment(map, n, x, y, mx, my, r, dens, 0);
    phantom_stamp_segment(map, n, mx, my, ex, ey, r * 0.9f, dens, 0);
    if (depth == 0) return;
    float a = ang + bend, spread = ph_unif(g, 0.30f, 0.55f);
    vessel_tree(map, n, g, ex, ey, a - spread * ph_unif(g, 0.5f, 1.0f), len * ph_unif(g, 0.65f, 0.8f), r * 0.72f,
                dens * 0.88f, depth - 1);
    vessel_tree(map, n, g, ex, ey, a + spread * ph_unif(g, 0.5f, 1.0f), len * ph_unif(g, 0.65f, 0.8f), r * 0.72f,
                dens * 0.88f, depth - 1);
}

/* Ribs, column by column: posterior ribs arch up from the spine and curve down
 * at the wall, with a bright cortex; anterior ribs run down and in, fainter. */
static void draw_ribs(const phantom_body *b, float *map, int n) {
    float s = b->hw / 0.36f;
    for (int side = 0; side < 2; side++) {
        float sg = side ? 1.0f : -1.0f;
        for (int k = 0; k < 11; k++) {
            float y0 = b->rib_y0 + k * b->rib_dy * (1.0f + 0.02f * k);
            float h = (0.0075f + 0.0006f * k) * s;
            for (int i = 0; i < n; i++) {
                float x = (i + 0.5f) / n, d = (x - b->cx) * sg;
                if (d < 0.03f) continue;
                float lat = phantom_lateral(b, y0) * 1.04f + 0.01f;
                float dn = d / b->hw;
                if (d > lat + 0.03f) continue;
                float yc = y0 + b->hw * (-0.30f * dn + 0.75f * powf(dn, 2.2f));
                if (dn > 0.85f) yc += b->hw * 2.5f * (dn - 0.85f) * (dn - 0.85f);
                yc += b->tilt * (x - b->cx);
                float hh = h;
                if (b->frac_rib == k && b->frac_side == side) {
                    float fp = b->frac_pos * lat;
                    if (fabsf(d - fp) < 0.006f) continue;   /* the fracture gap */
                    if (d > fp) yc += 0.004f;               /* and its step */
                }
                float fade = smoothstep(lat + 0.03f, lat - 0.01f, d) * smoothstep(0.03f, 0.05f, d);
                int j0 = (int)floorf((yc - hh) * n - 1), j1 = (int)ceilf((yc + hh) * n + 1);
                for (int j = j0 < 0 ? 0 : j0; j <= j1 && j < n; j++) {
                    float r = fabsf((j + 0.5f) / n - yc) / hh;
                    if (r >= 1.0f) continue;
                    float v = 0.08f * sqrtf(1.0f - r * r) + 0.16f * expf(-(r - 0.85f) * (r - 0.85f) / 0.02f);
                    /* Below the diaphragm the ribs hide in the abdomen's density. */
                    float yj = (j + 0.5f) / n - b->tilt * (x - b->cx);
                    float below = smoothstep(0.0f, 0.04f, yj - phantom_diaphragm(b, side, d));
                    map[(size_t)j * n + i] += v * fade * (1.0f - 0.7f * below);
                }
            }
        }
        for (int k = 0; k < 7; k++) {
            float ya = b->rib_y0 + 0.035f + k * b->rib_dy * 1.08f;
            float h = 0.008f * s;
            for (int i = 0; i < n; i++) {
                float x = (i + 0.5f) / n, d = (x - b->cx) * sg;
                float lat = phantom_lateral(b, ya) * 1.02f;
                float dn = d / lat;
                if (dn < 0.35f || dn > 1.02f) continue;
                float yc = ya + 0.42f * b->hw * powf(1.0f - fminf(dn, 1.0f), 1.15f) + b->tilt * (x - b->cx);
                float fade = smoothstep(0.35f, 0.5f, dn) * smoothstep(1.02f, 0.95f, dn);
                int j0 = (int)floorf((yc - h) * n - 1), j1 = (int)ceilf((yc + h) * n + 1);
                for (int j = j0 < 0 ? 0 : j0; j <= j1 && j < n; j++) {
                    float r = fabsf((j + 0.5f) / n - yc) / h;
                    if (r >= 1.0f) continue;
                    map[(size_t)j * n + i] += fade * (0.030f * sqrtf(1.0f - r * r) +
                                                      0.04f * expf(-(r - 0.85f) * (r - 0.85f) / 0.02f));
                }
            }
        }
    }
}

void phantom_render_body(const phantom_body *b, phantom_maps *m, torch_gen *g, float vessel_gain) {
    int n = m->n;
    float px = 1.0f / n;
    size_t nn = (size_t)n * n;
    memset(m->extra, 0, nn * sizeof(float));
    memset(m->vessel, 0, nn * sizeof(float));
    float carina_y = b->heart_top - 0.01f;
    float base = 0.5f * (b->base_y[0] + b->base_y[1]);
    /* Lung texture: a coarse grid of random values, interpolated. */
    enum { TG = 10 };
    float tex[TG + 1][TG + 1];
    for (int a = 0; a <= TG; a++)
        for (int c = 0; c <= TG; c++) tex[a][c] = ph_normal(g, 0, 1);
    for (int j = 0; j < n; j++) {
        float y = (j + 0.5f) * px;
        for (int i = 0; i < n; i++) {
            float x = (i + 0.5f) * px, dx = x - b->cx, yy = y - b->tilt * dx;
            size_t o = (size_t)j * n + i;
            /* Torso envelope: neck, shoulders, trunk; chord of an ellipse. */
            float neck = 0.085f, shoulder = b->hw * 1.42f, trunk = b->hw * 1.22f;
            float tw = yy < 0.07f ? neck + (shoulder - neck) * smoothstep(0.0f, 0.07f, yy) * 0.4f
                                  : yy < 0.2f ? neck + (shoulder - neck) * (0.4f + 0.6f * smoothstep(0.07f, 0.2f, yy))
                                              : shoulder + (trunk - shoulder) * smoothstep(0.2f, 0.42f, yy);
            float q = dx / tw;
            if (q * q >= 1.0f) { m->body[o] = m->air[o] = m->tissue[o] = 0.0f; continue; }
            float body = q * q < 1.0f ? b->soft * sqrtf(1.0f - q * q * q * q) : 0.0f;
            body *= clampf((1.0f - fabsf(q)) * tw / (1.5f * px), 0.0f, 1.0f);
            /* Upper mediastinum, with the aortic knob on the left. */
            float mw = b->medi_w * (0.8f + 0.4f * smoothstep(b->apex_y, b->heart_top, yy));
            float medi = clampf((mw - fabsf(dx - 0.006f)) / (1.5f * px) + 0.5f, 0.0f, 1.0f) *
                         smoothstep(b->apex_y - 0.08f, b->apex_y, yy);
            float kx = dx - (mw + 0.006f), ky = yy - (b->heart_top - 0.04f);
            float knob = clampf((0.028f - sqrtf(kx * kx + ky * ky)) / (1.5f * px) + 0.5f, 0.0f, 1.0f);
            medi = fmaxf(medi, knob);
            float hr2 = heart_r2(b, x, y);
            /* A soft edge (about 1 % of the film, not a pixel): the heart is
             * round, so its shadow thins towards the border. The right border
             * (atrium, image left) is fainter than the convex left ventricle. */
            float hsoft = fmaxf(1.5f * px, 0.018f);
            float heart = hr2 > 1.6f ? 0.0f
                                     : clampf((1.0f - sqrtf(hr2)) * (0.5f * b->heart_w) / hsoft + 0.5f, 0.0f, 1.0f);
            float hside = 0.75f + 0.25f * smoothstep(-0.03f, 0.02f, dx);
            body += 0.22f * medi + heart * hside * (0.03f + 0.10f * sqrtf(fmaxf(0.0f, 1.0f - hr2)));
            /* Abdomen under the diaphragm: the liver dome a little denser,
             * lower down bowel gas makes it greyer than the soft tissue. */
            int side = dx > 0;
            float dia = phantom_diaphragm(b, side, fabsf(dx));
            body += 0.02f * smoothstep(dia - 0.01f, dia + 0.03f, yy) - 0.10f * smoothstep(dia + 0.02f, dia + 0.16f, yy);
            /* Spine: vertebral bodies with disc spaces and pedicles. */
            float sw = 0.042f;
            if (fabsf(dx) < sw && yy > 0.0f) {
                float ph = (yy - b->rib_y0) / (b->rib_dy * 1.05f);
                ph -= floorf(ph);
                float disc = 1.0f - 0.35f * expf(-(ph - 0.05f) * (ph - 0.05f) / 0.004f);
                float sp = 0.20f * sqrtf(1.0f - (dx / sw) * (dx / sw)) * disc;
                float pu = (fabsf(dx) - 0.028f) / 0.009f, pv = (ph - 0.45f) / 0.16f;
                if (pu * pu + pv * pv < 1.0f) sp += 0.05f * sqrtf(1.0f - pu * pu - pv * pv);
                body += sp;
            }
            /* Lungs: air in each cavity, less at the edges (the chest is round),
             * displaced by the heart and the mediastinum. */
            float cav = phantom_cavity(b, side, x, y, px);
            float air = 0.0f, tis = 0.0f;
            if (cav > 0) {
                float lat = phantom_lateral(b, yy);
                float e = minf(1.0f, fabsf(dx) / lat);
                float depth = 0.72f + 0.28f * (1.0f - e * e * e * e);
                depth *= 0.85f + 0.15f * smoothstep(b->apex_y, base, yy);
                float keep = (1.0f - heart) * (1.0f - medi);
                air = 0.55f * cav * depth * keep;
                tis = cav * keep;
                float tu = (x - 0.1f) * TG / 0.8f, tv = (y - 0.05f) * TG / 0.85f;
                tu = clampf(tu, 0, TG - 0.001f);
                tv = clampf(tv, 0, TG - 0.001f);
                int a = (int)tv, c = (int)tu;
                float fu = tu - c, fv = tv - a;
                float t = (1 - fv) * ((1 - fu) * tex[a][c] + fu * tex[a][c + 1]) +
                          fv * ((1 - fu) * tex[a + 1][c] + fu * tex[a + 1][c + 1]);
                m->vessel[o] = 0.018f * b->texture * t;
            }
            /* Gastric air bubble under the left hemidiaphragm. */
            {
                float gx = (dx - 0.62f * b->hw) / 0.05f, gy = (yy - (b->dome_y[1] + 0.075f)) / 0.03f;
                float gq = gx * gx + gy * gy;
                if (gq < 1.0f) air += 0.18f * sqrtf(1.0f - gq) * b->gas;
            }
            /* Trachea: an air column down to the carina. */
            float tx = dx + 0.004f * (yy / carina_y);
            if (yy < carina_y && fabsf(tx) < 0.016f)
                air += 0.14f * sqrtf(1.0f - (tx / 0.016f) * (tx / 0.016f)) * smoothstep(carina_y, carina_y - 0.02f, yy);
            /* Breast shadows over the lower lateral lungs. */
            if (b->breast > 0) {
                float by = (yy - (base - 0.07f)) / 0.12f, bx = (fabsf(dx) - 0.72f * b->hw) / (0.30f * b->hw);
                float bq = bx * bx + by * by;
                if (bq < 1.0f) body += 0.10f * b->breast * sqrtf(1.0f - bq);
            }
            m->body[o] = body;
            m->air[o] = air;
            m->tissue[o] = tis;
        }
    }
    /* Main bronchi. */
    float hy = carina_y + 0.05f;
    for (int s = 0; s < 2; s++) {
        float sg = s ? 1.0f : -1.0f;
        float ex = b->cx + sg * 0.07f, ey = carina_y + (s ? 0.045f : 0.035f);
        float tmp_r = 0.010f;
        float *air = m->air;
        /* added, not stamped with max: the trachea's air is already there */
        int i0 = (int)((fminf(b->cx, ex) - 0.02f) * n), i1 = (int)((fmaxf(b->cx, ex) + 0.02f) * n);
        int j0 = (int)((carina_y - 0.02f) * n), j1 = (int)((ey + 0.02f) * n);
        for (int j = j0 < 0 ? 0 : j0; j <= j1 && j < n; j++)
            for (int i = i0 < 0 ? 0 : i0; i <= i1 && i < n; i++) {
                float x = (i + 0.5f) * px, y = (j + 0.5f) * px;
                float Dx = ex - b->cx, Dy = ey - carina_y;
                float t = clampf(((x - b->cx) * Dx + (y - carina_y) * Dy) / (Dx * Dx + Dy * Dy), 0, 1);
                float qx = x - b->cx - t * Dx, qy = y - carina_y - t * Dy;
                float q = (qx * qx + qy * qy) / (tmp_r * tmp_r);
                if (q < 1.0f) air[(size_t)j * n + i] += 0.07f * sqrtf(1.0f - q);
            }
        /* Vessel trees from each hilum. */
        float hx = b->cx + sg * (0.5f * b->heart_w * 0.75f + 0.02f), hyy = hy + b->tilt * (hx - b->cx);
        float base_ang[6] = {-1.25f, -0.8f, -0.35f, 0.1f, 0.55f, 1.0f};
        for (int r = 0; r < 6; r++) {
            float a = base_ang[r] + ph_normal(g, 0, 0.12f);
            float ang = s ? a : PI_F - a;
            vessel_tree(m->vessel, n, g, hx, hyy, ang, ph_unif(g, 0.07f, 0.10f), 0.0095f,
                        0.075f * b->texture * vessel_gain, 4);
        }
    }
    draw_ribs(b, m->body, n);
    /* Clavicles: an S-curve from the sternal notch out and up; scapulae; humeral heads. */
    for (int s = 0; s < 2; s++) {
        float sg = s ? 1.0f : -1.0f;
        float y0 = b->apex_y + 0.03f;
        float pts[4][2] = {{b->cx + sg * 0.03f, y0 + 0.005f},
                           {b->cx + sg * 0.35f * b->hw, y0 - 0.005f},
                           {b->cx + sg * 0.75f * b->hw, y0 - 0.03f},
                           {b->cx + sg * 1.12f * b->hw, y0 - 0.055f}};
        for (int k = 0; k < 4; k++) pts[k][1] += b->tilt * (pts[k][0] - b->cx);
        phantom_stamp_polyline(m->body, n, &pts[0][0], 4, 0.011f * b->hw / 0.36f, 0.14f, 0.5f);
        phantom_stamp_ellipse(m->body, n, b->cx + sg * 1.0f * b->hw, b->apex_y + 0.13f, 0.045f, 0.12f, 0.05f);
        phantom_stamp_ellipse(m->body, n, b->cx + sg * 1.33f * b->hw, b->apex_y + 0.0f, 0.055f, 0.06f, 0.30f);
    }
}

void phantom_film(const phantom_body *b, const phantom_maps *m, torch_gen *g, uint8_t *out) {
    int n = m->n;
    size_t nn = (size_t)n * n;
    float *f = m->work0, *t = m->work1;
    for (size_t o = 0; o < nn; o++) {
        float D = m->body[o] - m->air[o] + m->vessel[o] * m->tissue[o] + m->extra[o];
        if (D < 0) D = 0;
        float v = 1.0f - expf(-b->gain * D);
        f[o] = (v - b->lo) / (b->hi - b->lo);
    }
    /* Blur: binomial passes, more at larger sizes (the same blur in mm). */
    int passes = n / 256 < 1 ? 1 : n / 256;
    for (int p = 0; p < passes; p++) {
        for (int j = 0; j < n; j++)
            for (int i = 0; i < n; i++) {
                const float *r = f + (size_t)j * n;
                float a = r[i > 0 ? i - 1 : 0], c = r[i < n - 1 ? i + 1 : n - 1];
                t[(size_t)j * n + i] = 0.25f * a + 0.5f * r[i] + 0.25f * c;
            }
        for (int j = 0; j < n; j++)
            for (int i = 0; i < n; i++) {
                float a = t[(size_t)(j > 0 ? j - 1 : 0) * n + i], c = t[(size_t)(j < n - 1 ? j + 1 : n - 1) * n + i];
                f[(size_t)j * n + i] = 0.25f * a + 0.5f * t[(size_t)j * n + i] + 0.25f * c;
            }
    }
    for (size_t o = 0; o < nn; o++) {
        /* quantum noise: triangular (two 16-bit uniforms from one word),
         * unit variance, stronger where fewer photons reach the film */
        uint32_t w = torch_gen_random(g);
        float tri = ((float)(w & 0xffffu) + (float)(w >> 16)) * (1.0f / 65536.0f) - 1.0f;
        float v = clampf(f[o], 0.0f, 1.0f);
        v += b->noise * (0.6f + 0.8f * (1.0f - v)) * 2.449f * tri;
        v = clampf(v, 0.0f, 1.0f);
        out[o] = (uint8_t)lrintf(v * 255.0f);
    }
}
