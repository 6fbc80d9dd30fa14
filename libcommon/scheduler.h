/* scheduler.h — the diffusion schedulers of Stable Diffusion, built from a
 * model's scheduler/scheduler_config.json exactly as diffusers 0.42 builds
 * them: PNDM (PLMS, with or without the Runge-Kutta warm-up of
 * skip_prk_steps false), DDIM (eta 0), Euler, Euler ancestral
 * and DPM-Solver++ 2M, for prediction_type epsilon and v_prediction.
 *
 * Configuration: the class comes from "_class_name", or from an override
 * name (pndm, ddim, euler, euler_a, dpmpp_2m). Either way the scheduler takes
 * the keys the FILE holds that its class knows and the class's own __init__
 * default for every other key — which is what diffusers does both when it
 * loads the folder and for OtherScheduler.from_config(pipe.scheduler.config)
 * (keys a loaded config filled from defaults are marked _use_default_values
 * and dropped there). use_karras_sigmas is built for Euler and DPM.
 * Options this file does not reproduce (exponential / beta / Lu sigmas,
 * thresholding, zero-SNR rescaling, third-order DPM, ...) are
 * refused with a message naming the key.
 *
 * Use, as StableDiffusionPipeline's loop does:
 *   scheduler *s = sched_from_config(cfg, NULL, "model/scheduler/scheduler_config.json");
 *   sched_set_timesteps(s, 50);
 *   sched_state *st = sched_state_new(s);       one per record (multistep history)
 *   latents *= sched_init_noise_sigma(s)
 *   for (i = 0; i < sched_num_calls(s); i++) {
 *       t = sched_timestep(s, i);
 *       sched_scale_model_input(s, st, x_in, latents, n);   the UNet's input
 *       model_out = unet(x_in, t) (with guidance)
 *       sched_step(s, st, model_out, latents, n, gen);      latents <- previous sample
 *   }
 * The state counts its calls, so call i of sched_step is the i-th timestep.
 * gen is the record's generator, continuing after the initial latents were
 * drawn from it; only Euler ancestral draws from it (randn of n values per
 * step, as diffusers' randn_tensor with the pipeline's generator). */
#ifndef SYNTHCXR_SCHEDULER_H
#define SYNTHCXR_SCHEDULER_H

#include <jansson.h>
#include <stdint.h>

#include "rng.h"

typedef enum {
    SCHED_PNDM,
    SCHED_DDIM,
    SCHED_EULER,
    SCHED_EULER_A,
    SCHED_DPMPP_2M,
} sched_kind;

typedef struct scheduler scheduler;
typedef struct sched_state sched_state;

/* "pndm" -> SCHED_PNDM ...; -1 for an unknown name. */
int sched_kind_from_name(const char *name);
const char *sched_kind_name(sched_kind k);           /* "pndm", ... */
const char *sched_class_name(sched_kind k);          /* "PNDMScheduler", ... */

/* Builds the scheduler from a parsed scheduler_config.json; override: one of
 * the short names, or NULL for the file's class. where names the file in
 * messages. Dies on an unknown class, a bad value or an option not built. */
scheduler *sched_from_config(const json_t *cfg, const char *override, const char *where);
void sched_free(scheduler *s);

sched_kind sched_get_kind(const scheduler *s);
/* "epsilon" or "v_prediction". */
const char *sched_prediction_type(const scheduler *s);

/* = scheduler.set_timesteps(steps); steps 1..num_train_timesteps. */
void sched_set_timesteps(scheduler *s, int steps);
/* UNet calls per record: steps (PNDM: steps + 1; steps + 9 with PRK). */
int sched_num_calls(const scheduler *s);
/* The timestep passed to the UNet on call i (integers, or float32 values
 * for the Euler schedulers' linspace spacing). */
float sched_timestep(const scheduler *s, int i);
/* The factor prepare_latents multiplies the initial noise by. */
float sched_init_noise_sigma(const scheduler *s);
/* alphas_cumprod[num_train_timesteps] (float32 as torch computes it). */
const float *sched_alphas_cumprod(const scheduler *s, int *n);

/* Per-record state; fresh after sched_set_timesteps (make new ones then). */
sched_state *sched_state_new(const scheduler *s);
void sched_state_free(sched_state *st);
/* Calls made so far (the index of the next timestep). */
int sched_state_calls(const sched_state *st);

/* out[n] = scale_model_input(sample[n], timestep of the next call); out may
 * equal sample. */
void sched_scale_model_input(const scheduler *s, const sched_state *st, float *out,
                             const float *sample, int64_t n);
/* One scheduler.step: sample[n] (this record's latents) is replaced by the
 * previous sample, given model_out[n] (after guidance). gen: the record's
 * generator (Euler ancestral only; NULL is refused there). */
void sched_step(const scheduler *s, sched_state *st, const float *model_out, float *sample,
                int64_t n, torch_gen *gen);

#endif
