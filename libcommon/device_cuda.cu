/* device_cuda.cu — the CUDA build's answers to device.h, and the CUDA base of
 * cuda_util.h: error reporting, the per-thread cuBLAS handle, GPU tensors,
 * the fp32 GEMM wrapper. (The SiLU kernel that was here is in activation_cuda.cu.) */
#include "cuda_util.h"

/* The project headers are C; give their functions C linkage here. */
extern "C" {
#include "common.h"
#include "device.h"
#include "tensor.h"
}

#include <stdio.h>
#include <string.h>

/* ---- device.h ----------------------------------------------------------- */

static int device_count = -1;
static char device_reason[256] = "";

static void device_probe(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        /* No driver, a driver too old for this runtime, no device: all mean CPU. */
        snprintf(device_reason, sizeof device_reason, "no GPU: %s", cudaGetErrorString(e));
        cudaGetLastError(); /* clear the sticky-free error so later calls start clean */
        n = 0;
    } else if (n == 0) {
        snprintf(device_reason, sizeof device_reason, "no CUDA device");
    }
    device_count = n;
}

extern "C" int cuda_device_count(void) {
    /* A function-local static is initialised once, thread-safely, in C++. */
    static const int once = (device_probe(), 0);
    (void)once;
    return device_count;
}

extern "C" const char *cuda_unavailable_reason(void) {
    cuda_device_count();
    return device_reason[0] ? device_reason : "CUDA is available";
}

/* ---- errors ------------------------------------------------------------- */

extern "C" void cuda_die_at(const char *file, int line, const char *api, const char *expr, const char *what) {
    die_at(file, line, "%s error in %s: %s", api, expr, what);
}

extern "C" const char *cublas_status_name(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "unknown cuBLAS status";
    }
}

/* ---- cuBLAS handle -------------------------------------------------------- */

extern "C" cublasHandle_t cublas_handle(void) {
    static thread_local cublasHandle_t h = nullptr;
    if (!h) {
        CUBLAS_CHECK(cublasCreate(&h));
        /* fp32 GEMMs must match the CPU: keep TF32 off (the default, said explicitly). */
        CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
        /* The stream every launch of this thread uses (the build's per-thread
         * default stream: see cuda_util.h), and a workspace of our own set after
         * it (cublasSetStream resets the workspace): cuBLAS then never allocates
         * during a GEMM, which a CUDA graph capture would not allow. Never freed,
         * as the handle. */
        CUBLAS_CHECK(cublasSetStream(h, cudaStreamPerThread));
        CUBLAS_CHECK(cublasSetWorkspace(h, cuda_malloc(CUBLAS_WORKSPACE_BYTES), CUBLAS_WORKSPACE_BYTES));
    }
    return h;
}

/* ---- memory and tensors ------------------------------------------------- */

/* Dies when the calling thread is capturing a CUDA graph: a buffer allocated or
 * freed then would not be in the graph (or would leave it a dangling pointer). */
static void no_capture(const char *what, size_t nbytes) {
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    CUDA_CHECK(cudaStreamIsCapturing(cudaStreamPerThread, &st));
    if (st != cudaStreamCaptureStatusNone)
        die("%s of %zu bytes during a CUDA graph capture: a buffer grew after the warm-up pass (a bug; "
            "SYNTHCXR_CUDA_GRAPHS=0 runs without graphs)", what, nbytes);
}

static unsigned long frees = 0;
extern "C" unsigned long cuda_free_count(void) { return __atomic_load_n(&frees, __ATOMIC_RELAXED); }

extern "C" void *cuda_malloc(size_t nbytes) {
    void *p = nullptr;
    if (nbytes == 0) nbytes = 1; /* a valid pointer for empty tensors */
    no_capture("cuda_malloc", nbytes);
    cudaError_t e = cudaMalloc(&p, nbytes);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        die("out of GPU memory allocating %zu bytes (%.1f MiB)", nbytes, (double)nbytes / (1 << 20));
    }
    CUDA_CHECK(e);
    return p;
}

extern "C" void cuda_free(void *p) {
    if (!p) return;
    no_capture("cuda_free", 0);
    CUDA_CHECK(cudaFree(p));
    __atomic_add_fetch(&frees, 1, __ATOMIC_RELAXED);
}

static tensor *tensor_cuda_alloc(dtype_t dt, int ndim, const int64_t *shape) {
    CHECKF(ndim >= 0 && ndim <= TENSOR_MAX_DIMS, "tensor_cuda_new: %d dimensions", ndim);
    int64_t n = shape_numel(ndim, shape);
    CHECKF(n >= 0, "tensor_cuda_new: bad shape");
    tensor *t = (tensor *)xcalloc(1, sizeof *t);
    t->dtype = dt;
    t->mem = MEM_CUDA;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data = cuda_malloc((size_t)n * dtype_size(dt));
    t->owns = 1;
    return t;
}

extern "C" tensor *tensor_cuda_new(dtype_t dt, int ndim, const int64_t *shape) {
    tensor *t = tensor_cuda_alloc(dt, ndim, shape);
    CUDA_CHECK(cudaMemset(t->data, 0, tensor_nbytes(t)));
    return t;
}

extern "C" tensor *tensor_cuda_upload(const tensor *cpu) {
    CHECKF(cpu->mem == MEM_CPU, "tensor_cuda_upload: source is not in CPU memory");
    tensor *t = tensor_cuda_alloc(cpu->dtype, cpu->ndim, cpu->shape);
    CUDA_CHECK(cudaMemcpy(t->data, cpu->data, tensor_nbytes(cpu), cudaMemcpyHostToDevice));
    return t;
}

extern "C" tensor *tensor_cuda_download(const tensor *gpu) {
    CHECKF(gpu->mem == MEM_CUDA, "tensor_cuda_download: source is not in GPU memory");
    tensor *t = tensor_new(gpu->dtype, gpu->ndim, gpu->shape);
    CUDA_CHECK(cudaMemcpy(t->data, gpu->data, tensor_nbytes(gpu), cudaMemcpyDeviceToHost));
    return t;
}

static void check_same(const tensor *a, const tensor *b, const char *what) {
    char sa[128], sb[128];
    CHECKF(a->dtype == b->dtype && tensor_same_shape(a, b->ndim, b->shape),
           "%s: %s %s and %s %s differ", what, dtype_name(a->dtype), shape_str(sa, sizeof sa, a->ndim, a->shape),
           dtype_name(b->dtype), shape_str(sb, sizeof sb, b->ndim, b->shape));
}

extern "C" void tensor_cuda_copy_to_device(tensor *gpu_dst, const tensor *cpu_src) {
    CHECKF(gpu_dst->mem == MEM_CUDA && cpu_src->mem == MEM_CPU, "tensor_cuda_copy_to_device: wrong memory");
    check_same(gpu_dst, cpu_src, "tensor_cuda_copy_to_device");
    CUDA_CHECK(cudaMemcpy(gpu_dst->data, cpu_src->data, tensor_nbytes(cpu_src), cudaMemcpyHostToDevice));
}

extern "C" void tensor_cuda_copy_to_host(tensor *cpu_dst, const tensor *gpu_src) {
    CHECKF(cpu_dst->mem == MEM_CPU && gpu_src->mem == MEM_CUDA, "tensor_cuda_copy_to_host: wrong memory");
    check_same(cpu_dst, gpu_src, "tensor_cuda_copy_to_host");
    CUDA_CHECK(cudaMemcpy(cpu_dst->data, gpu_src->data, tensor_nbytes(gpu_src), cudaMemcpyDeviceToHost));
}

extern "C" void tensor_cuda_free(tensor *t) {
    if (!t) return;
    CHECKF(t->mem == MEM_CUDA, "tensor_cuda_free on CPU memory: use tensor_free");
    if (t->owns) cuda_free(t->data);
    free(t);
}

/* ---- GEMM --------------------------------------------------------------- */

extern "C" void gemm_f32_cuda(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                              const float *b, int ldb, float beta, float *c, int ldc) {
    if (m <= 0 || n <= 0) return;
    /* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, and a
     * row-major matrix read column-major is its transpose: so swap the operands
     * (and m, n) and keep each one's own transpose flag. */
    cublasOperation_t opa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasSgemm(cublas_handle(), opb, opa, n, m, k, &alpha, b, ldb, a, lda, &beta, c, ldc));
}
