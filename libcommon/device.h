/* device.h — which accelerator answers. In a CPU-only build (CUDA=0) the
 * functions still exist and report that CUDA was not built in. */
#ifndef SYNTHCXR_DEVICE_H
#define SYNTHCXR_DEVICE_H

/* Number of CUDA devices that answer; 0 when none or when built without CUDA. */
int cuda_device_count(void);
/* Why cuda_device_count() is 0, as a phrase ("built without CUDA", "no GPU: ..."). */
const char *cuda_unavailable_reason(void);

#endif
