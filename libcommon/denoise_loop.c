/* denoise_loop.c — the text-to-image loop of StableDiffusionPipeline.__call__
 * (diffusers 0.42) over a batch of independent records; see denoise_loop.h. */
#include "denoise_loop.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

static void cpu_unet(void *unet, float *out, const float *sample, const float *timesteps, const float *enc, int B,
                     int H, int W, int T) {
    unet_forward(unet, out, sample, timesteps, enc, B, H, W, T);
}

void denoise_batch(unet_model *m, const scheduler *s, int B, float *const *latents, const float *const *cond,
                   const float *uncond, torch_gen *const *gens, int C, int H, int W, int T, int D,
                   double guidance, denoise_progress_fn progress, void *ctx) {
    denoise_batch_with(cpu_unet, m, unet_get_info(m), s, B, latents, cond, uncond, gens, C, H, W, T, D, guidance,
                       progress, ctx);
}

void denoise_batch_with(denoise_unet_fn fn, void *unet, const unet_info *info, const scheduler *s, int B,
                        float *const *latents, const float *const *cond, const float *uncond, torch_gen *const *gens,
                        int C, int H, int W, int T, int D, double guidance, denoise_progress_fn progress, void *ctx) {
    CHECKF(info->in_channels == C && info->out_channels == C, "latent channels %d, UNet in %d out %d", C,
           info->in_channels, info->out_channels);
    CHECKF(info->cross_attention_dim == D, "text width %d, UNet %d", D, info->cross_attention_dim);
    int cfg = guidance > 1.0;
    int nb = cfg ? 2 * B : B;                /* UNet batch: [uncond x B, cond x B] or [cond x B] */
    size_t n = (size_t)C * H * W, td = (size_t)T * D;
    float *x_in = xmalloc((size_t)nb * n * sizeof *x_in);        /* [nb, C, H, W] */
    float *pred = xmalloc((size_t)nb * n * sizeof *pred);        /* [nb, C, H, W] */
    float *enc = xmalloc((size_t)nb * td * sizeof *enc);         /* [nb, T, D] */
    float *ts = xmalloc((size_t)nb * sizeof *ts);                /* [nb] */
    float *guided = xmalloc(n * sizeof *guided);                 /* [C, H, W] */
    sched_state **st = xmalloc((size_t)B * sizeof *st);
    for (int b = 0; b < B; b++) {
        memcpy(enc + (size_t)(cfg ? B + b : b) * td, cond[b], td * sizeof *enc);
        if (cfg) memcpy(enc + (size_t)b * td, uncond, td * sizeof *enc);
        st[b] = sched_state_new(s);
        /* prepare_latents: latents * init_noise_sigma */
        float sigma = sched_init_noise_sigma(s);
        for (size_t i = 0; i < n; i++) latents[b][i] *= sigma;
    }
    float g = (float)guidance;
    int ncalls = sched_num_calls(s);
    for (int call = 0; call < ncalls; call++) {
        float t = sched_timestep(s, call);
        for (int k = 0; k < nb; k++) {
            int b = cfg ? k % B : k;
            sched_scale_model_input(s, st[b], x_in + (size_t)k * n, latents[b], (int64_t)n);
            ts[k] = t;
        }
        fn(unet, pred, x_in, ts, enc, nb, H, W, T);
        for (int b = 0; b < B; b++) {
            const float *mo = pred + (size_t)(cfg ? B + b : b) * n;
            if (cfg) {
                const float *u = pred + (size_t)b * n;
                for (size_t i = 0; i < n; i++) guided[i] = u[i] + g * (mo[i] - u[i]);
                mo = guided;
            }
            sched_step(s, st[b], mo, latents[b], (int64_t)n, gens ? gens[b] : NULL);
        }
        if (progress) progress(ctx, call + 1, ncalls);
    }
    for (int b = 0; b < B; b++) sched_state_free(st[b]);
    free(st);
    free(x_in);
    free(pred);
    free(enc);
    free(ts);
    free(guided);
}
