/* phantom_findings.c — what is wrong with a phantom patient, and how it shows:
 * findings drawn with CheXpert-like prevalence and co-occurrence, then painted
 * into the anatomy's maps the way they look on a film (a blunted angle and a
 * meniscus, a pleural line with no markings beyond it, patchy air-space
 * opacity, a wide heart, perihilar haze), with masks and boxes kept as data. */
#include "phantom_findings.h"
#include "common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const phantom_label_names[PL_N] = {
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices"};

const char *const phantom_prev_names[PP_N] = {
    "cardiomegaly", "effusion", "pneumothorax", "edema", "consolidation", "pneumonia", "atelectasis",
    "nodule", "devices", "foreign", "fracture", "pleural-other", "enlarged-cm", "covid"};

/* Roughly CheXpert's training-set positive rates, a little lower where its
 * labeller over-calls (opacity, devices), so that normal studies exist. */
const float phantom_prev_default[PP_N] = {0.14f, 0.28f, 0.12f, 0.16f, 0.07f, 0.04f, 0.14f,
                                          0.05f, 0.35f, 0.10f, 0.03f, 0.02f, 0.05f, 0.04f};

const char *const phantom_box_names[PB_N] = {"consolidation", "nodule", "et_tube", "ng_tube", "central_line",
                                             "pacemaker", "ecg_lead", "button", "clip", "coin"};

void phantom_prev_parse(float prev[PP_N], const char *spec) {
    char *s = xstrdup(spec), *save = NULL;
    for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) die_usage("--prevalence: '%s' is not NAME=P", tok);
        *eq = 0;
        int k = -1;
        for (int i = 0; i < PP_N; i++)
            if (!strcmp(tok, phantom_prev_names[i])) k = i;
        if (k < 0) {
            char list[512] = "";
            for (int i = 0; i < PP_N; i++) {
                strcat(list, i ? ", " : "");
                strcat(list, phantom_prev_names[i]);
            }
            die_usage("--prevalence: unknown finding '%s' (one of: %s)", tok, list);
        }
        prev[k] = (float)parse_double("--prevalence", eq + 1, 0.0, 1.0);
    }
    free(s);
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t phantom_stream_seed(uint64_t seed, long index, int stream) {
    /* torch_gen keeps the low 32 bits; fold the high half in so that all of
     * the 64-bit hash counts. */
    uint64_t h = splitmix64(seed ^ splitmix64((uint64_t)index * 8u + (uint64_t)stream));
    return (h ^ (h >> 32)) & 0xffffffffu;
}

static float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }
static float smoothstep(float e0, float e1, float x) {
    float t = clampf((x - e0) / (e1 - e0), 0.0f, 1.0f);
    return t * t * (3.0f - 2.0f * t);
}
static int bern(torch_gen *g, float p) { return ph_unif(g, 0, 1) < clampf(p, 0, 1); }

void phantom_case_make(phantom_case *c, uint64_t seed, long index, int n, const float prev[PP_N]) {
    memset(c, 0, sizeof *c);
    c->seed = seed;
    c->index = index;
    c->size = n;
    torch_gen g;
    torch_gen_seed(&g, phantom_stream_seed(seed, index, 0));
    c->sex = ph_int(&g, 2);
    c->age = (int)clampf(ph_normal(&g, 60, 17), 18, 95);
    phantom_body_draw(&c->body, &g, c->sex);
    phantom_body *b = &c->body;
    int *P = c->present;
    /* Co-occurrence as in a hospital population: failure brings a big heart,
     * oedema and effusions together; lines and tubes come with the sick. */
    P[PL_CARDIOMEGALY] = bern(&g, prev[PP_CARDIOMEGALY]);
    P[PL_ENLARGED_CM] = bern(&g, prev[PP_ENLARGED_CM] * (P[PL_CARDIOMEGALY] ? 2.5f : 1.0f));
    P[PL_EDEMA] = bern(&g, prev[PP_EDEMA] * (P[PL_CARDIOMEGALY] ? 2.2f : 0.8f));
    P[PL_EFFUSION] = bern(&g, prev[PP_EFFUSION] * (P[PL_CARDIOMEGALY] || P[PL_EDEMA] ? 1.7f : 0.8f));
    P[PL_PNEUMOTHORAX] = bern(&g, prev[PP_PNEUMOTHORAX]);
    P[PL_PNEUMONIA] = bern(&g, prev[PP_PNEUMONIA]);
    P[PL_CONSOLIDATION] = P[PL_PNEUMONIA] || bern(&g, prev[PP_CONSOLIDATION]);
    P[PL_ATELECTASIS] = bern(&g, prev[PP_ATELECTASIS] * (P[PL_EFFUSION] ? 1.5f : 0.9f));
    c->covid = bern(&g, prev[PP_COVID]);
    int nodule = bern(&g, prev[PP_NODULE]);
    P[PL_LUNG_LESION] = nodule;
    P[PL_FRACTURE] = bern(&g, prev[PP_FRACTURE]);
    P[PL_PLEURAL_OTHER] = bern(&g, prev[PP_PLEURAL_OTHER]);
    int sick = P[PL_EDEMA] || P[PL_PNEUMOTHORAX] || P[PL_CONSOLIDATION];
    if (bern(&g, prev[PP_DEVICES] * (sick ? 1.5f : 0.8f))) {
        int k = 1 + ph_int(&g, 3);
        for (int i = 0; i < k; i++) c->devices |= 1 << (PB_ET_TUBE + ph_int(&g, 5));
    }
    if (bern(&g, prev[PP_FOREIGN])) c->foreign = 1 << (PB_BUTTON + ph_int(&g, 3));
    P[PL_SUPPORT_DEVICES] = c->devices != 0;
    if (c->covid) P[PL_PNEUMONIA] = 1;
    P[PL_LUNG_OPACITY] = P[PL_EDEMA] || P[PL_CONSOLIDATION] || P[PL_ATELECTASIS] || P[PL_LUNG_LESION] || c->covid;
    int any = 0;
    for (int l = PL_ENLARGED_CM; l < PL_SUPPORT_DEVICES; l++) any |= P[l];
    P[PL_NO_FINDING] = !any;
    c->ap = bern(&g, sick || c->devices ? 0.7f : 0.2f);

    /* Where and how much. */
    if (P[PL_CARDIOMEGALY]) b->heart_w = 2.0f * b->hw * clampf(ph_normal(&g, 0.555f, 0.035f), 0.50f, 0.68f);
    if (P[PL_ENLARGED_CM]) b->medi_w *= ph_unif(&g, 1.5f, 1.9f);
    if (P[PL_EFFUSION]) {
        c->eff_side = P[PL_EDEMA] && bern(&g, 0.6f) ? 3 : 1 + ph_int(&g, 3);
        c->eff_size = 1 + ph_int(&g, 3);
    }
    if (P[PL_PNEUMOTHORAX]) {
        c->ptx_side = ph_int(&g, 2);
        c->ptx_size = 1 + ph_int(&g, 3);
    }
    if (P[PL_CONSOLIDATION]) {
        c->cons_side = ph_int(&g, 2);
        c->cons_zone = ph_int(&g, 3);
    }
    if (P[PL_ATELECTASIS]) {
        c->atel_side = ph_int(&g, 2);
        b->dome_y[c->atel_side] -= 0.02f; /* volume loss lifts the hemidiaphragm */
        b->base_y[c->atel_side] -= 0.02f;
    }
    if (P[PL_EDEMA]) c->edema_grade = 1 + ph_int(&g, 3);
    if (nodule) {
        c->n_nodules = 1 + bern(&g, 0.3f);
        for (int k = 0; k < c->n_nodules; k++) {
            int side = ph_int(&g, 2);
            float y = b->apex_y + ph_unif(&g, 0.15f, 0.7f) * (b->base_y[side] - b->apex_y);
            float d = phantom_lateral(b, y) * ph_unif(&g, 0.45f, 0.85f);
            c->nod_x[k] = b->cx + (side ? d : -d);
            c->nod_y[k] = y + b->tilt * (c->nod_x[k] - b->cx);
            c->nod_r[k] = ph_unif(&g, 0.010f, 0.028f);
        }
    }
    if (P[PL_FRACTURE]) {
        b->frac_rib = 3 + ph_int(&g, 5);
        b->frac_side = ph_int(&g, 2);
        b->frac_pos = ph_unif(&g, 0.65f, 0.9f);
    }
    /* What the report will say: hedged positives (CheXpert -1) and explicit
     * negatives (0); the rest of the absent findings go unmentioned (blank). */
    for (int l = PL_ENLARGED_CM; l < PL_SUPPORT_DEVICES; l++) {
        if (P[l]) {
            float pu = l == PL_PNEUMONIA ? 0.45f : l == PL_LUNG_OPACITY ? 0.0f : 0.12f;
            c->uncertain[l] = bern(&g, pu);
        } else {
            float pn = l == PL_PNEUMOTHORAX || l == PL_EFFUSION ? 0.75f
                     : l == PL_CARDIOMEGALY || l == PL_EDEMA || l == PL_CONSOLIDATION ? 0.55f
                     : l == PL_PNEUMONIA ? 0.3f : l == PL_FRACTURE ? 0.15f : 0.0f;
            c->negated[l] = bern(&g, pn);
        }
    }
    /* The COVID-19 pattern is named outright: its pneumonia is not hedged. */
    if (c->covid) c->uncertain[PL_PNEUMONIA] = 0;
    /* A hedged consolidation makes its parent opacity hedged only if nothing
     * else is certain. */
    if (P[PL_LUNG_OPACITY]) {
        int certain = 0;
        for (int l = PL_LUNG_LESION; l <= PL_ATELECTASIS; l++)
            if (P[l] && !c->uncertain[l] && l != PL_PNEUMONIA) certain = 1;
        if (c->covid) certain = 1;
        c->uncertain[PL_LUNG_OPACITY] = !certain;
    }
}

int phantom_chexpert_value(const phantom_case *c, int l) {
    if (c->present[l]) return c->uncertain[l] ? -1 : 1;
    return c->negated[l] ? 0 : 2;
}

int phantom_covidx_class(const phantom_case *c) {
    if (c->covid) return 2;
    if (c->present[PL_PNEUMONIA]) return 1;
    return 0;
}

/* ---- painting ------------------------------------------------------------- */

static void box_add(phantom_case *c, int kind, int ellipse, float x0, float y0, float x1, float y1) {
    if (c->n_boxes >= PHANTOM_MAX_BOXES) return;
    int n = c->size;
    phantom_box *bx = &c->box[c->n_boxes];
    bx->kind = kind;
    bx->ellipse = ellipse;
    bx->x0 = (int)clampf(floorf(x0 * n), 0, n - 1);
    bx->y0 = (int)clampf(floorf(y0 * n), 0, n - 1);
    bx->x1 = (int)clampf(ceilf(x1 * n), bx->x0 + 1, n);
    bx->y1 = (int)clampf(ceilf(y1 * n), bx->y0 + 1, n);
    c->n_boxes++;
}

static void box_polyline(phantom_case *c, int kind, const float *xy, int k, float r) {
    float x0 = 1, y0 = 1, x1 = 0, y1 = 0;
    for (int p = 0; p < k; p++) {
        x0 = fminf(x0, xy[2 * p]); x1 = fmaxf(x1, xy[2 * p]);
        y0 = fminf(y0, xy[2 * p + 1]); y1 = fmaxf(y1, xy[2 * p + 1]);
    }
    box_add(c, kind, 0, x0 - r, y0 - r, x1 + r, y1 + r);
}

static void paint_effusion(const phantom_case *c, phantom_maps *m, int side) {
    const phantom_body *b = &c->body;
    int n = m->n;
    float px = 1.0f / n;
    float dome = b->dome_y[side], base = b->base_y[side];
    float level = c->eff_size == 1 ? base - 0.035f : c->eff_size == 2 ? dome - 0.05f : dome - 0.20f;
    float rise = 0.03f + 0.025f * c->eff_size;
    for (int j = 0; j < n; j++) {
        float y = (j + 0.5f) * px;
        if (y < level - rise - 0.05f) continue;
        for (int i = 0; i < n; i++) {
            float x = (i + 0.5f) * px;
            float cav = phantom_cavity(b, side, x, y, px);
            if (cav <= 0) continue;
            float d = fabsf(x - b->cx), yy = y - b->tilt * (x - b->cx);
            float lat = phantom_lateral(b, yy);
            float e = d / lat;
            float ym = level - rise * e * e * e; /* the meniscus climbs the lateral wall */
            float f = smoothstep(ym - 0.004f, ym + 0.035f, yy) * cav;
            if (f <= 0) continue;
            size_t o = (size_t)j * n + i;
            m->extra[o] += 0.10f * f;
            m->air[o] *= 1.0f - 0.9f * f;
            m->tissue[o] *= 1.0f - f;
        }
    }
}

static void paint_pneumothorax(const phantom_case *c, phantom_maps *m, uint8_t *mask) {
    const phantom_body *b = &c->body;
    int n = m->n, side = c->ptx_side;
    float px = 1.0f / n;
    float dep = (c->ptx_size == 1 ? 0.10f : c->ptx_size == 2 ? 0.20f : 0.34f) * b->hw;
    float base = b->base_y[side];
    for (int j = 0; j < n; j++) {
        float y = (j + 0.5f) * px;
        for (int i = 0; i < n; i++) {
            float x = (i + 0.5f) * px;
            float cav = phantom_cavity(b, side, x, y, px);
            if (cav <= 0.5f) continue;
            float d = fabsf(x - b->cx), yy = y - b->tilt * (x - b->cx);
            float t = clampf((yy - b->apex_y) / (base - b->apex_y), 0, 1);
            /* The lung falls away from the apex and the lateral wall; less at the base. */
            float depth = dep * (1.0f - 0.75f * t);
            float edge = phantom_lateral(b, yy) - depth;
            float top = phantom_lung_top(b, d) + 0.8f * dep;
            float inside = fminf(edge - d, yy - top); /* > 0: collapsed lung */
            size_t o = (size_t)j * n + i;
            if (inside < 0) {
                m->tissue[o] = 0.0f;        /* no lung markings beyond the pleural line */
                m->air[o] += 0.21f * cav;   /* and more air: hyperlucent */
                if (mask) mask[o] = 1;
            } else if (inside < 1.6f * px) {
                m->extra[o] += 0.07f;       /* the visceral pleural line */
            }
        }
    }
}

/* Patchy air-space opacity: a cluster of blobs, masked to one lung. */
static void paint_consolidation(phantom_case *c, phantom_maps *m, torch_gen *g, uint8_t *mask) {
    const phantom_body *b = &c->body;
    int n = m->n, side = c->cons_side;
    float px = 1.0f / n;
    float base = b->base_y[side];
    float t = c->cons_zone == 0 ? 0.25f : c->cons_zone == 1 ? 0.55f : 0.82f;
    float yc = b->apex_y + t * (base - b->apex_y);
    float dc = phantom_lateral(b, yc) * (c->cons_zone == 1 ? 0.5f : 0.62f);
    float xc = b->cx + (side ? dc : -dc);
    yc += b->tilt * (xc - b->cx);
    enum { NB = 9 };
    float bx[NB], by[NB], bs[NB], bw[NB];
    for (int k = 0; k < NB; k++) {
        bx[k] = xc + ph_normal(g, 0, 0.035f);
        by[k] = yc + ph_normal(g, 0, 0.03f);
        bs[k] = ph_unif(g, 0.015f, 0.04f);
        bw[k] = ph_unif(g, 0.5f, 1.0f);
    }
    int x0 = n, y0 = n, x1 = -1, y1 = -1;
    for (int j = 0; j < n; j++) {
        float y = (j + 0.5f) * px;
        if (fabsf(y - yc) > 0.22f) continue;
        for (int i = 0; i < n; i++) {
            float x = (i + 0.5f) * px;
            if (fabsf(x - xc) > 0.22f) continue;
            float o_ = 0;
            for (int k = 0; k < NB; k++) {
                float dx = x - bx[k], dy = y - by[k];
                o_ += bw[k] * expf(-(dx * dx + dy * dy) / (2 * bs[k] * bs[k]));
            }
            o_ = clampf(o_, 0, 1);
            size_t o = (size_t)j * n + i;
            float lung = m->tissue[o];
            float op = o_ * lung;
            if (op < 0.01f) continue;
            m->extra[o] += 0.10f * op;
            m->air[o] *= 1.0f - 0.55f * op;
            if (op > 0.4f) {
                if (mask) mask[o] = 1;
                if (i < x0) x0 = i;
                if (i > x1) x1 = i;
                if (j < y0) y0 = j;
                if (j > y1) y1 = j;
            }
        }
    }
    if (x1 >= 0) box_add(c, PB_CONSOLIDATION, 0, (float)x0 / n, (float)y0 / n, (float)(x1 + 1) / n, (float)(y1 + 1) / n);
}

/* Oedema: perihilar haze in both lungs (the bat wing), Kerley B lines. */
static void paint_edema(const phantom_case *c, phantom_maps *m, torch_gen *g) {
    const phantom_body *b = &c->body;
    int n = m->n;
    float px = 1.0f / n;
    float hy = b->heart_top + 0.06f;
    float amp = 0.04f * c->edema_grade;
    for (int j = 0; j < n; j++) {
        float y = (j + 0.5f) * px;
        for (int i = 0; i < n; i++) {
            size_t o = (size_t)j * n + i;
            if (m->tissue[o] <= 0) continue;
            float x = (i + 0.5f) * px, d = fabsf(x - b->cx);
            float u = (d - 0.5f * b->heart_w * 0.7f) / (0.16f + 0.03f * c->edema_grade), v = (y - hy) / 0.2f;
            float h = expf(-(u * u + v * v)) * m->tissue[o];
            m->extra[o] += amp * h;
            m->air[o] *= 1.0f - 0.5f * amp * h / 0.12f;
        }
    }
    if (c->edema_grade >= 2)
        for (int s = 0; s < 2; s++) {
            float sg = s ? 1.0f : -1.0f;
            for (int k = 0; k < 5; k++) {
                float y = b->base_y[s] - 0.03f - k * 0.012f - ph_unif(g, 0, 0.006f);
                float lat = phantom_lateral(b, y) + ph_unif(g, -0.006f, 0.0f);
                float x1 = b->cx + sg * lat, x0 = x1 - sg * ph_unif(g, 0.015f, 0.025f);
                y += b->tilt * (x1 - b->cx);
                phantom_stamp_segment(m->extra, n, x0, y, x1, y, 0.0025f, 0.05f, 0);
            }
        }
}

static void paint_covid(const phantom_case *c, phantom_maps *m, torch_gen *g) {
    const phantom_body *b = &c->body;
    int n = m->n;
    float px = 1.0f / n;
    float ph = ph_unif(g, 0, 6.28f);
    for (int j = 0; j < n; j++) {
        float y = (j + 0.5f) * px;
        float t = clampf((y - b->apex_y) / (b->base_y[0] - b->apex_y), 0, 1);
        for (int i = 0; i < n; i++) {
            size_t o = (size_t)j * n + i;
            if (m->tissue[o] <= 0) continue;
            float x = (i + 0.5f) * px, d = fabsf(x - b->cx);
            float per = expf(-powf((phantom_lateral(b, y) - d) / 0.07f, 2.0f));
            float patchy = 0.6f + 0.4f * sinf(40.0f * x + ph) * sinf(33.0f * y + 1.3f * ph);
            float h = per * smoothstep(0.35f, 0.7f, t) * patchy * m->tissue[o];
            m->extra[o] += 0.06f * h;
            m->air[o] *= 1.0f - 0.35f * h;
        }
    }
}

static void paint_atelectasis(const phantom_case *c, phantom_maps *m, torch_gen *g) {
    const phantom_body *b = &c->body;
    int s = c->atel_side;
    float sg = s ? 1.0f : -1.0f;
    float y = b->dome_y[s] - ph_unif(g, 0.03f, 0.07f);
    float lat = phantom_lateral(b, y);
    float x0 = b->cx + sg * lat * 0.35f, x1 = b->cx + sg * lat * 0.85f;
    float y0 = y + b->tilt * (x0 - b->cx), y1 = y - ph_unif(g, 0.0f, 0.03f) + b->tilt * (x1 - b->cx);
    phantom_stamp_segment(m->extra, m->n, x0, y0, x1, y1, ph_unif(g, 0.006f, 0.011f), 0.12f, 0);
}

static void paint_pleural_other(const phantom_case *c, phantom_maps *m, torch_gen *g) {
    const phantom_body *b = &c->body;
    int n = m->n, side = ph_int(g, 2);
    float px = 1.0f / n;
    for (int j = 0; j < n; j++) {
        float y = (j + 0.5f) * px;
        for (int i = 0; i < n; i++) {
            float x = (i + 0.5f) * px;
            float cav = phantom_cavity(b, side, x, y, px);
            if (cav <= 0) continue;
            float d = fabsf(x - b->cx), yy = y - b->tilt * (x - b->cx);
            float dt = yy - phantom_lung_top(b, d);
            if (dt < 0.018f) m->extra[(size_t)j * n + i] += 0.10f * cav * (1.0f - dt / 0.018f);
        }
    }
}

static void paint_devices(phantom_case *c, phantom_maps *m, torch_gen *g) {
    const phantom_body *b = &c->body;
    int n = m->n;
    float cx = b->cx, car = b->heart_top - 0.01f;
#define TILT(p, k) for (int q_ = 0; q_ < (k); q_++) (p)[2 * q_ + 1] += b->tilt * ((p)[2 * q_] - cx)
    if (c->devices & (1 << PB_ET_TUBE)) {
        float p[] = {cx + 0.002f, 0.0f, cx + 0.004f, 0.5f * car, cx + 0.006f, car - ph_unif(g, 0.03f, 0.07f)};
        TILT(p, 3);
        phantom_stamp_polyline(m->extra, n, p, 3, 0.0060f, 0.30f, 1.0f);
        box_polyline(c, PB_ET_TUBE, p, 3, 0.0065f);
    }
    if (c->devices & (1 << PB_NG_TUBE)) {
        float dy = b->dome_y[1];
        float p[] = {cx - 0.012f, 0.0f, cx - 0.004f, car, cx + 0.02f, dy + 0.01f, cx + 0.11f, dy + 0.07f,
                     cx + 0.07f, dy + 0.11f};
        TILT(p, 5);
        phantom_stamp_polyline(m->extra, n, p, 5, 0.0035f, 0.40f, 0.5f);
        box_polyline(c, PB_NG_TUBE, p, 5, 0.004f);
    }
    if (c->devices & (1 << PB_CENTRAL_LINE)) {
        float p[] = {cx - 0.13f, 0.02f, cx - 0.07f, b->apex_y + 0.06f, cx - 0.035f, car - 0.02f,
                     cx - 0.03f, car + ph_unif(g, 0.02f, 0.06f)};
        TILT(p, 4);
        phantom_stamp_polyline(m->extra, n, p, 4, 0.003f, 0.45f, 0.3f);
        box_polyline(c, PB_CENTRAL_LINE, p, 4, 0.003f);
    }
    if (c->devices & (1 << PB_PACEMAKER)) {
        float gx = cx + 0.75f * b->hw, gy = b->apex_y + 0.06f + b->tilt * 0.75f * b->hw;
        float lead[] = {gx - 0.02f, gy, cx + 0.05f, b->apex_y + 0.05f, cx - 0.005f, car + 0.02f,
                        cx + 0.02f, car + 0.13f};
        TILT(lead + 2, 3);
        phantom_stamp_polyline(m->extra, n, lead, 4, 0.0025f, 0.35f, 0);
        /* the generator: a rounded can, metal-dense */
        phantom_stamp_ellipse(m->extra, n, gx, gy, 0.035f, 0.026f, 3.0f);
        box_add(c, PB_PACEMAKER, 0, gx - 0.035f, gy - 0.026f, gx + 0.035f, gy + 0.026f);
    }
    if (c->devices & (1 << PB_ECG_LEAD)) {
        int k = 2 + ph_int(g, 3);
        for (int i = 0; i < k; i++) {
            float x = cx + ph_unif(g, -1.1f, 1.1f) * b->hw, y = ph_unif(g, 0.08f, 0.35f);
            float r = 0.011f;
            phantom_stamp_ellipse(m->extra, n, x, y, r, r, 0.8f);
            phantom_stamp_ellipse(m->extra, n, x, y, 0.55f * r, 0.55f * r, -0.5f);
            float w[] = {x, y, x + ph_unif(g, -0.1f, 0.1f), y - 0.06f, x + ph_unif(g, -0.15f, 0.15f), 0.0f};
            phantom_stamp_polyline(m->extra, n, w, 3, 0.0018f, 0.25f, 0);
            box_add(c, PB_ECG_LEAD, 1, x - r, y - r, x + r, y + r);
        }
    }
    if (c->foreign) {
        /* Inside the lung fields, where Object-CXR annotates them. */
        int side = ph_int(g, 2);
        float y = b->apex_y + ph_unif(g, 0.15f, 0.75f) * (b->base_y[side] - b->apex_y);
        float d = phantom_lateral(b, y) * ph_unif(g, 0.3f, 0.85f);
        float x = cx + (side ? d : -d);
        y += b->tilt * (x - cx);
        if (c->foreign & (1 << PB_BUTTON)) {
            float r = ph_unif(g, 0.010f, 0.016f);
            phantom_stamp_ellipse(m->extra, n, x, y, r, r, 0.6f);
            for (int h = 0; h < 4; h++)
                phantom_stamp_ellipse(m->extra, n, x + 0.35f * r * (h & 1 ? 1 : -1), y + 0.35f * r * (h & 2 ? 1 : -1),
                                      0.15f * r, 0.15f * r, -0.5f);
            box_add(c, PB_BUTTON, 1, x - r, y - r, x + r, y + r);
        } else if (c->foreign & (1 << PB_CLIP)) {
            float w = ph_unif(g, 0.012f, 0.02f), h = 0.004f;
            float p[] = {x - w, y - h, x + w, y + h};
            phantom_stamp_polyline(m->extra, n, p, 2, 0.003f, 1.5f, 0);
            box_add(c, PB_CLIP, 0, x - w - 0.003f, y - h - 0.003f, x + w + 0.003f, y + h + 0.003f);
        } else {
            float r = ph_unif(g, 0.016f, 0.024f);
            phantom_stamp_ellipse(m->extra, n, x, y, r, r, 2.5f);
            box_add(c, PB_COIN, 1, x - r, y - r, x + r, y + r);
        }
    }
#undef TILT
}

void phantom_case_render(phantom_case *c, uint8_t *film, uint8_t *ptx_mask, uint8_t *cons_mask) {
    phantom_maps m;
    phantom_maps_init(&m, c->size);
    phantom_case_render_ws(c, &m, film, ptx_mask, cons_mask);
    phantom_maps_free(&m);
}

void phantom_case_render_ws(phantom_case *c, phantom_maps *ws, uint8_t *film, uint8_t *ptx_mask, uint8_t *cons_mask) {
    int n = c->size;
    CHECKF(ws->n == n, "phantom_case_render_ws: maps of %d pixels for a case of %d", ws->n, n);
    torch_gen g;
    torch_gen_seed(&g, phantom_stream_seed(c->seed, c->index, 2));
    phantom_maps m = *ws;
    phantom_render_body(&c->body, &m, &g, c->present[PL_EDEMA] ? 1.25f + 0.2f * c->edema_grade : 1.0f);
    c->n_boxes = 0;
    if (ptx_mask) memset(ptx_mask, 0, (size_t)n * n);
    if (cons_mask) memset(cons_mask, 0, (size_t)n * n);
    if (c->present[PL_EDEMA]) paint_edema(c, &m, &g);
    if (c->covid) paint_covid(c, &m, &g);
    if (c->present[PL_CONSOLIDATION]) paint_consolidation(c, &m, &g, cons_mask);
    if (c->present[PL_ATELECTASIS]) paint_atelectasis(c, &m, &g);
    for (int k = 0; k < c->n_nodules; k++) {
        phantom_stamp_ellipse(m.extra, n, c->nod_x[k], c->nod_y[k], c->nod_r[k], c->nod_r[k], 0.16f);
        float r = c->nod_r[k] + 0.004f;
        box_add(c, PB_NODULE, 1, c->nod_x[k] - r, c->nod_y[k] - r, c->nod_x[k] + r, c->nod_y[k] + r);
    }
    if (c->present[PL_PNEUMOTHORAX]) paint_pneumothorax(c, &m, ptx_mask);
    if (c->present[PL_EFFUSION]) {
        if (c->eff_side & 1) paint_effusion(c, &m, 0);
        if (c->eff_side & 2) paint_effusion(c, &m, 1);
    }
    if (c->present[PL_PLEURAL_OTHER]) paint_pleural_other(c, &m, &g);
    paint_devices(c, &m, &g);
    c->has_ptx_mask = c->present[PL_PNEUMOTHORAX];
    c->has_cons_mask = c->present[PL_CONSOLIDATION];
    phantom_film(&c->body, &m, &g, film);
}
