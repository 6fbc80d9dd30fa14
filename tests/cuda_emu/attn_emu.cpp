// attn_emu.cpp — the three attention kernels of libcommon/attention_cuda.cu, run on
// the CPU by fake_cuda.h with float storage (the WMMA kernel's probabilities
// are then not rounded; the mma kernel runs with and without 16-byte loads), against a double-precision attention with the CPU
// twin's causal / key-mask / fully-masked semantics. See run.sh.
#include "fake_cuda.h"
#include "kernels.inc"

static float frand() { return (float)rand() / RAND_MAX * 2 - 1; }

static void ref(float *out, const float *q, const float *k, const float *v, const float *mask, int B, int H, int tq, int tk,
                int D, float scale, int causal) {
    for (int b = 0; b < B; b++) for (int h = 0; h < H; h++) for (int i = 0; i < tq; i++) {
        std::vector<double> s(tk);
        double mx = -INFINITY;
        for (int j = 0; j < tk; j++) {
            if (causal && j > i) { s[j] = -INFINITY; continue; }
            double d = 0;
            for (int c = 0; c < D; c++) d += (double)q[(((size_t)b * tq + i) * H + h) * D + c] * k[(((size_t)b * tk + j) * H + h) * D + c];
            s[j] = d * scale + (mask ? mask[b * tk + j] : 0);
            mx = std::max(mx, s[j]);
        }
        double l = 0;
        std::vector<double> o(D, 0);
        if (mx != -INFINITY)
            for (int j = 0; j < tk; j++) {
                double p = std::exp(s[j] - mx);
                l += p;
                for (int c = 0; c < D; c++) o[c] += p * v[(((size_t)b * tk + j) * H + h) * D + c];
            }
        for (int c = 0; c < D; c++) out[(((size_t)b * tq + i) * H + h) * D + c] = l > 0 ? o[c] / l : 0;
    }
}

int main() {
    struct { int B, H, tq, tk, D, causal, mask; } cases[] = {
        {1, 1, 1, 1, 64, 0, 0}, {2, 2, 77, 77, 64, 1, 0}, {2, 1, 100, 37, 40, 0, 1}, {1, 1, 70, 130, 80, 0, 0},
        {2, 1, 65, 90, 160, 1, 1}, {3, 1, 33, 70, 64, 0, 2}, {1, 1, 100, 50, 64, 1, 0}, {1, 1, 47, 47, 24, 0, 0},
        {1, 2, 70, 75, 33, 1, 1}, {1, 1, 130, 140, 128, 0, 1}, {2, 1, 40, 45, 512, 0, 2}, {1, 2, 50, 30, 200, 1, 1},
    };
    int fails = 0;
    for (auto &c : cases) {
        size_t nq = (size_t)c.B * c.tq * c.H * c.D, nk = (size_t)c.B * c.tk * c.H * c.D;
        std::vector<float> q(nq), k(nk), v(nk), want(nq), mask(c.B * c.tk, 0.0f);
        for (auto &x : q) x = 1.5f * frand();
        for (auto &x : k) x = 1.5f * frand();
        for (auto &x : v) x = frand();
        if (c.mask) for (int b = 0; b < c.B; b++) {
            int keep = 1 + rand() % c.tk;
            for (int j = 0; j < c.tk; j++) mask[b * c.tk + j] = j < keep ? 0 : (j & 1 ? -INFINITY : -1e4f);
            if (c.mask == 2 && b == 1) for (int j = 0; j < c.tk; j++) mask[b * c.tk + j] = -INFINITY;
        }
        const float *mp = c.mask ? mask.data() : nullptr;
        float scale = 1.0f / std::sqrt((float)c.D);
        ref(want.data(), q.data(), k.data(), v.data(), mp, c.B, c.H, c.tq, c.tk, c.D, scale, c.causal);
        for (int impl = 1; impl <= 4; impl++) {
            if ((c.D > 160) != (impl == 4)) continue; /* the kernels stop at 160; the cuBLAS path is for wider */
            std::vector<float> out(nq, 12345.0f);
            if (impl == 1) {
                dim3_ g{(unsigned)((c.tq + FQ - 1) / FQ), (unsigned)c.H, (unsigned)c.B};
                auto kern = [&] {
                    if (c.D <= 64) attn_fma_kernel<float, 64>(out.data(), q.data(), k.data(), v.data(), mp, c.H, c.tq, c.tk, c.D, scale, c.causal);
                    else if (c.D <= 128) attn_fma_kernel<float, 128>(out.data(), q.data(), k.data(), v.data(), mp, c.H, c.tq, c.tk, c.D, scale, c.causal);
                    else attn_fma_kernel<float, 160>(out.data(), q.data(), k.data(), v.data(), mp, c.H, c.tq, c.tk, c.D, scale, c.causal);
                };
                launch(g, FTHREADS, kern);
            } else if (impl == 4) {
                attn_blas<float>(out.data(), q.data(), k.data(), v.data(), mp, c.B, c.H, c.tq, c.tk, c.D, scale, c.causal, CUDA_R_32F);
            } else if (impl == 3) {
                dim3_ g{(unsigned)((c.tq + MQ - 1) / MQ), (unsigned)c.H, (unsigned)c.B};
                int vec = c.D % 8 == 0;
                auto kern = [&] {
                    if (c.D <= 48) attn_mma_kernel<float, 48>(out.data(), q.data(), k.data(), v.data(), mp, c.H, c.tq, c.tk, c.D, scale, c.causal, vec);
                    else if (c.D <= 64) attn_mma_kernel<float, 64>(out.data(), q.data(), k.data(), v.data(), mp, c.H, c.tq, c.tk, c.D, scale, c.causal, vec);
                    else if (c.D <= 80) attn_mma_kernel<float, 80>(out.data(), q.data(), k.data(), v.data(), mp, c.H, c.tq, c.tk, c.D, scale, c.causal, vec);
                    else if (c.D <= 128) attn_mma_kernel<float, 128>(out.data(), q.data(), k.data(), v.data(), mp, c.H, c.tq, c.tk, c.D, scale, c.causal, vec);
                    else attn_mma_kernel<float, 160>(out.data(), q.data(), k.data(), v.data(), mp, c.H, c.tq, c.tk, c.D, scale, c.causal, vec);
                };
                launch(g, MTHREADS, kern);
            } else {
                dim3_ g{(unsigned)((c.tq + WQ - 1) / WQ), (unsigned)c.H, (unsigned)c.B};
                auto kern = [&] {
                    if (c.D <= 48) attn_wmma_kernel<float, 48>(out.data(), q.data(), k.data(), v.data(), mp, c.H, c.tq, c.tk, c.D, scale, c.causal);
                    else if (c.D <= 64) attn_wmma_kernel<float, 64>(out.data(), q.data(), k.data(), v.data(), mp, c.H, c.tq, c.tk, c.D, scale, c.causal);
                    else if (c.D <= 80) attn_wmma_kernel<float, 80>(out.data(), q.data(), k.data(), v.data(), mp, c.H, c.tq, c.tk, c.D, scale, c.causal);
                    else if (c.D <= 128) attn_wmma_kernel<float, 128>(out.data(), q.data(), k.data(), v.data(), mp, c.H, c.tq, c.tk, c.D, scale, c.causal);
                    else attn_wmma_kernel<float, 160>(out.data(), q.data(), k.data(), v.data(), mp, c.H, c.tq, c.tk, c.D, scale, c.causal);
                };
                launch(g, WTHREADS, kern);
            }
            double mx = 0, sc = 0;
            int bad = 0;
            for (size_t i = 0; i < nq; i++) {
                if (!std::isfinite(out[i])) bad++;
                mx = std::max(mx, (double)std::fabs(out[i] - want[i]));
                sc = std::max(sc, (double)std::fabs(want[i]));
            }
            double err = mx / (sc > 0 ? sc : 1);
            printf("%s B%d H%d tq%d tk%d D%d causal%d mask%d: err %.2e nonfinite %d\n", impl == 1 ? "fma " : impl == 2 ? "wmma" : impl == 3 ? "mma " : "blas", c.B, c.H, c.tq, c.tk, c.D, c.causal, c.mask, err, bad);
            if (err > 1e-5 || bad) fails++;
        }
    }
    printf("%d failures\n", fails);
    return fails != 0;
}
