/* phantom_report.c — MIMIC-style report text for a phantom case. Each finding
 * has a handful of phrasings for the definite, the hedged and the negated
 * statement; the generator picks among them, orders the sections as
 * radiologists do (tubes, lungs, pleura, heart, bones) and adds the small
 * noise of real reports. One sentence speaks of one finding, so that the
 * consistency tests (and a labeller) can read it sentence by sentence. */
#include "phantom_report.h"
#include "common.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const w_none[] = {NULL};
static const char *const w_ecm[] = {"mediastin", NULL};
static const char *const w_cm[] = {"cardiomegaly", "heart", "cardiac silhouette", NULL};
static const char *const w_lo[] = {"opacit", NULL};
static const char *const w_lesion[] = {"nodule", NULL};
static const char *const w_edema[] = {"edema", NULL};
static const char *const w_cons[] = {"consolidation", NULL};
static const char *const w_pna[] = {"pneumonia", NULL};
static const char *const w_atel[] = {"atelectasis", NULL};
static const char *const w_ptx[] = {"pneumothorax", NULL};
static const char *const w_eff[] = {"effusion", NULL};
static const char *const w_po[] = {"pleural thickening", NULL};
static const char *const w_frac[] = {"fracture", NULL};
static const char *const w_dev[] = {"tube", "catheter", "pacemaker", "ekg", NULL};
const char *const *const phantom_label_words[PL_N] = {w_none, w_ecm, w_cm, w_lo, w_lesion, w_edema, w_cons,
                                                      w_pna, w_atel, w_ptx, w_eff, w_po, w_frac, w_dev};
const char *const phantom_negation_cues[] = {"no ", "without", "normal", NULL};
const char *const phantom_hedge_cues[] = {"possible", "cannot be excluded", "may ", "questionable", "cannot exclude",
                                          NULL};

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_add(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (s->n + (size_t)k + 1 > s->cap) {
        s->cap = (s->n + (size_t)k + 1) * 2;
        s->p = xrealloc(s->p, s->cap);
    }
    va_start(ap, fmt);
    vsnprintf(s->p + s->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    s->n += (size_t)k;
}

/* One sentence: capitalised, ended with a period, separated by a space. */
static void sentence(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sentence(sbuf *s, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    buf[0] = (char)toupper((unsigned char)buf[0]);
    sb_add(s, "%s%s.", s->n ? " " : "", buf);
}

#define PICK(g, ...) pick_str(g, (const char *const[]){__VA_ARGS__, NULL})
static const char *pick_str(torch_gen *g, const char *const *v) {
    int k = 0;
    while (v[k]) k++;
    return v[ph_int(g, k)];
}

static const char *side_word(int side) { return side ? "left" : "right"; }
static const char *size_word(torch_gen *g, int size) {
    return size == 1 ? PICK(g, "small", "small", "trace", "tiny") : size == 2 ? PICK(g, "moderate", "moderate-sized", "moderate")
                                                                           : PICK(g, "large", "large", "sizable");
}
static const char *grade_word(torch_gen *g, int grade) {
    return grade == 1 ? PICK(g, "mild", "mild", "minimal") : grade == 2 ? "moderate" : PICK(g, "severe", "marked");
}
static const char *zone_word(int side, int zone) {
    return zone == 0 ? "upper lobe" : zone == 1 ? (side ? "lingula" : "middle lobe") : "lower lobe";
}

static void say_devices(const phantom_case *c, sbuf *s, torch_gen *g) {
    if (c->devices & (1 << PB_ET_TUBE))
        sentence(s, "%s terminates %d cm above the carina", PICK(g, "endotracheal tube", "the ET tube", "an endotracheal tube"),
                 2 + ph_int(g, 4));
    if (c->devices & (1 << PB_NG_TUBE))
        sentence(s, "%s", PICK(g, "enteric tube courses below the diaphragm with the tip in the stomach",
                               "a nasogastric tube extends into the stomach", "NG tube tip is in the stomach"));
    if (c->devices & (1 << PB_CENTRAL_LINE))
        sentence(s, "%s", PICK(g, "right internal jugular central venous catheter terminates in the SVC",
                               "a right IJ catheter ends at the cavoatrial junction",
                               "right-sided central venous catheter tip projects over the SVC"));
    if (c->devices & (1 << PB_PACEMAKER))
        sentence(s, "%s", PICK(g, "left chest wall pacemaker with a lead terminating in the right ventricle",
                               "a left-sided pacemaker device is in place with its lead in the expected position"));
    if (c->devices & (1 << PB_ECG_LEAD)) sentence(s, "%s", PICK(g, "EKG leads overlie the chest", "external EKG leads are present"));
}

void phantom_report_make(const phantom_case *c, phantom_report *r) {
    torch_gen gen, *g = &gen;
    torch_gen_seed(g, phantom_stream_seed(c->seed, c->index, 1));
    const int *P = c->present, *U = c->uncertain, *N = c->negated;
    sbuf f = {0}, im = {0};
    /* view and comparison */
    if (ph_int(g, 3) == 0)
        sentence(&f, "%s", c->ap ? PICK(g, "AP portable upright view of the chest", "portable semi-erect AP view of the chest")
                                 : PICK(g, "PA and lateral views of the chest provided", "PA and lateral views of the chest"));
    if (ph_int(g, 5) == 0) sentence(&f, "comparison is made to the prior study from ___");
    say_devices(c, &f, g);
    /* lungs */
    int lung_pos = P[PL_CONSOLIDATION] || P[PL_EDEMA] || P[PL_ATELECTASIS] || P[PL_LUNG_LESION] || c->covid ||
                   P[PL_PNEUMOTHORAX] || P[PL_EFFUSION];
    if (!lung_pos && ph_int(g, 2)) sentence(&f, "%s", PICK(g, "the lungs are clear", "lungs are well expanded and clear"));
    if (P[PL_CONSOLIDATION]) {
        const char *sd = side_word(c->cons_side), *z = zone_word(c->cons_side, c->cons_zone);
        if (U[PL_CONSOLIDATION])
            sentence(&f, PICK(g, "patchy %s %s opacity may represent consolidation",
                              "possible consolidation in the %s %s", "consolidation in the %s %s cannot be excluded"),
                     sd, z);
        else
            sentence(&f, PICK(g, "there is %s %s consolidation", "focal consolidation is seen in the %s %s",
                              "patchy opacity with consolidation in the %s %s"),
                     sd, z);
    } else if (N[PL_CONSOLIDATION])
        sentence(&f, "%s", PICK(g, "no focal consolidation", "there is no focal consolidation", "no consolidation is seen"));
    if (c->covid)
        sentence(&f, "%s", PICK(g, "there are bilateral peripheral lower zone opacities, a pattern seen in COVID-19 pneumonia",
                               "patchy peripheral opacities in both lower lungs, compatible with viral pneumonia"));
    if (P[PL_EDEMA]) {
        const char *gw = grade_word(g, c->edema_grade);
        if (U[PL_EDEMA])
            sentence(&f, PICK(g, "possible %s pulmonary edema", "vascular congestion; %s edema cannot be excluded"), gw);
        else
            sentence(&f, PICK(g, "there is %s pulmonary edema", "%s interstitial edema with vascular congestion",
                              "findings are consistent with %s pulmonary edema"),
                     gw);
    } else if (N[PL_EDEMA])
        sentence(&f, "%s", PICK(g, "no pulmonary edema", "there is no pulmonary edema", "no evidence of pulmonary edema"));
    if (P[PL_ATELECTASIS]) {
        const char *sd = side_word(c->atel_side);
        if (U[PL_ATELECTASIS])
            sentence(&f, PICK(g, "possible %s basilar atelectasis", "linear opacity at the %s base may reflect atelectasis"), sd);
        else
            sentence(&f, PICK(g, "%s basilar atelectasis", "plate-like atelectasis at the %s lung base",
                              "there is linear atelectasis in the %s lower lung"),
                     sd);
    }
    for (int k = 0; k < c->n_nodules; k++) {
        int mm = (int)(c->nod_r[k] * 2.0f * 380.0f + 0.5f);
        const char *sd = c->nod_x[k] > c->body.cx ? "left" : "right";
        if (U[PL_LUNG_LESION])
            sentence(&f, PICK(g, "possible %d mm nodule in the %s lung", "a questionable %d mm nodule projects over the %s lung"),
                     mm, sd);
        else
            sentence(&f, PICK(g, "there is a %d mm nodule in the %s lung", "a %d mm pulmonary nodule is seen in the %s mid lung"),
                     mm, sd);
    }
    /* pleura */
    if (P[PL_PNEUMOTHORAX]) {
        const char *sd = side_word(c->ptx_side), *sz = size_word(g, c->ptx_size);
        if (U[PL_PNEUMOTHORAX])
            sentence(&f, PICK(g, "possible %s %s apical pneumothorax", "a %s %s pneumothorax cannot be excluded"), sz, sd);
        else
            sentence(&f, PICK(g, "there is a %s %s pneumothorax", "%s %s apical pneumothorax",
                              "a %s %s pneumothorax is present with a visible pleural line"),
                     sz, sd);
    }
    if (P[PL_EFFUSION]) {
        const char *sz = size_word(g, c->eff_size);
        if (c->eff_side == 3) {
            if (U[PL_EFFUSION])
                sentence(&f, PICK(g, "possible %s bilateral pleural effusions", "%s bilateral effusions cannot be excluded"), sz);
            else
                sentence(&f, PICK(g, "there are %s bilateral pleural effusions", "%s bilateral pleural effusions"), sz);
        } else {
            const char *sd = side_word(c->eff_side == 2);
            if (U[PL_EFFUSION])
                sentence(&f, PICK(g, "blunting of the %2$s costophrenic angle may reflect a %1$s effusion",
                                  "possible %s %s pleural effusion"),
                         sz, sd);
            else
                sentence(&f, PICK(g, "there is a %s %s pleural effusion", "%s %s pleural effusion",
                                  "a %s %s pleural effusion is present"),
                         sz, sd);
        }
    }
    if (P[PL_PLEURAL_OTHER])
        sentence(&f, "%s", U[PL_PLEURAL_OTHER] ? PICK(g, "possible apical pleural thickening", "questionable apical pleural thickening")
                                              : PICK(g, "apical pleural thickening is noted", "there is mild apical pleural thickening"));
    if (N[PL_EFFUSION] && N[PL_PNEUMOTHORAX] && ph_int(g, 2)) {
        /* one sentence may negate two findings; both are absent */
        sentence(&f, "%s", PICK(g, "no pleural effusion or pneumothorax", "there is no pleural effusion or pneumothorax"));
    } else {
        if (N[PL_EFFUSION]) sentence(&f, "%s", PICK(g, "no pleural effusion", "there is no pleural effusion", "no effusion is seen"));
        if (N[PL_PNEUMOTHORAX]) sentence(&f, "%s", PICK(g, "no pneumothorax", "there is no pneumothorax", "no pneumothorax is seen"));
    }
    /* heart and mediastinum */
    if (P[PL_CARDIOMEGALY]) {
        if (U[PL_CARDIOMEGALY])
            sentence(&f, "%s", PICK(g, "the heart may be mildly enlarged", "possible mild cardiomegaly"));
        else
            sentence(&f, "%s", PICK(g, "the heart is enlarged", "moderate cardiomegaly", "the cardiac silhouette is enlarged",
                                   "there is cardiomegaly"));
    } else if (N[PL_CARDIOMEGALY])
        sentence(&f, "%s", PICK(g, "heart size is normal", "the heart size is normal", "no cardiomegaly"));
    if (P[PL_ENLARGED_CM]) {
        if (U[PL_ENLARGED_CM])
            sentence(&f, "%s", PICK(g, "the mediastinum may be mildly widened", "possible mediastinal widening"));
        else
            sentence(&f, "%s", PICK(g, "the mediastinum is widened", "the cardiomediastinal silhouette is enlarged"));
    }
    /* bones and the rest */
    if (P[PL_FRACTURE]) {
        static const char *const ord[] = {"1st", "2nd", "3rd", "4th", "5th", "6th", "7th", "8th", "9th", "10th", "11th"};
        const char *sd = side_word(c->body.frac_side), *o = ord[c->body.frac_rib + 1];
        if (U[PL_FRACTURE])
            sentence(&f, PICK(g, "possible fracture of the %s %s rib", "a %s %s rib fracture cannot be excluded"), sd, o);
        else
            sentence(&f, PICK(g, "there is a fracture of the %s %s posterior rib", "healing fracture of the %s %s rib"), sd, o);
    } else if (N[PL_FRACTURE])
        sentence(&f, "%s", PICK(g, "no displaced rib fracture", "no acute fracture is seen"));
    if (c->foreign)
        sentence(&f, "%s", c->foreign & (1 << PB_BUTTON) ? PICK(g, "a button projects over the chest", "button artifact overlies the lung")
                         : c->foreign & (1 << PB_CLIP) ? PICK(g, "a metallic clip projects over the chest", "clip artifact overlies the lung")
                                                       : PICK(g, "a round metallic density projects over the chest, likely external"));

    /* IMPRESSION: the important positives, or a normal study. */
    int said = 0;
    if (P[PL_PNEUMOTHORAX]) {
        const char *sd = side_word(c->ptx_side);
        sentence(&im, U[PL_PNEUMOTHORAX] ? "possible %s pneumothorax" : "%s pneumothorax", sd);
        said++;
    }
    if (P[PL_PNEUMONIA]) {
        if (U[PL_PNEUMONIA])
            sentence(&im, "%s", PICK(g, "pneumonia cannot be excluded", "possible pneumonia", "findings may represent pneumonia"));
        else
            sentence(&im, "%s", PICK(g, "findings compatible with pneumonia", "pneumonia", "findings concerning for pneumonia"));
        said++;
    }
    if (!P[PL_PNEUMONIA] && N[PL_PNEUMONIA]) {
        sentence(&im, "%s", PICK(g, "no evidence of pneumonia", "no radiographic evidence of pneumonia"));
        said++;
    }
    if (P[PL_EDEMA] && said < 3) {
        sentence(&im, U[PL_EDEMA] ? "possible %s pulmonary edema" : "%s pulmonary edema", grade_word(g, c->edema_grade));
        said++;
    }
    if (P[PL_EFFUSION] && said < 3) {
        const char *sd = c->eff_side == 3 ? "bilateral" : side_word(c->eff_side == 2);
        sentence(&im, U[PL_EFFUSION] ? "possible %s pleural effusion" : "%s pleural effusion", sd);
        said++;
    }
    if (P[PL_CARDIOMEGALY] && said < 3) {
        sentence(&im, "%s", U[PL_CARDIOMEGALY] ? "possible mild cardiomegaly" : "cardiomegaly");
        said++;
    }
    if (!said || (said == 1 && N[PL_PNEUMONIA] && !P[PL_PNEUMONIA])) {
        int path = 0;
        for (int l = PL_ENLARGED_CM; l < PL_SUPPORT_DEVICES; l++) path |= P[l];
        if (!path)
            sentence(&im, "%s", PICK(g, "no acute cardiopulmonary process", "no acute intrathoracic process",
                                    "normal chest radiograph"));
        else
            sentence(&im, "%s", PICK(g, "see findings above", "as above"));
    }
    /* noise: a doubled space now and then, as dictation leaves it */
    if (ph_int(g, 10) == 0 && f.n) {
        char *sp = strchr(f.p, ' ');
        if (sp) {
            size_t at = (size_t)(sp - f.p);
            sb_add(&f, " ");
            memmove(f.p + at + 1, f.p + at, f.n - at - 1);
            f.p[at] = ' ';
        }
    }
    if (!f.p) sb_add(&f, "%s", "");
    r->findings = f.p;
    r->impression = im.p;
}

void phantom_report_free(phantom_report *r) {
    free(r->findings);
    free(r->impression);
    r->findings = r->impression = NULL;
}
