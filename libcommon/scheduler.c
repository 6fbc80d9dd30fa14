/* scheduler.c — PNDM (PLMS), DDIM, Euler, Euler ancestral and DPM-Solver++
 * multistep as diffusers 0.42 computes them (scheduling_*.py), including
 * where torch works in float32: betas, alphas_cumprod (cumprod accumulates in
 * double, as torch's CPU cumprod does), the sigma tables and every scalar
 * coefficient of a step are float32 values; numpy's float64 parts (linspace,
 * arange, round half to even, interp) are done in double as numpy does them.
 * Element-wise updates keep torch's order of operations. */
#include "scheduler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "json.h"

enum { SPACING_LEADING, SPACING_TRAILING, SPACING_LINSPACE };

struct scheduler {
    sched_kind kind;
    int T;                        /* num_train_timesteps */
    int v_pred;                   /* prediction_type v_prediction (else epsilon) */
    int spacing;
    long steps_offset;
    int skip_prk_steps;           /* PNDM: 0 = 12 Runge-Kutta calls first (diffusers' default) */
    int n_prk;                    /* PNDM: Runge-Kutta calls at the start of the schedule (0 or 12) */
    int clip_sample;              /* DDIM */
    float clip_sample_range;
    int final_sigma_min;          /* Euler, DPM: final_sigmas_type "sigma_min" (else "zero") */
    int solver_order;             /* DPM: 1 or 2 */
    int solver_heun;              /* DPM: solver_type "heun" (else "midpoint") */
    int lower_order_final, euler_at_final;
    int karras;                   /* Euler, DPM: use_karras_sigmas */
    double karras_min, karras_max; /* sigma_min / sigma_max from the file, or NAN (the schedule's) */
    float *alphas_cumprod;        /* [T] */
    float final_alpha_cumprod;    /* PNDM, DDIM */
    float *train_sigmas;          /* [T] ((1 - ac) / ac) ** 0.5, Euler / DPM */
    /* after sched_set_timesteps */
    int steps;                    /* num_inference_steps as set_timesteps received it */
    int ncalls;                   /* len(scheduler.timesteps) */
    float *timesteps;             /* [ncalls] */
    float *sigmas;                /* [ncalls + 1] Euler / DPM */
    float init_noise_sigma;
    int begin_index;              /* step index of the first call (Euler, DPM: index_for_timestep) */
};

struct sched_state {
    int calls;                    /* sched_step calls made */
    int step_index;               /* Euler / DPM _step_index */
    int64_t n;                    /* elements per sample (fixed on first use) */
    /* PNDM: ets (newest last), cur_sample */
    float *ets[4];
    int nets;
    float *cur_sample;
    float *cur_mo;                /* PRK: the running 1/6, 1/3, 1/3 sum (cur_model_output) */
    int counter;
    /* DPM: model_outputs (x0 predictions, [1] newest), lower_order_nums */
    float *mo[2];
    int lower_order_nums;
};

static const char *const kind_names[] = {"pndm", "ddim", "euler", "euler_a", "dpmpp_2m"};
static const char *const class_names[] = {"PNDMScheduler", "DDIMScheduler", "EulerDiscreteScheduler",
                                          "EulerAncestralDiscreteScheduler",
                                          "DPMSolverMultistepScheduler"};

int sched_kind_from_name(const char *name) {
    for (int k = 0; k < 5; k++)
        if (!strcmp(name, kind_names[k])) return k;
    return -1;
}
const char *sched_kind_name(sched_kind k) { return kind_names[k]; }
const char *sched_class_name(sched_kind k) { return class_names[k]; }
sched_kind sched_get_kind(const scheduler *s) { return s->kind; }
const char *sched_prediction_type(const scheduler *s) { return s->v_pred ? "v_prediction" : "epsilon"; }

/* ---- numpy / torch arithmetic -------------------------------------------- */

/* np.round: half to even (the default rounding mode of rint). */
static double np_round(double x) { return rint(x); }

/* np.linspace(start, stop, num)[i] (float64). */
static double np_linspace(double start, double stop, int num, int i) {
    if (num == 1) return start;
    if (i == num - 1) return stop;
    double step = (stop - start) / (num - 1);
    return i * step + start;
}

/* np.arange(start, stop, step) for float step: length and values as numpy's
 * fill computes them (a[i] = start + i * (a[1] - a[0])). Returns the length. */
static int np_arange(double start, double stop, double step, double **out) {
    double len = ceil((stop - start) / step);
    int n = len > 0 ? (int)len : 0;
    double *a = xmalloc((size_t)(n ? n : 1) * sizeof *a);
    double delta = (start + step) - start;
    for (int i = 0; i < n; i++) a[i] = i == 0 ? start : start + i * delta;
    *out = a;
    return n;
}

/* np.interp(x, arange(len(fp)), fp) for x inside [0, len - 1]. */
static double np_interp_index(double x, const float *fp, int n) {
    if (x <= 0) return fp[0];
    if (x >= n - 1) return fp[n - 1];
    int j = (int)floor(x);
    double slope = ((double)fp[j + 1] - fp[j]) / 1.0;
    return slope * (x - j) + fp[j];
}

/* torch.linspace(start, end, steps, dtype=float32) (the scalar kernel). */
static void torch_linspace_f32(float *out, double start_d, double end_d, int steps) {
    float start = (float)start_d, end = (float)end_d;
    if (steps == 1) {
        out[0] = start;
        return;
    }
    float step = (end - start) / (float)(steps - 1);
    int halfway = steps / 2;
    for (int i = 0; i < steps; i++)
        out[i] = i < halfway ? start + step * (float)i : end - step * (float)(steps - i - 1);
}

/* ---- configuration ----------------------------------------------------------- */

static int class_has_key(sched_kind k, const char *key) {
    static const char *const common_keys[] = {"num_train_timesteps", "beta_start", "beta_end",
                                              "beta_schedule", "trained_betas", "prediction_type",
                                              "timestep_spacing", "steps_offset", NULL};
    static const char *const per_class[5][24] = {
        {"skip_prk_steps", "set_alpha_to_one", NULL},
        {"clip_sample", "set_alpha_to_one", "thresholding", "dynamic_thresholding_ratio",
         "clip_sample_range", "sample_max_value", "rescale_betas_zero_snr", NULL},
        {"interpolation_type", "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas",
         "sigma_min", "sigma_max", "timestep_type", "rescale_betas_zero_snr", "final_sigmas_type", NULL},
        {"rescale_betas_zero_snr", NULL},
        {"solver_order", "thresholding", "dynamic_thresholding_ratio", "sample_max_value",
         "algorithm_type", "solver_type", "lower_order_final", "euler_at_final", "use_karras_sigmas",
         "use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas", "use_flow_sigmas", "flow_shift",
         "final_sigmas_type", "lambda_min_clipped", "variance_type", "rescale_betas_zero_snr",
         "use_dynamic_shifting", "time_shift_type", NULL},
    };
    for (int i = 0; common_keys[i]; i++)
        if (!strcmp(key, common_keys[i])) return 1;
    for (int i = 0; per_class[k][i]; i++)
        if (!strcmp(key, per_class[k][i])) return 1;
    return 0;
}

/* The value the class sees: the file's when the class has the key and the
 * file holds it, else the class default. */
typedef struct cfg_ctx {
    const json_t *cfg;
    sched_kind kind;
    const char *where;
} cfg_ctx;

static const json_t *cfg_val(const cfg_ctx *c, const char *key) {
    if (!class_has_key(c->kind, key)) die("%s: %s has no option %s", c->where, class_names[c->kind], key);
    return json_has(c->cfg, key) ? json_object_get(c->cfg, key) : NULL;
}
static double cfg_num(const cfg_ctx *c, const char *key, double dflt) {
    return cfg_val(c, key) ? json_get_num(c->cfg, key, dflt, c->where) : dflt;
}
static long cfg_int(const cfg_ctx *c, const char *key, long dflt) {
    return cfg_val(c, key) ? json_get_int(c->cfg, key, dflt, c->where) : dflt;
}
static int cfg_bool(const cfg_ctx *c, const char *key, int dflt) {
    return cfg_val(c, key) ? json_get_bool(c->cfg, key, dflt, c->where) : dflt;
}
static const char *cfg_str(const cfg_ctx *c, const char *key, const char *dflt) {
    return cfg_val(c, key) ? json_get_str(c->cfg, key, dflt, c->where) : dflt;
}
/* A boolean option that is not built: refuse true. */
static void cfg_refuse_true(const cfg_ctx *c, const char *key, const char *why) {
    if (cfg_bool(c, key, 0))
        die("%s: %s with %s true is not supported (%s)", c->where, class_names[c->kind], key, why);
}

static double alpha_bar_cos(double t) {
    double v = cos((t + 0.008) / 1.008 * M_PI / 2);
    return v * v;
}

static void sched_build_betas(scheduler *s, const cfg_ctx *c) {
    int T = s->T;
    float *betas = xmalloc((size_t)T * sizeof *betas);
    const json_t *tb = cfg_val(c, "trained_betas");
    const char *schedule = cfg_str(c, "beta_schedule", "linear");
    double b0 = cfg_num(c, "beta_start", 0.0001), b1 = cfg_num(c, "beta_end", 0.02);
    if (tb) {
        if (!json_is_array(tb) || (int)json_array_size(tb) != T)
            die("%s: trained_betas must be an array of num_train_timesteps (%d) numbers", c->where, T);
        for (int i = 0; i < T; i++) {
            const json_t *v = json_array_get(tb, (size_t)i);
            if (!json_is_number(v)) die("%s: trained_betas[%d] is not a number", c->where, i);
            betas[i] = (float)json_number_value(v);
        }
    } else if (!strcmp(schedule, "linear")) {
        torch_linspace_f32(betas, b0, b1, T);
    } else if (!strcmp(schedule, "scaled_linear")) {
        torch_linspace_f32(betas, sqrt(b0), sqrt(b1), T);
        for (int i = 0; i < T; i++) betas[i] = betas[i] * betas[i];
    } else if (!strcmp(schedule, "squaredcos_cap_v2")) {
        for (int i = 0; i < T; i++) {
            double t1 = (double)i / T, t2 = (double)(i + 1) / T;
            double b = 1 - alpha_bar_cos(t2) / alpha_bar_cos(t1);
            betas[i] = (float)(b < 0.999 ? b : 0.999);
        }
    } else {
        die("%s: beta_schedule \"%s\" is not implemented for %s (linear, scaled_linear, squaredcos_cap_v2)",
            c->where, schedule, class_names[s->kind]);
    }
    s->alphas_cumprod = xmalloc((size_t)T * sizeof *s->alphas_cumprod);
    double acc = 1.0;
    for (int i = 0; i < T; i++) {
        float alpha = 1.0f - betas[i];
        acc *= alpha;
        s->alphas_cumprod[i] = (float)acc;
    }
    free(betas);
    s->train_sigmas = xmalloc((size_t)T * sizeof *s->train_sigmas);
    for (int i = 0; i < T; i++) {
        float ac = s->alphas_cumprod[i];
        s->train_sigmas[i] = sqrtf((1.0f - ac) / ac);
    }
}

scheduler *sched_from_config(const json_t *cfg, const char *override, const char *where) {
    if (!json_is_object(cfg)) die("%s: the scheduler config is not a JSON object", where);
    scheduler *s = xcalloc(1, sizeof *s);
    if (override) {
        int k = sched_kind_from_name(override);
        if (k < 0) die("unknown scheduler \"%s\" (pndm, ddim, euler, euler_a, dpmpp_2m)", override);
        s->kind = (sched_kind)k;
    } else {
        const char *cls = json_get_str(cfg, "_class_name", NULL, where);
        if (!cls) die("%s: no _class_name (which scheduler?)", where);
        int k = -1;
        for (int i = 0; i < 5; i++)
            if (!strcmp(cls, class_names[i])) k = i;
        if (k < 0)
            die("%s: scheduler class %s is not built (PNDMScheduler, DDIMScheduler, EulerDiscreteScheduler, "
                "EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler; --scheduler picks one)",
                where, cls);
        s->kind = (sched_kind)k;
    }
    cfg_ctx c = {cfg, s->kind, where};
    long T = cfg_int(&c, "num_train_timesteps", 1000);
    if (T < 2 || T > 100000) die("%s: num_train_timesteps %ld is out of range", where, T);
    s->T = (int)T;
    const char *pred = cfg_str(&c, "prediction_type", "epsilon");
    if (!strcmp(pred, "v_prediction")) s->v_pred = 1;
    else if (strcmp(pred, "epsilon"))
        die("%s: prediction_type \"%s\" is not supported (epsilon, v_prediction)", where, pred);
    const char *sp = cfg_str(&c, "timestep_spacing",
                             s->kind == SCHED_PNDM || s->kind == SCHED_DDIM ? "leading" : "linspace");
    if (!strcmp(sp, "leading")) s->spacing = SPACING_LEADING;
    else if (!strcmp(sp, "trailing")) s->spacing = SPACING_TRAILING;
    else if (!strcmp(sp, "linspace")) s->spacing = SPACING_LINSPACE;
    else die("%s: timestep_spacing \"%s\" is not supported (leading, trailing, linspace)", where, sp);
    s->steps_offset = cfg_int(&c, "steps_offset", 0);
    if (s->kind != SCHED_PNDM) cfg_refuse_true(&c, "rescale_betas_zero_snr", "zero-SNR rescaling is not built");

    switch (s->kind) {
    case SCHED_PNDM:
        s->skip_prk_steps = cfg_bool(&c, "skip_prk_steps", 0);
        s->final_alpha_cumprod = cfg_bool(&c, "set_alpha_to_one", 0) ? 1.0f : NAN;
        break;
    case SCHED_DDIM:
        s->clip_sample = cfg_bool(&c, "clip_sample", 1);
        s->clip_sample_range = (float)cfg_num(&c, "clip_sample_range", 1.0);
        cfg_refuse_true(&c, "thresholding", "dynamic thresholding is not built");
        s->final_alpha_cumprod = cfg_bool(&c, "set_alpha_to_one", 1) ? 1.0f : NAN;
        break;
    case SCHED_EULER: {
        const char *it = cfg_str(&c, "interpolation_type", "linear");
        if (strcmp(it, "linear")) die("%s: interpolation_type \"%s\" is not supported (linear)", where, it);
        s->karras = cfg_bool(&c, "use_karras_sigmas", 0);
        cfg_refuse_true(&c, "use_exponential_sigmas", "exponential sigmas are not built");
        cfg_refuse_true(&c, "use_beta_sigmas", "beta sigmas are not built");
        const char *tt = cfg_str(&c, "timestep_type", "discrete");
        if (strcmp(tt, "discrete") && s->v_pred)
            die("%s: timestep_type \"%s\" with v_prediction is not supported (discrete)", where, tt);
        const char *fs = cfg_str(&c, "final_sigmas_type", "zero");
        if (!strcmp(fs, "sigma_min")) s->final_sigma_min = 1;
        else if (strcmp(fs, "zero")) die("%s: final_sigmas_type \"%s\" is not zero or sigma_min", where, fs);
        break;
    }
    case SCHED_EULER_A: break;
    case SCHED_DPMPP_2M: {
        long order = cfg_int(&c, "solver_order", 2);
        if (order != 1 && order != 2)
            die("%s: solver_order %ld is not supported (1 or 2; DPM-Solver++ 2M is order 2)", where, order);
        s->solver_order = (int)order;
        const char *alg = cfg_str(&c, "algorithm_type", "dpmsolver++");
        if (!strcmp(alg, "deis")) alg = "dpmsolver++"; /* diffusers maps it so */
        if (strcmp(alg, "dpmsolver++"))
            die("%s: algorithm_type \"%s\" is not supported (dpmsolver++)", where, alg);
        const char *st = cfg_str(&c, "solver_type", "midpoint");
        if (!strcmp(st, "heun")) s->solver_heun = 1;
        else if (strcmp(st, "midpoint") && strcmp(st, "logrho") && strcmp(st, "bh1") && strcmp(st, "bh2"))
            die("%s: solver_type \"%s\" is not implemented (midpoint, heun)", where, st);
        s->lower_order_final = cfg_bool(&c, "lower_order_final", 1);
        s->euler_at_final = cfg_bool(&c, "euler_at_final", 0);
        cfg_refuse_true(&c, "thresholding", "dynamic thresholding is not built");
        s->karras = cfg_bool(&c, "use_karras_sigmas", 0);
        cfg_refuse_true(&c, "use_exponential_sigmas", "exponential sigmas are not built");
        cfg_refuse_true(&c, "use_beta_sigmas", "beta sigmas are not built");
        cfg_refuse_true(&c, "use_lu_lambdas", "Lu lambdas are not built");
        cfg_refuse_true(&c, "use_flow_sigmas", "flow sigmas are not built");
        cfg_refuse_true(&c, "use_dynamic_shifting", "dynamic shifting is not built");
        if (cfg_val(&c, "lambda_min_clipped"))
            die("%s: lambda_min_clipped is not supported (only the default, -inf)", where);
        const char *vt = cfg_str(&c, "variance_type", NULL);
        if (vt) die("%s: variance_type \"%s\" is not supported (learned variance)", where, vt);
        const char *fs = cfg_str(&c, "final_sigmas_type", "zero");
        if (!strcmp(fs, "sigma_min")) s->final_sigma_min = 1;
        else if (strcmp(fs, "zero")) die("%s: final_sigmas_type \"%s\" is not zero or sigma_min", where, fs);
        break;
    }
    }
    /* Karras' range: the file's sigma_min / sigma_max when set (Euler has
     * them as options; diffusers' DPM reads them from its config too when
     * the file holds them), else the schedule's ends. */
    s->karras_min = s->karras_max = NAN;
    if (s->karras) {
        if (json_has(cfg, "sigma_min")) s->karras_min = json_get_num(cfg, "sigma_min", 0, where);
        if (json_has(cfg, "sigma_max")) s->karras_max = json_get_num(cfg, "sigma_max", 0, where);
    }
    sched_build_betas(s, &c);
    if (isnan(s->final_alpha_cumprod)) s->final_alpha_cumprod = s->alphas_cumprod[0];
    return s;
}

void sched_free(scheduler *s) {
    if (!s) return;
    free(s->alphas_cumprod);
    free(s->train_sigmas);
    free(s->timesteps);
    free(s->sigmas);
    free(s);
}

/* ---- timesteps -------------------------------------------------------------- */

/* Euler and DPM's sigma table: interp of the training sigmas at the timesteps,
 * then the final sigma, as float32. */
static void sched_build_sigmas(scheduler *s) {
    s->sigmas = xmalloc((size_t)(s->ncalls + 1) * sizeof *s->sigmas);
    for (int i = 0; i < s->ncalls; i++)
        s->sigmas[i] = (float)np_interp_index(s->timesteps[i], s->train_sigmas, s->T);
    s->sigmas[s->ncalls] = s->final_sigma_min ? s->train_sigmas[0] : 0.0f;
}

/* _sigma_to_t: the fractional timestep whose log sigma is log(sigma),
 * interpolated in the float32 log_sigmas table (increasing with t). */
static double karras_sigma_to_t(const scheduler *s, double sigma) {
    double ls = log(sigma > 1e-10 ? sigma : 1e-10);
    int T = s->T, low = 0;
    for (int i = 0; i < T; i++) /* the last index with log_sigmas[i] <= ls (0 if none) */
        if (ls - (double)logf(s->train_sigmas[i]) >= 0) low = i;
    if (low > T - 2) low = T - 2;
    float lo = logf(s->train_sigmas[low]), hi = logf(s->train_sigmas[low + 1]);
    double w = ((double)lo - ls) / (double)(lo - hi); /* numpy: low - high stays float32 */
    w = w < 0 ? 0 : w > 1 ? 1 : w;
    return (1 - w) * low + w * (low + 1);
}

/* use_karras_sigmas: rho = 7 spacing between the range's ends (from the
 * timestep-interpolated sigmas for Euler, the whole training table for DPM);
 * timesteps from _sigma_to_t (DPM rounds them). n = steps. */
static void sched_build_karras(scheduler *s, const double *interp_sigmas, int n) {
    double smin, smax;
    if (s->kind == SCHED_DPMPP_2M) {
        smin = s->train_sigmas[0];
        smax = s->train_sigmas[s->T - 1];
    } else {
        smin = interp_sigmas[n - 1];
        smax = interp_sigmas[0];
    }
    if (!isnan(s->karras_min)) smin = s->karras_min;
    if (!isnan(s->karras_max)) smax = s->karras_max;
    const double rho = 7.0;
    double min_inv = pow(smin, 1 / rho), max_inv = pow(smax, 1 / rho);
    s->ncalls = n;
    free(s->timesteps);
    s->timesteps = xmalloc((size_t)n * sizeof *s->timesteps);
    s->sigmas = xmalloc((size_t)(n + 1) * sizeof *s->sigmas);
    for (int i = 0; i < n; i++) {
        double ramp = np_linspace(0, 1, n, i);
        double sg = pow(max_inv + ramp * (min_inv - max_inv), rho);
        double t = karras_sigma_to_t(s, sg);
        s->timesteps[i] = (float)(s->kind == SCHED_DPMPP_2M ? np_round(t) : t);
        s->sigmas[i] = (float)sg;
    }
    s->sigmas[n] = s->final_sigma_min ? s->train_sigmas[0] : 0.0f;
}

/* index_for_timestep(timesteps[0]): the second match when the first
 * timestep occurs more than once. */
static int sched_first_index(const scheduler *s) {
    int first = -1;
    for (int i = 0; i < s->ncalls; i++)
        if (s->timesteps[i] == s->timesteps[0]) {
            if (first >= 0) return i;
            first = i;
        }
    return 0;
}

void sched_set_timesteps(scheduler *s, int steps) {
    int T = s->T;
    if (steps < 1 || steps > T)
        die("%d steps is out of range for a scheduler trained on %d timesteps (1 to %d)", steps, T, T);
    free(s->timesteps);
    free(s->sigmas);
    s->sigmas = NULL;
    s->steps = steps;
    /* ts: the descending schedule (PNDM: its _timesteps reversed) */
    int n = 0;
    double *ts = NULL;
    int dpm = s->kind == SCHED_DPMPP_2M;
    int count = dpm ? steps + 1 : steps;
    if (s->spacing == SPACING_LINSPACE) {
        n = steps;
        ts = xmalloc((size_t)count * sizeof *ts);
        for (int i = 0; i < n; i++) {
            double v = np_linspace(0, T - 1, count, count - 1 - i);
            /* Euler keeps linspace's float32 values; the others round. */
            ts[i] = (s->kind == SCHED_EULER || s->kind == SCHED_EULER_A) ? (double)(float)v : np_round(v);
        }
    } else if (s->spacing == SPACING_LEADING) {
        long ratio = dpm ? T / (steps + 1) : T / steps;
        n = steps;
        ts = xmalloc((size_t)n * sizeof *ts);
        /* arange(steps) * ratio reversed; DPM: arange(steps + 1) * ratio reversed, last dropped */
        for (int i = 0; i < n; i++) ts[i] = (double)((long)(dpm ? steps - i : n - 1 - i) * ratio + s->steps_offset);
    } else {
        double ratio = (double)T / steps;
        n = np_arange(T, 0, -ratio, &ts);
        for (int i = 0; i < n; i++) ts[i] = np_round(ts[i]) - 1;
    }
    s->n_prk = 0;
    if (s->kind == SCHED_PNDM && !s->skip_prk_steps) {
        /* Runge-Kutta warm-up on the last four of the ascending _t (a0..a3,
         * h = T // steps // 2): a3, a2+h, a2+h, a2, a2, a1+h, a1+h, a1, a1,
         * a0+h, a0+h, a0; then PLMS on _t[:-3] descending. */
        if (n < 4)
            die("PNDMScheduler without skip_prk_steps needs 4 steps or more (%d given; diffusers fails too)",
                steps);
        long h = (long)T / steps / 2;
        double a[4];
        for (int k = 0; k < 4; k++) a[k] = ts[3 - k]; /* ts is descending */
        double prk[12] = {a[3],     a[2] + h, a[2] + h, a[2], a[2], a[1] + h,
                          a[1] + h, a[1],     a[1],     a[0] + h, a[0] + h, a[0]};
        s->n_prk = 12;
        s->ncalls = 12 + n - 3;
        s->timesteps = xmalloc((size_t)s->ncalls * sizeof *s->timesteps);
        for (int k = 0; k < 12; k++) s->timesteps[k] = (float)prk[k];
        for (int i = 3; i < n; i++) s->timesteps[12 + i - 3] = (float)ts[i];
    } else if (s->kind == SCHED_PNDM) {
        /* plms_timesteps = concat(_t[:-1], _t[-2:-1], _t[-1:])[::-1] with _t ascending:
         * the descending list with its second entry repeated (n >= 2). */
        s->ncalls = n >= 2 ? n + 1 : n;
        s->timesteps = xmalloc((size_t)s->ncalls * sizeof *s->timesteps);
        int j = 0;
        for (int i = 0; i < n; i++) {
            s->timesteps[j++] = (float)ts[i];
            if (i == 1) s->timesteps[j++] = (float)ts[i];
        }
    } else {
        s->ncalls = n;
        s->timesteps = xmalloc((size_t)(n ? n : 1) * sizeof *s->timesteps);
        for (int i = 0; i < n; i++) s->timesteps[i] = (float)ts[i];
    }
    free(ts);
    if (s->ncalls < 1) die("%d steps give no timesteps with this spacing", steps);
    s->init_noise_sigma = 1.0f;
    s->begin_index = 0;
    if (s->karras) {
        double *interp = xmalloc((size_t)s->ncalls * sizeof *interp);
        for (int i = 0; i < s->ncalls; i++) interp[i] = np_interp_index(s->timesteps[i], s->train_sigmas, s->T);
        sched_build_karras(s, interp, s->ncalls);
        free(interp);
        s->begin_index = sched_first_index(s);
    } else if (s->kind == SCHED_EULER || s->kind == SCHED_EULER_A || dpm) {
        sched_build_sigmas(s);
        s->begin_index = sched_first_index(s);
    }
    if (s->kind == SCHED_EULER || s->kind == SCHED_EULER_A) {
        float mx = s->sigmas[0];
        for (int i = 1; i <= s->ncalls; i++)
            if (s->sigmas[i] > mx) mx = s->sigmas[i];
        s->init_noise_sigma = s->spacing == SPACING_LEADING ? sqrtf(mx * mx + 1.0f) : mx;
    }
}

int sched_num_calls(const scheduler *s) { return s->ncalls; }
float sched_timestep(const scheduler *s, int i) {
    CHECKF(i >= 0 && i < s->ncalls, "timestep %d of %d", i, s->ncalls);
    return s->timesteps[i];
}
float sched_init_noise_sigma(const scheduler *s) { return s->init_noise_sigma; }
const float *sched_alphas_cumprod(const scheduler *s, int *n) {
    *n = s->T;
    return s->alphas_cumprod;
}

/* ---- per-record state ----------------------------------------------------------- */

sched_state *sched_state_new(const scheduler *s) {
    CHECKF(s->timesteps, "sched_set_timesteps before sched_state_new");
    sched_state *st = xcalloc(1, sizeof *st);
    st->step_index = s->begin_index;
    return st;
}

void sched_state_free(sched_state *st) {
    if (!st) return;
    for (int i = 0; i < 4; i++) free(st->ets[i]);
    free(st->cur_sample);
    free(st->cur_mo);
    free(st->mo[0]);
    free(st->mo[1]);
    free(st);
}

int sched_state_calls(const sched_state *st) { return st->calls; }

static float *state_buf(sched_state *st, float **slot) {
    if (!*slot) *slot = xmalloc((size_t)st->n * sizeof **slot);
    return *slot;
}

void sched_scale_model_input(const scheduler *s, const sched_state *st, float *out, const float *sample,
                             int64_t n) {
    if (s->kind == SCHED_EULER || s->kind == SCHED_EULER_A) {
        CHECKF(st->step_index <= s->ncalls - 1, "scale_model_input after the last step");
        float sigma = s->sigmas[st->step_index];
        float d = sqrtf(sigma * sigma + 1.0f);
        for (int64_t i = 0; i < n; i++) out[i] = sample[i] / d;
    } else if (out != sample) {
        memcpy(out, sample, (size_t)n * sizeof *out);
    }
}

/* alphas_cumprod[t], with Python's negative indexing. */
static float ac_at(const scheduler *s, long t) {
    if (t < 0) t += s->T;
    if (t < 0 || t >= s->T) die("timestep %ld is outside the training schedule (0 to %d)", t, s->T - 1);
    return s->alphas_cumprod[t];
}

/* PNDMScheduler._get_prev_sample: out may equal sample. */
static void pndm_prev_sample(const scheduler *s, float *out, const float *sample, long t, long prev_t,
                             const float *mo, int64_t n) {
    float a_t = ac_at(s, t);
    float a_prev = prev_t >= 0 ? ac_at(s, prev_t) : s->final_alpha_cumprod;
    float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
    float sq_a = sqrtf(a_t), sq_b = sqrtf(b_t);
    float coeff = sqrtf(a_prev / a_t);
    float denom = a_t * sqrtf(b_prev) + sqrtf(a_t * b_t * a_prev);
    float diff = a_prev - a_t;
    for (int64_t i = 0; i < n; i++) {
        float m = mo[i];
        if (s->v_pred) m = sq_a * m + sq_b * sample[i];
        out[i] = coeff * sample[i] - diff * m / denom;
    }
}

/* PNDMScheduler.step_prk: four calls per Runge-Kutta step. */
static void pndm_step_prk(const scheduler *s, sched_state *st, const float *mo, float *sample, int64_t n) {
    long t_call = (long)s->timesteps[st->calls];
    long diff = st->counter % 2 ? 0 : s->T / s->steps / 2;
    long prev_t = t_call - diff;
    long t = (long)s->timesteps[st->counter / 4 * 4];
    float *cur = state_buf(st, &st->cur_mo);
    const float sixth = (float)(1.0 / 6.0), third = (float)(1.0 / 3.0);
    float *m = xmalloc((size_t)n * sizeof *m);
    memcpy(m, mo, (size_t)n * sizeof *m);
    switch (st->counter % 4) {
    case 0:
        for (int64_t i = 0; i < n; i++) cur[i] = sixth * mo[i]; /* 0 + mo / 6 */
        memcpy(state_buf(st, &st->ets[st->nets]), mo, (size_t)n * sizeof *mo);
        st->nets++;
        memcpy(state_buf(st, &st->cur_sample), sample, (size_t)n * sizeof *sample);
        break;
    case 1:
    case 2:
        for (int64_t i = 0; i < n; i++) cur[i] += third * mo[i];
        break;
    case 3:
        for (int64_t i = 0; i < n; i++) m[i] = cur[i] + sixth * mo[i];
        break;
    }
    pndm_prev_sample(s, sample, st->cur_sample, t, prev_t, m, n);
    free(m);
    st->counter++;
}

static void pndm_step(const scheduler *s, sched_state *st, const float *mo, float *sample, int64_t n) {
    if (st->counter < s->n_prk) {
        pndm_step_prk(s, st, mo, sample, n);
        return;
    }
    long r = s->T / s->steps;
    long t = (long)s->timesteps[st->calls];
    long prev_t = t - r;
    if (st->counter != 1) {
        if (st->nets == 4) { /* ets = ets[-3:] + [mo] */
            float *old = st->ets[0];
            memmove(st->ets, st->ets + 1, 3 * sizeof *st->ets);
            st->ets[3] = old;
            st->nets = 3;
        }
        float *e = state_buf(st, &st->ets[st->nets]);
        memcpy(e, mo, (size_t)n * sizeof *e);
        st->nets++;
    } else {
        prev_t = t;
        t = t + r;
    }
    float *const *e = st->ets + st->nets - 1; /* e[0] newest, e[-1] the one before ... */
    float *m = xmalloc((size_t)n * sizeof *m);
    const float *x = sample;
    if (st->nets == 1 && st->counter == 0) {
        memcpy(m, mo, (size_t)n * sizeof *m);
        memcpy(state_buf(st, &st->cur_sample), sample, (size_t)n * sizeof *sample);
    } else if (st->nets == 1 && st->counter == 1) {
        for (int64_t i = 0; i < n; i++) m[i] = (mo[i] + e[0][i]) / 2.0f;
        x = st->cur_sample;
    } else if (st->nets == 2) {
        for (int64_t i = 0; i < n; i++) m[i] = (3.0f * e[0][i] - e[-1][i]) / 2.0f;
    } else if (st->nets == 3) {
        for (int64_t i = 0; i < n; i++) m[i] = (23.0f * e[0][i] - 16.0f * e[-1][i] + 5.0f * e[-2][i]) / 12.0f;
    } else {
        const float k = (float)(1.0 / 24.0);
        for (int64_t i = 0; i < n; i++)
            m[i] = k * (55.0f * e[0][i] - 59.0f * e[-1][i] + 37.0f * e[-2][i] - 9.0f * e[-3][i]);
    }
    pndm_prev_sample(s, sample, x, t, prev_t, m, n);
    free(m);
    st->counter++;
}

static void ddim_step(const scheduler *s, sched_state *st, const float *mo, float *sample, int64_t n) {
    long t = (long)s->timesteps[st->calls];
    long prev_t = t - s->T / s->steps;
    float a_t = ac_at(s, t);
    float a_prev = prev_t >= 0 ? ac_at(s, prev_t) : s->final_alpha_cumprod;
    float b_t = 1.0f - a_t;
    float sq_a = sqrtf(a_t), sq_b = sqrtf(b_t), sq_a_prev = sqrtf(a_prev);
    float std_dev = 0.0f * sqrtf((1.0f - a_prev) / b_t * (1.0f - a_t / a_prev)); /* eta = 0 */
    float dir = sqrtf(1.0f - a_prev - std_dev * std_dev);
    float lim = s->clip_sample_range;
    for (int64_t i = 0; i < n; i++) {
        float x0, eps;
        if (s->v_pred) {
            x0 = sq_a * sample[i] - sq_b * mo[i];
            eps = sq_a * mo[i] + sq_b * sample[i];
        } else {
            x0 = (sample[i] - sq_b * mo[i]) / sq_a;
            eps = mo[i];
        }
        if (s->clip_sample) x0 = x0 < -lim ? -lim : x0 > lim ? lim : x0;
        sample[i] = sq_a_prev * x0 + dir * eps;
    }
}

/* x0 from the model output at sigma (Euler's c_out / c_skip form). */
static float euler_x0(const scheduler *s, float x, float m, float sigma, float c_out, float c_skip_d) {
    if (s->v_pred) return m * c_out + x / c_skip_d;
    return x - sigma * m;
}

static void euler_step(const scheduler *s, sched_state *st, const float *mo, float *sample, int64_t n,
                       torch_gen *gen) {
    int k = st->step_index;
    CHECKF(k + 1 <= s->ncalls, "Euler step %d past the schedule", k);
    float sigma = s->sigmas[k], sigma_next = s->sigmas[k + 1];
    float c_skip_d = sigma * sigma + 1.0f;
    float c_out = -sigma / sqrtf(c_skip_d);
    if (s->kind == SCHED_EULER) {
        float dt = sigma_next - sigma;
        for (int64_t i = 0; i < n; i++) {
            float x = sample[i];
            float x0 = euler_x0(s, x, mo[i], sigma, c_out, c_skip_d);
            float d = (x - x0) / sigma;
            sample[i] = x + d * dt;
        }
        return;
    }
    if (!gen) die("Euler ancestral needs the record's generator");
    float from2 = sigma * sigma, to2 = sigma_next * sigma_next;
    float up = sqrtf(to2 * (from2 - to2) / from2);
    float down = sqrtf(to2 - up * up);
    float dt = down - sigma;
    float *noise = xmalloc((size_t)n * sizeof *noise);
    torch_randn_f32(gen, noise, n);
    for (int64_t i = 0; i < n; i++) {
        float x = sample[i];
        float x0 = euler_x0(s, x, mo[i], sigma, c_out, c_skip_d);
        float d = (x - x0) / sigma;
        float prev = x + d * dt;
        sample[i] = prev + noise[i] * up;
    }
    free(noise);
}

/* _sigma_to_alpha_sigma_t and lambda = log(alpha) - log(sigma). */
static void dpm_alpha_sigma(float sigma, float *alpha_t, float *sigma_t, float *lambda) {
    *alpha_t = 1.0f / sqrtf(sigma * sigma + 1.0f);
    *sigma_t = sigma * *alpha_t;
    *lambda = logf(*alpha_t) - logf(*sigma_t);
}

static void dpm_step(const scheduler *s, sched_state *st, const float *mo, float *sample, int64_t n) {
    int k = st->step_index, len = s->ncalls;
    CHECKF(k + 1 <= len, "DPM step %d past the schedule", k);
    int lower_final = k == len - 1 && (s->euler_at_final || (s->lower_order_final && len < 15) ||
                                       !s->final_sigma_min);
    int lower_second = k == len - 2 && s->lower_order_final && len < 15;
    /* convert_model_output: the x0 prediction at sigmas[k] */
    float a_s0, s_s0, l_s0;
    dpm_alpha_sigma(s->sigmas[k], &a_s0, &s_s0, &l_s0);
    float *tmp = st->mo[0]; /* model_outputs shift left */
    st->mo[0] = st->mo[1];
    st->mo[1] = tmp;
    float *m0 = state_buf(st, &st->mo[1]);
    for (int64_t i = 0; i < n; i++)
        m0[i] = s->v_pred ? a_s0 * sample[i] - s_s0 * mo[i] : (sample[i] - s_s0 * mo[i]) / a_s0;
    float a_t, s_t, l_t;
    dpm_alpha_sigma(s->sigmas[k + 1], &a_t, &s_t, &l_t);
    float h = l_t - l_s0;
    float c_x = s_t / s_s0;
    float c_d0 = a_t * (expf(-h) - 1.0f);
    if (s->solver_order == 1 || st->lower_order_nums < 1 || lower_final) {
        for (int64_t i = 0; i < n; i++) sample[i] = c_x * sample[i] - c_d0 * m0[i];
    } else {
        CHECKF(st->mo[0], "DPM second order without a previous output");
        float a_s1, s_s1, l_s1;
        dpm_alpha_sigma(s->sigmas[k - 1], &a_s1, &s_s1, &l_s1);
        (void)lower_second; /* order 2 at most: second order from here on */
        float h0 = l_s0 - l_s1;
        float r0 = h0 / h;
        float inv_r0 = 1.0f / r0;
        const float *m1 = st->mo[0];
        if (!s->solver_heun) {
            float c_d1 = 0.5f * c_d0;
            for (int64_t i = 0; i < n; i++) {
                float d1 = inv_r0 * (m0[i] - m1[i]);
                sample[i] = c_x * sample[i] - c_d0 * m0[i] - c_d1 * d1;
            }
        } else {
            float c_d1 = a_t * ((expf(-h) - 1.0f) / h + 1.0f);
            for (int64_t i = 0; i < n; i++) {
                float d1 = inv_r0 * (m0[i] - m1[i]);
                sample[i] = c_x * sample[i] - c_d0 * m0[i] + c_d1 * d1;
            }
        }
    }
    if (st->lower_order_nums < s->solver_order) st->lower_order_nums++;
}

void sched_step(const scheduler *s, sched_state *st, const float *model_out, float *sample, int64_t n,
                torch_gen *gen) {
    if (st->calls >= s->ncalls) die("scheduler step %d past the last timestep (%d calls)", st->calls + 1, s->ncalls);
    if (st->n == 0) st->n = n;
    CHECKF(st->n == n, "a record's sample changed size (%lld, then %lld)", (long long)st->n, (long long)n);
    switch (s->kind) {
    case SCHED_PNDM: pndm_step(s, st, model_out, sample, n); break;
    case SCHED_DDIM: ddim_step(s, st, model_out, sample, n); break;
    case SCHED_EULER:
    case SCHED_EULER_A: euler_step(s, st, model_out, sample, n, gen); break;
    case SCHED_DPMPP_2M: dpm_step(s, st, model_out, sample, n); break;
    }
    st->step_index++;
    st->calls++;
}
