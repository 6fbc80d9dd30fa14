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
    if (x < L - 0.1f * w || x > L + 1.1f * w || yy < b->heart_top - 0.1f * h || yy > bottom + 0.1f * h) return 4.0f;
    /* xc/w from L, rx/w, yc/h up from the bottom, ry/h; the left ventricle
     * is tilted (its long axis runs down and out to the apex) and placed so
     * that its outermost point is at L + w. */
    static const float lobe[3][4] = {{0.21f, 0.21f, 0.30f, 0.40f},   /* right atrium: the right border */
                                     {0.00f, 0.30f, 0.30f, 0.50f},   /* left ventricle: left border, apex */
                                     {0.47f, 0.30f, 0.52f, 0.45f}};  /* atria and outflow: the upper heart */
    static const float ct = 0.8660254f, st = -0.5f; /* LV long axis 30 degrees off vertical */
    float r2k[3];
    for (int k = 0; k < 3; k++) {
        float rx = lobe[k][1] * w, ry = lobe[k][3] * h;
        float xc = L + lobe[k][0] * w, yc = bottom - lobe[k][2] * h;
        float du = x - xc, dv = yy - yc;
        if (k == 1) {
            xc = L + w - sqrtf(rx * rx * ct * ct + ry * ry * st * st);
            du = x - xc;
            float a = du * ct + dv * st, c = -du * st + dv * ct;
            du = a;
            dv = c;
        }
        r2k[k] = (du / rx) * (du / rx) + (dv / ry) * (dv / ry);
    }
    /* a smooth minimum: the lobes merge into one outline with no notches
     * where they meet, and the outermost points (the width) stay put */
    float lo = minf(minf(r2k[0], r2k[1]), r2k[2]);
    /* the smooth minimum lowers it by at most 0.12 ln 3: beyond 1.2 the point is outside anyway */
    if (lo > 1.2f) return lo;
    float sum = 0.0f;
    for (int k = 0; k < 3; k++)
        if (r2k[k] - lo < 1.0f) sum += expf((lo - r2k[k]) * (1.0f / 0.12f)); /* else < 3e-4: skip the underflow */
    return lo - 0.12f * logf(sum);
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
    m->work2 = xmalloc(sz);
}

void phantom_maps_free(phantom_maps *m) {
    free(m->body);
    free(m->air);
    free(m->tissue);
    free(m->vessel);
    free(m->extra);
    free(m->work0);
    free(m->work1);
    free(m->work2);
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


static float wrap_angle(float a) {
    while (a > PI_F) a -= 2.0f * PI_F;
    while (a < -PI_F) a += 2.0f * PI_F;
    return a;
}

/* The pulmonary vessels of one lung as a branching tree. A segment of radius
 * r runs about nine radii and splits in two whose radii keep r^2.7 (Murray's
 * law, a little below its cube so that the tree stays small); the thinner
 * daughter turns further off, and both lean a little away from the hilum so
 * the tree fans out to the pleura. A vessel's shadow is a cylinder's chord,
 * so its density goes with its width: markings are thick and bright at the
 * hilum and fade to fine lines in the outer third. A branch that leaves the
 * lung stops. */
typedef struct vessel_ctx {
    const phantom_body *b;
    float *map;    /* [n, n] */
    int n, side;
    float hx, hy;  /* the hilum the tree fans out from */
    float dens;    /* density per unit radius */
    float rmin;    /* thinnest vessel drawn (normalised) */
} vessel_ctx;

/* One vessel segment a-b whose radius tapers from ra to rb: a cylinder's
 * chord, k * sqrt(r^2 - e^2) at distance e from the axis. The ends are flat,
 * so a tree's joints do not double up into bright dots. Thinner than about
 * a pixel it is drawn a pixel wide with the same integral (fainter). */
static void stamp_vessel(float *map, int n, float ax, float ay, float bx, float by, float ra, float rb, float k) {
    float Ax = ax * n, Ay = ay * n, Dx = bx * n - Ax, Dy = by * n - Ay;
    float L2 = Dx * Dx + Dy * Dy;
    if (L2 <= 0) return;
    float Ra = ra * n, Rb = rb * n, kn = k / n; /* radii in pixels; k per pixel of chord */
    float Rm = fmaxf(fmaxf(Ra, Rb), 0.7f);
    int i0 = (int)fmaxf(0, floorf(fminf(Ax, Ax + Dx) - Rm - 1)), i1 = (int)fminf(n - 1, ceilf(fmaxf(Ax, Ax + Dx) + Rm + 1));
    int j0 = (int)fmaxf(0, floorf(fminf(Ay, Ay + Dy) - Rm - 1)), j1 = (int)fminf(n - 1, ceilf(fmaxf(Ay, Ay + Dy) + Rm + 1));
    float inv = 1.0f / L2, L = sqrtf(L2);
    for (int j = j0; j <= j1; j++) {
        /* the columns this row can touch: 0 <= t < 1 and a distance from
         * the axis under Rm, each linear in x; a pixel of slack either
         * side, the test below decides */
        float py = j + 0.5f - Ay, lo = (float)i0, hi = (float)i1;
        if (fabsf(Dx) > 1e-6f) {
            float u0 = -py * Dy / Dx, u1 = (L2 - py * Dy) / Dx;
            lo = fmaxf(lo, fminf(u0, u1) + Ax - 1.5f);
            hi = fminf(hi, fmaxf(u0, u1) + Ax + 0.5f);
        }
        if (fabsf(Dy) > 1e-6f) {
            float w0 = (py * Dx - Rm * L) / Dy, w1 = (py * Dx + Rm * L) / Dy;
            lo = fmaxf(lo, fminf(w0, w1) + Ax - 1.5f);
            hi = fminf(hi, fmaxf(w0, w1) + Ax + 0.5f);
        }
        for (int i = (int)ceilf(lo); i <= (int)floorf(hi); i++) {
            float px = i + 0.5f - Ax;
            float t = (px * Dx + py * Dy) * inv;
            if (t < 0.0f || t >= 1.0f) continue;
            float ex = px - t * Dx, ey = py - t * Dy, e2 = ex * ex + ey * ey;
            float R = Ra + t * (Rb - Ra), amp = kn;
            if (R < 0.7f) { amp *= R * R / 0.49f; R = 0.7f; }
            float c = R * R - e2;
            if (c > 0) map[(size_t)j * n + i] += amp * sqrtf(c);
        }
    }
}

static void vessel_branch(const vessel_ctx *t, torch_gen *g, float x, float y, float ang, float r, int depth) {
    float len = r * ph_unif(g, 5.0f, 9.0f) + 0.004f;
    float bend = ph_normal(g, 0, 0.20f);
    float mx = x + 0.5f * len * cosf(ang), my = y + 0.5f * len * sinf(ang);
    float a2 = ang + bend;
    float ex = mx + 0.5f * len * cosf(a2), ey = my + 0.5f * len * sinf(a2);
    /* the inside test uses a fixed pixel so that the tree is the same at every --size */
    int inside = phantom_cavity(t->b, t->side, ex, ey, 1.0f / 256) > 0.5f;
    float r1 = 0.97f * r, r2 = 0.94f * r;
    /* thin vessels fade a little slower than their width: many overlap in projection */
    float k = t->dens * powf(r * (1.0f / 0.006f), -0.4f);
    stamp_vessel(t->map, t->n, x, y, mx, my, r, r1, k);
    if (!inside) return;
    stamp_vessel(t->map, t->n, mx, my, ex, ey, r1, r2, k);
    if (r2 < t->rmin || depth == 0) return;
    float f = ph_unif(g, 0.45f, 1.0f);                 /* thin / thick daughter */
    float rb = r2 * powf(1.0f + powf(f, 2.7f), -1.0f / 2.7f), rs = f * rb;
    float ts = ph_unif(g, 0.45f, 0.95f);               /* the thin one turns more: */
    float tb = asinf(f * f * sinf(ts));                /* r_b^2 sin tb = r_s^2 sin ts */
    float sg = ph_int(g, 2) ? 1.0f : -1.0f;
    float out = atan2f(ey - t->hy, ex - t->hx);
    float ab = a2 + sg * tb, as = a2 - sg * ts;
    ab += 0.15f * wrap_angle(out - ab);
    as += 0.12f * wrap_angle(out - as);
    vessel_branch(t, g, ex, ey, ab, rb, depth - 1);
    vessel_branch(t, g, ex, ey, as, rs, depth - 1);
}
/* Ribs, column by column: posterior ribs arch up from the spine and curve down
 * at the wall, with a bright cortex; anterior ribs run down and in, fainter. */
static void draw_ribs(const phantom_body *b, float *map, int n) {
    float s = b->hw / 0.36f;
    for (int side = 0; side < 2; side++) {
        float sg = side ? 1.0f : -1.0f;
        for (int k = 0; k < 11; k++) {
            float y0 = b->rib_y0 + k * b->rib_dy * (1.0f + 0.02f * k);
            float h = (0.0105f + 0.0006f * k) * s;
            for (int i = 0; i < n; i++) {
                float x = (i + 0.5f) / n, d = (x - b->cx) * sg;
                if (d < 0.03f) continue;
                float lat = phantom_lateral(b, y0) * 1.04f + 0.01f;
                float dn = d / b->hw;
                if (d > lat + 0.03f) continue;
                float yc = y0 + b->hw * (-0.12f * dn + 0.57f * powf(dn, 1.8f));
                if (dn > 0.85f) yc += b->hw * 2.5f * (dn - 0.85f) * (dn - 0.85f);
                yc += b->tilt * (x - b->cx);
                float hh = h;
                if (b->frac_rib == k && b->frac_side == side) {
                    float fp = b->frac_pos * lat;
                    if (fabsf(d - fp) < 0.006f) continue;   /* the fracture gap */
                    if (d > fp) yc += 0.004f;               /* and its step */
                }
                /* medially they pass behind the spine and the heart: fainter */
                float fade = smoothstep(lat + 0.03f, lat - 0.01f, d) * smoothstep(0.03f, 0.05f, d) *
                             (0.55f + 0.45f * smoothstep(0.05f, 0.16f, d));
                int j0 = (int)floorf((yc - hh) * n - 1), j1 = (int)ceilf((yc + hh) * n + 1);
                for (int j = j0 < 0 ? 0 : j0; j <= j1 && j < n; j++) {
                    float r = fabsf((j + 0.5f) / n - yc) / hh;
                    if (r >= 1.0f) continue;
                    float v = 0.085f * sqrtf(1.0f - r * r) + 0.07f * expf(-(r - 0.85f) * (r - 0.85f) / 0.02f);
                    /* Below the diaphragm the ribs hide in the abdomen's density. */
                    float yj = (j + 0.5f) / n - b->tilt * (x - b->cx);
                    float below = smoothstep(0.0f, 0.04f, yj - phantom_diaphragm(b, side, d));
                    map[(size_t)j * n + i] += v * fade * (1.0f - 0.85f * below);
                }
            }
        }
        for (int k = 0; k < 7; k++) {
            float ya = b->rib_y0 + 0.035f + k * b->rib_dy * 1.08f;
            float h = 0.011f * s;
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
                    map[(size_t)j * n + i] += fade * (0.045f * sqrtf(1.0f - r * r) +
                                                      0.04f * expf(-(r - 0.85f) * (r - 0.85f) / 0.02f));
                }
            }
        }
    }
}


/* The thoracic spine at (dx from the midline, yy): vertebral bodies (a
 * cylinder's chord) with cortical end plates and side walls, disc spaces
 * between them, pedicles as cortical rings at their upper corners, the
 * transverse processes and the spinous process as a faint drop. Its levels
 * follow the posterior ribs, which articulate with them. s: body scale. */
static float spine_density(const phantom_body *b, float dx, float yy, float s) {
    float sw = (0.031f + 0.013f * smoothstep(b->apex_y, b->base_y[0], yy)) * s;
    float u = dx / sw, au = fabsf(u);
    if (au > 1.5f) return 0.0f;
    /* the level k sits at rib_y0 + rib_dy (k + 0.02 k^2), as the ribs do */
    float sdy = (yy - b->rib_y0) / b->rib_dy;
    if (sdy < -5.0f) sdy = -5.0f;
    float t = 25.0f * (sqrtf(1.0f + 0.08f * sdy) - 1.0f) + 0.35f;
    float ph = t - floorf(t);
    float v = 0.0f;
    if (au < 1.0f) {
        float ch = sqrtf(1.0f - u * u);
        float body = smoothstep(0.05f, 0.13f, ph) * smoothstep(0.91f, 0.83f, ph);
        float p0 = ph - 0.11f, p1 = ph - 0.85f;
        /* (the Gaussians only where they are not negligible: expf's underflow path is slow) */
        float plate = 0.45f * ((fabsf(p0) < 0.15f ? expf(-p0 * p0 / 0.0025f) : 0.0f) +
                               (fabsf(p1) < 0.15f ? expf(-p1 * p1 / 0.0025f) : 0.0f));
        float w = au - 0.93f;
        float wall = fabsf(w) < 0.2f ? expf(-w * w / 0.004f) * body : 0.0f;
        v += 0.05f * ch + 0.045f * ch * body + 0.045f * plate * ch + 0.04f * wall;
        /* spinous process, low in the body */
        float su = u / 0.12f, sv = (ph - 0.66f) / 0.18f, sq = su * su + sv * sv;
        if (sq < 1.0f) v += 0.03f * sqrtf(1.0f - sq);
    }
    /* pedicles: oval cortical rings */
    float pu = (au - 0.62f) / 0.20f, pv = (ph - 0.36f) / 0.13f, pq = pu * pu + pv * pv;
    if (pq < 2.5f) {
        float rr = sqrtf(pq) - 1.0f;
        v += 0.05f * expf(-rr * rr / 0.06f) + (pq < 1.0f ? 0.015f : 0.0f);
    }
    /* transverse processes */
    if (au > 0.8f && fabsf(ph - 0.33f) < 0.25f) {
        float tq = ph - 0.33f;
        v += 0.03f * expf(-tq * tq / 0.006f) * smoothstep(1.5f, 1.05f, au);
    }
    return v;
}

/* passes x ([1 2 1] / 4 across, then down) over f [n, n], t [n, n] scratch */
static void blur_binomial(float *f, float *t, int n, int passes) {
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
}

/* A box mean of radius r (edges clamped) of src [n, n] into dst [n, n]
 * through t [n, n]; dst may be src. Running sums, the vertical ones a row at
 * a time: the cost does not grow with r. */
static void box_blur(const float *src, float *t, float *dst, int n, int r) {
    float inv = 1.0f / (2 * r + 1);
    for (int j = 0; j < n; j++) {
        const float *s = src + (size_t)j * n;
        float *o = t + (size_t)j * n;
        float acc = 0.0f;
        for (int k = -r; k <= r; k++) acc += s[k < 0 ? 0 : k >= n ? n - 1 : k];
        for (int i = 0; i < n; i++) {
            o[i] = acc * inv;
            int in = i + r + 1, out = i - r;
            acc += s[in >= n ? n - 1 : in] - s[out < 0 ? 0 : out];
        }
    }
    /* the column sums: on the stack up to 1024 columns (--size's limit) */
    float stackbuf[1024], *acc = n <= 1024 ? stackbuf : xmalloc(sizeof(float) * n);
    for (int i = 0; i < n; i++) acc[i] = 0.0f;
    for (int k = -r; k <= r; k++) {
        const float *row = t + (size_t)(k < 0 ? 0 : k >= n ? n - 1 : k) * n;
        for (int i = 0; i < n; i++) acc[i] += row[i];
    }
    for (int j = 0; j < n; j++) {
        float *o = dst + (size_t)j * n;
        int in = j + r + 1, out = j - r;
        const float *ri = t + (size_t)(in >= n ? n - 1 : in) * n, *ro = t + (size_t)(out < 0 ? 0 : out) * n;
        for (int i = 0; i < n; i++) {
            o[i] = acc[i] * inv;
            acc[i] += ri[i] - ro[i];
        }
    }
    if (acc != stackbuf) free(acc);
}

void phantom_render_body(const phantom_body *b, phantom_maps *m, torch_gen *g, float vessel_gain) {
    int n = m->n;
    float px = 1.0f / n;
    size_t nn = (size_t)n * n;
    memset(m->extra, 0, nn * sizeof(float));
    memset(m->vessel, 0, nn * sizeof(float));
    float carina_y = b->heart_top - 0.01f;
    float base = 0.5f * (b->base_y[0] + b->base_y[1]);
    float s = b->hw / 0.36f;
    /* How the patient looks, drawn from the render stream (so that the case,
     * and its labels, stay what phantom_case_make drew): lung depth, how much
     * of it the heart and mediastinum displace, bone density. */
    float lung_amt = ph_unif(g, 0.56f, 0.66f);
    float fill = ph_unif(g, 0.82f, 0.92f);
    float bone = ph_unif(g, 0.8f, 1.2f);
    /* Lung texture: two octaves of interpolated random grids. */
    enum { TG = 10, TF = 28 };
    float tex[TG + 1][TG + 1], fine[TF + 1][TF + 1];
    for (int a = 0; a <= TG; a++)
        for (int c = 0; c <= TG; c++) tex[a][c] = ph_normal(g, 0, 1);
    for (int a = 0; a <= TF; a++)
        for (int c = 0; c <= TF; c++) fine[a][c] = ph_normal(g, 0, 1);
    /* The aortic knob, the descending aorta and the pulmonary trunk. */
    float knob_y = b->heart_top - 0.045f, knob_x = 1.1f * b->medi_w + 0.004f, knob_r = 0.026f + 0.15f * b->medi_w;
    float pt_x = 0.19f * b->hw, pt_y = b->heart_top + 0.025f;
    for (int j = 0; j < n; j++) {
        float y = (j + 0.5f) * px;
        for (int i = 0; i < n; i++) {
            float x = (i + 0.5f) * px, dx = x - b->cx, yy = y - b->tilt * dx, ad = fabsf(dx);
            size_t o = (size_t)j * n + i;
            /* Torso envelope: neck, shoulders, trunk; the chest wall is
             * rounded, so the soft tissue thins over the last centimetres. */
            float neck = 0.085f, shoulder = b->hw * 1.42f, trunk = b->hw * 1.22f;
            /* the trapezius slopes from the neck to the shoulder, which rounds off */
            float sh = clampf(yy / 0.17f, 0.0f, 1.0f);
            float tw = yy < 0.17f ? neck + (shoulder - neck) * (0.4f * sh + 0.6f * sh * (2.0f - sh))
                                  : shoulder + (trunk - shoulder) * smoothstep(0.17f, 0.42f, yy);
            float q = dx / tw, q2 = q * q;
            if (q2 >= 1.0f) { m->body[o] = m->air[o] = m->tissue[o] = 0.0f; continue; }
            /* the chest is an ellipse in cross-section: the path through it,
             * soft tissue and lung alike, shortens towards the sides */
            float chord = 0.35f * sqrtf(1.0f - q2 * q2) + 0.65f * sqrtf(1.0f - q2);
            float body = b->soft * chord;
            body *= clampf((1.0f - fabsf(q)) * tw / (1.5f * px), 0.0f, 1.0f);
            /* Mediastinum (a column of soft tissue between the lungs, wider
             * at the heart), aortic knob, descending aorta, pulmonary trunk
             * and the heart: each a chord, so thick in the middle and thin
             * at its edges. They displace the lungs in front of and behind
             * them, which is what makes them dense on the film. */
            float mw = yy < b->heart_top ? b->medi_w * (0.8f + 0.4f * smoothstep(b->apex_y, b->heart_top, yy))
                                         : b->medi_w * (1.2f - 0.35f * smoothstep(b->heart_top, base, yy));
            /* on the right the superior vena cava widens it down to the atrium */
            float um = dx > 0.005f ? (dx - 0.005f) / mw
                                   : (dx - 0.005f) / (mw * (1.0f + 0.4f * smoothstep(b->apex_y, b->heart_top + 0.03f, yy)));
            float kx = dx - knob_x, ky = yy - knob_y;
            float ax = (dx - knob_x + 0.004f) / (0.7f * knob_r);
            float tu = (dx - pt_x) / 0.028f, tv = (yy - pt_y) / 0.035f;
            float r2[5] = {um * um, (kx * kx + ky * ky) / (knob_r * knob_r), yy > knob_y ? ax * ax : 9.0f,
                           tu * tu + tv * tv, heart_r2(b, x, y)};
            float lo = minf(minf(minf(r2[0], r2[1]), minf(r2[2], r2[3])), r2[4]);
            float S = 0.0f;
            if (lo < 1.5f) {
                /* one outline: a smooth minimum, so the knob and the trunk
                 * bulge out of the mediastinum instead of sitting on it */
                float sum = 0.0f;
                for (int k = 0; k < 5; k++)
                    if (r2[k] - lo < 2.0f) sum += expf((lo - r2[k]) * (1.0f / 0.25f));
                float r = lo - 0.25f * logf(sum);
                S = r < 1.0f ? sqrtf(1.0f - r) : 0.0f;
            }
            /* Abdomen under the diaphragm: the liver dome a little denser,
             * lower down bowel gas makes it greyer than the soft tissue. */
            int side = dx > 0;
            float dia = phantom_diaphragm(b, side, ad);
            body += 0.02f * smoothstep(dia - 0.01f, dia + 0.03f, yy) - 0.10f * smoothstep(dia + 0.02f, dia + 0.16f, yy);
            if (yy > 0.0f && ad < 0.07f * s) body += 0.85f * bone * spine_density(b, dx, yy, s);
            /* Lungs: air in each cavity, thinner at the rounded lateral wall
             * and at the apex, displaced by the heart and the mediastinum. */
            float cav = phantom_cavity(b, side, x, y, px);
            float air = 0.0f, tis = 0.0f;
            if (cav > 0) {
                float lat = phantom_lateral(b, yy);
                float e = minf(1.0f, ad / lat), e4 = e * e * e * e;
                float depth = (0.55f + 0.45f * sqrtf(1.0f - e4)) * (0.78f + 0.22f * smoothstep(b->apex_y, b->apex_y + 0.2f, yy));
                float keep = 1.0f - fill * S;
                air = lung_amt * cav * depth * keep * chord;
                tis = cav * keep;
                float u0 = clampf((x - 0.1f) * TG / 0.8f, 0, TG - 0.001f), v0 = clampf((y - 0.05f) * TG / 0.85f, 0, TG - 0.001f);
                int a = (int)v0, c = (int)u0;
                float fu = u0 - c, fv = v0 - a;
                float t = (1 - fv) * ((1 - fu) * tex[a][c] + fu * tex[a][c + 1]) + fv * ((1 - fu) * tex[a + 1][c] + fu * tex[a + 1][c + 1]);
                u0 = clampf(x * TF, 0, TF - 0.001f), v0 = clampf(y * TF, 0, TF - 0.001f);
                a = (int)v0, c = (int)u0;
                fu = u0 - c, fv = v0 - a;
                t += 0.6f * ((1 - fv) * ((1 - fu) * fine[a][c] + fu * fine[a][c + 1]) +
                             fv * ((1 - fu) * fine[a + 1][c] + fu * fine[a + 1][c + 1]));
                m->vessel[o] = 0.014f * b->texture * t;
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
            /* Breast shadows over the lower lateral lungs: a dome whose lower
             * margin is sharp and whose upper edge fades out. */
            if (b->breast > 0) {
                float bcy = base - 0.05f;
                float by = (yy - bcy) / 0.13f, bx = (ad - 0.70f * b->hw) / (0.33f * b->hw);
                float bq = bx * bx + by * by;
                if (bq < 1.0f) body += 0.12f * b->breast * sqrtf(1.0f - bq) * smoothstep(bcy - 0.13f, bcy + 0.02f, yy);
            }
            m->body[o] = body;
            m->air[o] = air;
            m->tissue[o] = tis;
        }
    }
    /* Main bronchi. */
    for (int sd = 0; sd < 2; sd++) {
        float sg = sd ? 1.0f : -1.0f;
        float ex = b->cx + sg * 0.07f, ey = carina_y + (sd ? 0.045f : 0.035f);
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
                if (q < 1.0f) air[(size_t)j * n + i] += 0.045f * sqrtf(1.0f - q);
            }
    }
    /* Hila: the pulmonary arteries, then the vessel trees that fan out from
     * them into the lungs. All go into the vessel map, which shows only
     * where lung is: over the mediastinum they fade. The left hilum sits
     * higher. */
    float kv = 20.0f * vessel_gain;
    for (int sd = 0; sd < 2; sd++) {
        float sg = sd ? 1.0f : -1.0f;
        float hx = b->cx + sg * (sd ? 0.37f : 0.40f) * b->hw + ph_normal(g, 0, 0.006f);
        float hy = b->heart_top + (sd ? -0.005f : 0.02f) + ph_normal(g, 0, 0.006f);
        float ux = b->cx + sg * (sd ? 0.43f : 0.45f) * b->hw, uy = hy - 0.045f;  /* upper lobe trunk */
        float lx = b->cx + sg * (sd ? 0.41f : 0.37f) * b->hw, ly = hy + 0.10f;   /* descending (interlobar) */
        /* the main artery from the mediastinum's edge to the hilum */
        float rx = b->cx + 0.5f * (hx - b->cx), ry = hy - (sd ? 0.03f : 0.01f);
        stamp_vessel(m->vessel, n, rx, ry + b->tilt * (rx - b->cx), hx, hy + b->tilt * (hx - b->cx), 0.012f, 0.011f,
                     0.55f * kv);
        float trunk[2][4] = {{hx, hy, ux, uy}, {hx, hy, lx, ly}};
        for (int k = 0; k < 2; k++) {
            trunk[k][1] += b->tilt * (trunk[k][0] - b->cx);
            trunk[k][3] += b->tilt * (trunk[k][2] - b->cx);
            stamp_vessel(m->vessel, n, trunk[k][0], trunk[k][1], trunk[k][2], trunk[k][3], 0.0105f, 0.0085f, 0.55f * kv);
        }
        vessel_ctx t = {b, m->vessel, n, sd, hx, hy + b->tilt * (hx - b->cx), kv * b->texture, 0.0012f};
        /* Segmental trees, fanned out from the apex to the base (direction 0
         * is lateral, negative up): the upper ones leave the upper trunk,
         * the lower ones the descending trunk, the middle ones the hilum.
         * Projected from three dimensions they cross and overlap. */
        enum { NT = 15 };
        for (int k = 0; k < NT; k++) {
            float a = -1.55f + 3.0f * (k + ph_unif(g, 0.0f, 1.0f)) / NT;
            float f = ph_unif(g, 0.3f, 1.0f); /* how far along its trunk it leaves */
            float tx = a < -0.45f ? ux : a > 0.35f ? lx : hx, ty = a < -0.45f ? uy : a > 0.35f ? ly : hy;
            float sx = hx + f * (tx - hx), sy = hy + f * (ty - hy);
            if (tx == hx) sx = hx - sg * ph_unif(g, 0.0f, 0.02f), sy = hy + ph_unif(g, -0.02f, 0.03f);
            sy += b->tilt * (sx - b->cx);
            float ang = sd ? a : PI_F - a;
            float r0 = ph_unif(g, 0.0045f, 0.0068f) * (a > 0.2f ? 1.1f : 0.9f); /* larger at the bases */
            vessel_branch(&t, g, sx, sy, ang, r0, 12);
        }
    }
    /* The vessels lie at every depth of the chest, most of them far from
     * the film: their edges are soft. */
    blur_binomial(m->vessel, m->work0, n, n / 256 < 1 ? 1 : n / 256);
    draw_ribs(b, m->body, n);
    /* Clavicles: an S-curve from the sternal notch out and up; scapulae; humeral heads. */
    for (int sd = 0; sd < 2; sd++) {
        float sg = sd ? 1.0f : -1.0f;
        float y0 = b->apex_y + 0.045f; /* the apices rise above them */
        float pts[5][2] = {{b->cx + sg * 0.035f, y0 + 0.012f},
                           {b->cx + sg * 0.30f * b->hw, y0},
                           {b->cx + sg * 0.60f * b->hw, y0 - 0.018f},
                           {b->cx + sg * 0.85f * b->hw, y0 - 0.032f},
                           {b->cx + sg * 1.05f * b->hw, y0 - 0.055f}};
        for (int k = 0; k < 5; k++) pts[k][1] += b->tilt * (pts[k][0] - b->cx);
        phantom_stamp_polyline(m->body, n, &pts[0][0], 5, 0.015f * s, 0.19f * bone, 0.5f);
        phantom_stamp_ellipse(m->body, n, b->cx + sg * 1.0f * b->hw, b->apex_y + 0.13f, 0.045f, 0.12f, 0.05f);
        phantom_stamp_ellipse(m->body, n, b->cx + sg * 1.32f * b->hw, b->apex_y + 0.03f, 0.06f, 0.065f, 0.09f);
    }
}

void phantom_film(const phantom_body *b, const phantom_maps *m, torch_gen *g, uint8_t *out) {
    int n = m->n;
    size_t nn = (size_t)n * n;
    float *f = m->work0, *t = m->work1;
    /* The heel effect makes the exposure uneven from head to foot (the
     * tube's axis), the patient's position a little from side to side. */
    float gx = ph_normal(g, 0, 0.015f), gy = ph_unif(g, -0.04f, 0.10f);
    /* Unsharp masking with a kernel of 1/64 of the film (about 6 mm). Below
     * 128 pixels that kernel is a pixel or two and the step would only
     * sharpen aliased, sub-pixel vessels: it fades out there. */
    float sharpen = ph_unif(g, 0.35f, 0.6f) * clampf((n - 64) / 128.0f, 0.0f, 1.0f);
    for (int j = 0; j < n; j++)
        for (int i = 0; i < n; i++) {
            size_t o = (size_t)j * n + i;
            float D = m->body[o] - m->air[o] + m->vessel[o] * m->tissue[o] + m->extra[o];
            if (D < 0) D = 0;
            D *= 1.0f + gx * ((i + 0.5f) / n - 0.5f) + gy * ((j + 0.5f) / n - 0.5f);
            float v = 1.0f - expf(-b->gain * D);
            f[o] = (v - b->lo) / (b->hi - b->lo);
        }
    /* Blur: binomial passes, more at larger sizes (the same blur in mm). */
    blur_binomial(f, t, n, n / 256 < 1 ? 1 : n / 256);
    /* Unsharp masking, as digital radiographs are processed: the film plus
     * a part of its difference from a local mean, so that vessels, ribs
     * and the spine behind the heart keep their contrast. */
    if (sharpen > 0) {
        int rad = n / 64 < 1 ? 1 : n / 64;
        box_blur(f, t, m->work2, n, rad);
        box_blur(m->work2, t, m->work2, n, rad);
        for (size_t o = 0; o < nn; o++) f[o] += sharpen * (f[o] - m->work2[o]);
    }
    /* Quantum noise: triangular (two 16-bit uniforms from one word), unit
     * variance; plus the same noise blurred a little, the grain of the
     * detector, which is what makes a film look like one rather than a
     * rendering with dither. Stronger where fewer photons reach the film. */
    float *w1 = m->work2;
    for (size_t o = 0; o < nn; o++) {
        uint32_t w = torch_gen_random(g);
        w1[o] = (((float)(w & 0xffffu) + (float)(w >> 16)) * (1.0f / 65536.0f) - 1.0f) * 2.449f;
    }
    for (int j = 0; j < n; j++) {
        const float *up = w1 + (size_t)(j > 0 ? j - 1 : 0) * n, *mid = w1 + (size_t)j * n,
                    *dn = w1 + (size_t)(j < n - 1 ? j + 1 : n - 1) * n;
        for (int i = 0; i < n; i++) {
            int l = i > 0 ? i - 1 : 0, r = i < n - 1 ? i + 1 : n - 1;
            /* [1 2 1] x [1 2 1] / 16: the grain, standard deviation 0.375; with
             * the white part the noise has a standard deviation of 0.9 */
            float grain = (up[l] + up[r] + dn[l] + dn[r] + 2.0f * (up[i] + dn[i] + mid[l] + mid[r]) + 4.0f * mid[i]) *
                          (1.0f / 16.0f);
            size_t o = (size_t)j * n + i;
            float v = clampf(f[o], 0.0f, 1.0f);
            v += 0.8f * b->noise * (0.6f + 0.8f * (1.0f - v)) * (0.85f * mid[i] + 0.8f * grain);
            v = clampf(v, 0.0f, 1.0f);
            out[o] = (uint8_t)lrintf(v * 255.0f);
        }
    }
}
