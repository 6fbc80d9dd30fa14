// fake_cuda.h — host emulation of the few CUDA features libcommon's kernels
// use: one std::thread per CUDA thread, std::barrier for __syncthreads,
// __syncwarp and shuffles, WMMA fragments as whole 16x16 tiles held by every
// lane, mma.sync m16n8k16 as a warp collective on its documented fragment
// layouts, and the cuBLAS GEMM attn_blas calls. Float storage only (from_f/to_f
// are identities).
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>
#include <cstdint>
using std::min;
struct dim3_ { unsigned x = 0, y = 0, z = 0; };
thread_local dim3_ threadIdx, blockIdx;
dim3_ blockDim, gridDim;
std::barrier<> *blk_bar;
std::barrier<> *warp_bar[64];
float shfl_buf[64][32];
alignas(128) unsigned char g_smem[300000];
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(x) alignas(x)
#define __syncthreads() blk_bar->arrive_and_wait()
#define __syncwarp() warp_bar[threadIdx.x >> 5]->arrive_and_wait()
double shfl_dbuf[64][32];
template <class V> static V __shfl_xor_sync(unsigned, V v, int m) {
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    warp_bar[w]->arrive_and_wait();
    shfl_dbuf[w][l] = (double)v;
    warp_bar[w]->arrive_and_wait();
    return (V)shfl_dbuf[w][l ^ m];
}
static inline float to_f(float x) { return x; }
template <typename T> T from_f(float x) { return x; }
namespace wmma {
struct row_major {}; struct col_major {}; struct matrix_a {}; struct matrix_b {}; struct accumulator {};
enum layout_t { mem_row_major };
template <class Use, int M, int N, int K, class T, class L = void> struct fragment { float x[16][16]; };
template <class F> void fill_fragment(F &f, float v) { for (auto &r : f.x) for (auto &e : r) e = v; }
template <class T> void load_matrix_sync(fragment<matrix_a, 16, 16, 16, T, row_major> &f, const T *p, unsigned ld) {
    for (int i = 0; i < 16; i++) for (int j = 0; j < 16; j++) f.x[i][j] = p[i * ld + j];
}
template <class T> void load_matrix_sync(fragment<matrix_b, 16, 16, 16, T, col_major> &f, const T *p, unsigned ld) {
    for (int k = 0; k < 16; k++) for (int n = 0; n < 16; n++) f.x[k][n] = p[n * ld + k];
}
template <class T> void load_matrix_sync(fragment<matrix_b, 16, 16, 16, T, row_major> &f, const T *p, unsigned ld) {
    for (int k = 0; k < 16; k++) for (int n = 0; n < 16; n++) f.x[k][n] = p[k * ld + n];
}
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &f, const float *p, unsigned ld, layout_t) {
    for (int i = 0; i < 16; i++) for (int j = 0; j < 16; j++) f.x[i][j] = p[i * ld + j];
}
template <class A, class B>
void mma_sync(fragment<accumulator, 16, 16, 16, float> &d, const A &a, const B &b,
              const fragment<accumulator, 16, 16, 16, float> &c) {
    float r[16][16];
    for (int i = 0; i < 16; i++) for (int j = 0; j < 16; j++) {
        float s = c.x[i][j];
        for (int k = 0; k < 16; k++) s += a.x[i][k] * b.x[k][j];
        r[i][j] = s;
    }
    memcpy(d.x, r, sizeof r);
}
inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f, unsigned ld, layout_t) {
    // all lanes must have arrived (a collective); lane 0 writes
    __syncwarp();
    if ((threadIdx.x & 31) == 0) for (int i = 0; i < 16; i++) for (int j = 0; j < 16; j++) p[i * ld + j] = f.x[i][j];
    __syncwarp();
}
}
// mma.sync.m16n8k16 with its documented fragment layouts (lane = 4 g + t), as
// a warp collective: every lane posts its fragments, then computes its own D.
struct f2 { float x, y; };
template <typename T> struct pair_of { typedef f2 type; };
static inline f2 make_pair2(float x, float y) { return {x, y}; }
static f2 mma_a[64][32][4], mma_b[64][32][2];
static void mma16816(float (&d)[4], const f2 (&a)[4], const f2 (&b)[2]) {
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    warp_bar[w]->arrive_and_wait();
    for (int i = 0; i < 4; i++) mma_a[w][l][i] = a[i];
    for (int i = 0; i < 2; i++) mma_b[w][l][i] = b[i];
    warp_bar[w]->arrive_and_wait();
    float A[16][16], B[16][8];
    for (int L = 0; L < 32; L++) {
        int g = L >> 2, t = L & 3;
        const f2 *fa = mma_a[w][L], *fb = mma_b[w][L];
        A[g][2 * t] = fa[0].x, A[g][2 * t + 1] = fa[0].y;
        A[g + 8][2 * t] = fa[1].x, A[g + 8][2 * t + 1] = fa[1].y;
        A[g][2 * t + 8] = fa[2].x, A[g][2 * t + 9] = fa[2].y;
        A[g + 8][2 * t + 8] = fa[3].x, A[g + 8][2 * t + 9] = fa[3].y;
        B[2 * t][g] = fb[0].x, B[2 * t + 1][g] = fb[0].y;
        B[2 * t + 8][g] = fb[1].x, B[2 * t + 9][g] = fb[1].y;
    }
    int g = l >> 2, t = l & 3;
    for (int e = 0; e < 4; e++) {
        int r = g + (e >= 2 ? 8 : 0), c = 2 * t + (e & 1);
        float s = d[e];
        for (int k = 0; k < 16; k++) s += A[r][k] * B[k][c];
        d[e] = s;
    }
    warp_bar[w]->arrive_and_wait();
}
// cuBLAS, as far as attn_blas uses it: column-major strided-batched GEMM on
// float data (every storage type is float here), beta == 0 never reads C.
typedef int cudaDataType_t;
enum { CUDA_R_32F, CUDA_R_16F, CUDA_R_16BF };
enum { CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT };
static inline int cublas_handle() { return 0; }
#define CUBLAS_CHECK(x) (x)
#define CUDA_CHECK_LAUNCH()
static int cublasGemmStridedBatchedEx(int, int opa, int opb, int m, int n, int k, const float *alpha, const void *A,
                                      int, int lda, long long sA, const void *B, int, int ldb, long long sB,
                                      const float *beta, void *C, int, int ldc, long long sC, int batch, int, int) {
    for (int z = 0; z < batch; z++) {
        const float *a = (const float *)A + z * sA, *b = (const float *)B + z * sB;
        float *c = (float *)C + z * sC;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int p = 0; p < k; p++)
                    s += (double)(opa == CUBLAS_OP_N ? a[i + (size_t)p * lda] : a[p + (size_t)i * lda]) *
                         (opb == CUBLAS_OP_N ? b[p + (size_t)j * ldb] : b[j + (size_t)p * ldb]);
                c[i + (size_t)j * ldc] = *alpha * s + (*beta != 0 ? *beta * c[i + (size_t)j * ldc] : 0.0f);
            }
    }
    return 0;
}
static std::vector<float> emu_ws;
static void *attn_blas_ws(size_t bytes) {
    emu_ws.assign(bytes / sizeof(float) + 1, NAN);
    return emu_ws.data();
}
#define ATT_BLAS_BUDGET ((size_t)20000) // small: several query blocks

template <class K> void launch(dim3_ grid, int threads, K kern, int by = 1) {
    blockDim.x = threads; blockDim.y = by; gridDim = grid;
    if (by > 1) { // 2-D blocks: no warp-level ops in such kernels here
        for (unsigned z = 0; z < grid.z; z++) for (unsigned y = 0; y < grid.y; y++) for (unsigned x = 0; x < grid.x; x++) {
            std::barrier<> bb(threads * by);
            blk_bar = &bb;
            std::vector<std::thread> ts;
            for (int ty = 0; ty < by; ty++) for (int t = 0; t < threads; t++)
                ts.emplace_back([=] { threadIdx.x = t; threadIdx.y = ty; blockIdx.x = x; blockIdx.y = y; blockIdx.z = z; kern(); });
            for (auto &t : ts) t.join();
        }
        return;
    }
    for (unsigned z = 0; z < grid.z; z++) for (unsigned y = 0; y < grid.y; y++) for (unsigned x = 0; x < grid.x; x++) {
        std::barrier<> bb(threads);
        blk_bar = &bb;
        std::vector<std::barrier<> *> wb;
        for (int w = 0; w < threads / 32; w++) warp_bar[w] = new std::barrier<>(32);
        memset(g_smem, 0xff, sizeof g_smem); // NaN garbage: uninitialised reads show
        std::vector<std::thread> ts;
        for (int t = 0; t < threads; t++)
            ts.emplace_back([=] { threadIdx.x = t; blockIdx.x = x; blockIdx.y = y; blockIdx.z = z; kern(); });
        for (auto &t : ts) t.join();
        for (int w = 0; w < threads / 32; w++) delete warp_bar[w];
    }
}
