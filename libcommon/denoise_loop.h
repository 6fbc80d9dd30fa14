/* denoise_loop.h — StableDiffusionPipeline's denoising loop for a batch of
 * records: initial noise times init_noise_sigma, then for each timestep the
 * UNet on [uncond x B, cond x B] (latents repeated, then scale_model_input),
 * classifier-free guidance noise = uncond + g * (cond - uncond), and one
 * scheduler step per record with that record's state and generator. With
 * guidance <= 1 (diffusers: do_classifier_free_guidance is guidance > 1) the
 * UNet runs once on the conditional states alone. The denoise program and
 * the pipeline test (test_scheduler.c) both run this function. */
#ifndef SYNTHCXR_DENOISE_LOOP_H
#define SYNTHCXR_DENOISE_LOOP_H

#include "rng.h"
#include "scheduler.h"
#include "unet.h"

/* Called after each UNet call (call = 1 .. sched_num_calls), for progress. */
typedef void (*denoise_progress_fn)(void *ctx, int call, int ncalls);

/* latents[b]: [C, H, W] per record, in: the raw initial noise (what
 *   prepare_latents drew with the record's generator), out: the final latents
 *   (not divided by the VAE's scaling factor);
 * cond[b]: [T, D] the record's text states; uncond: [T, D] (unused when
 *   guidance <= 1);
 * gens[b]: each record's generator, continuing after the initial noise
 *   (Euler ancestral draws from it; may be NULL for the other schedulers).
 * s must have had sched_set_timesteps. C, H, W, D must fit the UNet (the
 * caller checks them to name the record). */
void denoise_batch(unet_model *m, const scheduler *s, int B, float *const *latents, const float *const *cond,
                   const float *uncond, torch_gen *const *gens, int C, int H, int W, int T, int D,
                   double guidance, denoise_progress_fn progress, void *ctx);

/* The same loop with another UNet behind it (the GPU's, unet_cuda.h): fn has
 * unet_forward's contract on host float buffers, called as fn(unet, ...);
 * info is the model's. The scheduler and guidance stay on the host, so the
 * loop is the CPU's whatever computes the noise. */
typedef void (*denoise_unet_fn)(void *unet, float *out, const float *sample, const float *timesteps,
                                const float *enc, int B, int H, int W, int T);
void denoise_batch_with(denoise_unet_fn fn, void *unet, const unet_info *info, const scheduler *s, int B,
                        float *const *latents, const float *const *cond, const float *uncond, torch_gen *const *gens,
                        int C, int H, int W, int T, int D, double guidance, denoise_progress_fn progress, void *ctx);

#endif
