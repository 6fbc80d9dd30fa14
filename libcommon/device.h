/* device.h — which accelerator answers. In a CPU-only build (CUDA=0) the
 * functions still exist and report that CUDA was not built in. */
#ifndef SYNTHCXR_DEVICE_H
#define SYNTHCXR_DEVICE_H

#include <stddef.h>

/* Number of CUDA devices that answer; 0 when none or when built without CUDA. */
int cuda_device_count(void);
/* Why cuda_device_count() is 0, as a phrase ("built without CUDA", "no GPU: ..."). */
const char *cuda_unavailable_reason(void);

/* Why a model's device arena could not be had (unet_cuda_oom, vae_cuda_oom,
 * clip_text_cuda_oom): bytes needed, the bytes it may take (free device
 * memory minus what is kept in reserve), free and total device memory. */
typedef struct cuda_oom { size_t need, avail, free, total; } cuda_oom;

#endif
