/* device_cpu.c — the CPU-only build's answers to device.h (CUDA=0). In a CUDA
 * build device_cuda.cu provides them instead. */
#include "device.h"

#ifndef SYNTHCXR_CUDA
int cuda_device_count(void) { return 0; }
const char *cuda_unavailable_reason(void) { return "built without CUDA"; }
#else
typedef int device_cpu_unused; /* ISO C forbids an empty translation unit */
#endif
