// other_emu.cpp — the norm, softmax, layout and im2col kernels of libcommon's
// *_cuda.cu, run on the CPU by fake_cuda.h with float storage, against their
// CPU twins in libcommon (grid-stride kernels with small grids, so the stride
// loop runs). See run.sh.
#include "fake_cuda.h"
extern "C" {
#include "norm.h"
#include "softmax.h"
#include "eltwise.h"
#include "upsample.h"
#include "conv2d.h"
#include "activation.h"
}
#include "other.inc"
static float frand() { return (float)rand() / RAND_MAX * 2 - 1; }
static int fails = 0;
static void cmp(const char *what, const std::vector<float> &got, const std::vector<float> &want, double tol) {
    double mx = 0, sc = 0; int bad = 0;
    for (size_t i = 0; i < want.size(); i++) {
        if (!std::isfinite(got[i])) bad++;
        mx = std::max(mx, (double)std::fabs(got[i] - want[i]));
        sc = std::max(sc, (double)std::fabs(want[i]));
    }
    double err = mx / (sc > 0 ? sc : 1);
    printf("%-40s err %.2e nonfinite %d\n", what, err, bad);
    if (bad || err > tol) fails++;
}
int main() {
    // groupnorm (+silu): slabs of 3 x 10037 values (2 chunks, the last partial), in place too
    for (int silu = 0; silu < 2; silu++)
        for (int in_place = 0; in_place < 2; in_place++) {
            int B = 2, C = 12, HW = 10037, G = 4, cpg = C / G;
            size_t slab = (size_t)cpg * HW;
            int chunks = (int)((slab + GN_CHUNK - 1) / GN_CHUNK);
            std::vector<float> x(B * C * HW), g(C), b(C), want(x.size()), got(x.size());
            std::vector<double> part((size_t)B * G * (2 * chunks + 1), NAN);
            for (auto &v : x) v = 2 * frand() + 3;
            for (auto &v : g) v = 1 + frand();
            for (auto &v : b) v = frand();
            (silu ? groupnorm_silu_forward : groupnorm_forward)(want.data(), x.data(), g.data(), b.data(), B, C, HW, G, 1e-5f);
            float *dst = in_place ? x.data() : got.data();
            launch({(unsigned)chunks, (unsigned)(B * G), 1}, GN_BLOCK, [&] { gn_stats_kernel<float>(part.data(), x.data(), slab, chunks); });
            launch({(unsigned)chunks, (unsigned)(B * G), 1}, GN_BLOCK, [&] {
                if (silu) gn_apply_kernel<float, 1>(dst, x.data(), g.data(), b.data(), part.data(), chunks, slab, cpg, HW, G, 1e-5f);
                else gn_apply_kernel<float, 0>(dst, x.data(), g.data(), b.data(), part.data(), chunks, slab, cpg, HW, G, 1e-5f);
            });
            if (in_place) got = x;
            cmp(silu ? (in_place ? "groupnorm_silu in place" : "groupnorm_silu") : (in_place ? "groupnorm in place" : "groupnorm"), got, want, 1e-5);
        }
    { // layernorm rows 9 (not a multiple of ROW_WARPS), ch 77, and no affine
        int R = 9, C = 77;
        std::vector<float> x(R * C), g(C), b(C), want(x.size()), got(x.size());
        for (auto &v : x) v = 2 * frand() + 5;
        for (auto &v : g) v = 1 + frand();
        for (auto &v : b) v = frand();
        layernorm_forward(want.data(), x.data(), g.data(), b.data(), R, C, 1e-5f);
        launch({(unsigned)((R + ROW_WARPS - 1) / ROW_WARPS), 1, 1}, ROW_WARPS * 32,
               [&] { layernorm_kernel<float>(got.data(), x.data(), g.data(), b.data(), R, C, 1e-5f); });
        cmp("layernorm", got, want, 1e-5);
        layernorm_forward(want.data(), x.data(), nullptr, nullptr, R, C, 1e-5f);
        launch({(unsigned)((R + ROW_WARPS - 1) / ROW_WARPS), 1, 1}, ROW_WARPS * 32,
               [&] { layernorm_kernel<float>(got.data(), x.data(), (float *)nullptr, (float *)nullptr, R, C, 1e-5f); });
        cmp("layernorm no affine", got, want, 1e-5);
    }
    { // softmax with a fully masked row
        int R = 6, C = 100;
        std::vector<float> x(R * C), want(x.size()), got(x.size());
        for (auto &v : x) v = 8 * frand();
        for (int c = 0; c < C; c++) x[C + c] = -INFINITY;
        for (int c = 0; c < C; c += 3) x[2 * C + c] = -INFINITY;
        softmax_forward(want.data(), x.data(), R, C);
        launch({(unsigned)((R + ROW_WARPS - 1) / ROW_WARPS), 1, 1}, ROW_WARPS * 32,
               [&] { softmax_kernel<float>(got.data(), x.data(), R, C); });
        cmp("softmax", got, want, 1e-6);
    }
    { // transpose [3, 45, 70]
        int Bt = 3, M = 45, N = 70;
        std::vector<float> x(Bt * M * N), want(x.size()), got(x.size());
        for (auto &v : x) v = frand();
        eltwise_transpose(want.data(), x.data(), Bt, M, N);
        launch({(unsigned)((N + TT - 1) / TT), (unsigned)((M + TT - 1) / TT), 2}, TT,
               [&] { transpose_kernel<float>(got.data(), x.data(), Bt, M, N); }, TROWS);
        cmp("transpose (grid.z 2 < batch 3)", got, want, 0);
    }
    { // concat, upsample, bias broadcasts: grid-stride with a small grid
        int Bc = 2, ca = 3, cb = 5, hw = 37;
        std::vector<float> a(Bc * ca * hw), b(Bc * cb * hw), want(Bc * (ca + cb) * hw), got(want.size());
        for (auto &v : a) v = frand();
        for (auto &v : b) v = frand();
        eltwise_concat_channels(want.data(), a.data(), ca, b.data(), cb, Bc, hw);
        launch({2, 1, 1}, 64, [&] { concat_kernel<float>(got.data(), a.data(), ca * hw, b.data(), cb * hw, want.size()); });
        cmp("concat", got, want, 0);
        int ch = 3, h = 5, w = 7;
        std::vector<float> x(Bc * ch * h * w), uw(4 * x.size()), ug(uw.size());
        for (auto &v : x) v = frand();
        upsample_nearest2x_forward(uw.data(), x.data(), Bc, ch, h, w);
        launch({3, 1, 1}, 64, [&] { upsample2x_kernel<float>(ug.data(), x.data(), Bc * ch, h, w); });
        cmp("upsample", ug, uw, 0);
        std::vector<float> xb(Bc * ch * hw), v(Bc * ch), xw;
        for (auto &e : xb) e = frand();
        for (auto &e : v) e = frand();
        xw = xb;
        eltwise_add_batch_channels(xw.data(), v.data(), Bc, ch, hw);
        launch({2, 1, 1}, 64, [&] { add_bcast_kernel<float>(xb.data(), v.data(), xb.size(), hw, Bc * ch, 0); });
        cmp("add_batch_channels", xb, xw, 1e-7);
    }
    // im2col + GEMM (host) against conv2d_forward: 3x3 s2 p1; runs of 7 pixels of one image, then 2 whole images per run
    for (int whole = 0; whole < 2; whole++) {
        conv2d_dims d = {3, 3, 11, 8, 4, 3, 3, 2, 2, 1, 1};
        int oh = conv2d_out_h(&d), ow = conv2d_out_w(&d), K = d.in_ch * 9, ohw = oh * ow;
        int64_t img = (int64_t)d.in_ch * d.in_h * d.in_w;
        std::vector<float> x(d.batch * img), wt(d.out_ch * K), want(d.batch * d.out_ch * ohw), got(want.size(), 0);
        for (auto &e : x) e = frand();
        for (auto &e : wt) e = frand();
        conv2d_forward(want.data(), x.data(), wt.data(), nullptr, &d);
        std::vector<float> col((size_t)2 * K * ohw, NAN);
        auto gemm = [&](const float *c, int np, float *o) { // o [out_ch, ohw-strided] = wt @ c [K, np]
            for (int oc = 0; oc < d.out_ch; oc++)
                for (int q = 0; q < np; q++) {
                    double s = 0;
                    for (int r = 0; r < K; r++) s += wt[oc * K + r] * c[(size_t)r * np + q];
                    o[(size_t)oc * ohw + q] = s;
                }
        };
        if (whole) {
            for (int b0 = 0; b0 < d.batch; b0 += 2) {
                int nb = std::min(2, d.batch - b0);
                size_t n = (size_t)nb * K * ohw;
                launch({2, 1, 1}, 64, [&] { im2col_kernel<float>(col.data(), x.data() + b0 * img, img, K, d.in_h, d.in_w, 3, 3, 2, 2, 1, 1, ow, 0, ohw, n); });
                for (int z = 0; z < nb; z++) gemm(col.data() + (size_t)z * K * ohw, ohw, got.data() + (size_t)(b0 + z) * d.out_ch * ohw);
            }
        } else {
            int run = 7;
            for (int b = 0; b < d.batch; b++)
                for (int64_t p0 = 0; p0 < ohw; p0 += run) {
                    int np = std::min<int64_t>(run, ohw - p0);
                    size_t n = (size_t)K * np;
                    launch({2, 1, 1}, 32, [&] { im2col_kernel<float>(col.data(), x.data() + b * img, img, K, d.in_h, d.in_w, 3, 3, 2, 2, 1, 1, ow, p0, np, n); });
                    gemm(col.data(), np, got.data() + (size_t)b * d.out_ch * ohw + p0);
                }
        }
        cmp(whole ? "im2col conv 3x3 s2 p1, 2 images per run" : "im2col conv 3x3 s2 p1, runs of 7", got, want, 1e-5);
    }
    // element-wise and activations, 16-byte packs (vec 1, V = 4 floats) and one by one, n not a multiple of 4
    for (int vec = 0; vec < 2; vec++) {
        size_t n = 1003;
        std::vector<float> a(n), b(n), want(n), got(n);
        for (auto &e : a) e = 6 * frand();
        for (auto &e : b) e = 6 * frand();
        char what[64];
        eltwise_axpby(want.data(), 1.25f, a.data(), -0.5f, b.data(), n);
        launch({2, 1, 1}, 64, [&] { binary_kernel<float, OP_AXPBY>(got.data(), a.data(), b.data(), 1.25f, -0.5f, n, vec); });
        snprintf(what, sizeof what, "axpby vec %d", vec), cmp(what, got, want, 0);
        eltwise_scale(want.data(), a.data(), 3.0f, n);
        launch({2, 1, 1}, 64, [&] { binary_kernel<float, OP_SCALE>(got.data(), a.data(), nullptr, 3.0f, 0.0f, n, vec); });
        snprintf(what, sizeof what, "scale vec %d", vec), cmp(what, got, want, 0);
        silu_forward(want.data(), a.data(), n);
        launch({2, 1, 1}, 64, [&] { act_kernel<float, ACT_SILU>(got.data(), a.data(), n, vec); });
        snprintf(what, sizeof what, "silu vec %d", vec), cmp(what, got, want, 0);
        gelu_forward(want.data(), a.data(), n);
        launch({2, 1, 1}, 64, [&] { act_kernel<float, ACT_GELU>(got.data(), a.data(), n, vec); });
        snprintf(what, sizeof what, "gelu vec %d", vec), cmp(what, got, want, 0);
        int rows = 17, ch = 36; // ch a multiple of 4
        std::vector<float> gin((size_t)rows * 2 * ch), gw((size_t)rows * ch), gg(gw.size());
        for (auto &e : gin) e = 4 * frand();
        geglu_forward(gw.data(), gin.data(), rows, ch);
        launch({2, 1, 1}, 64, [&] { geglu_kernel<float>(gg.data(), gin.data(), ch, gw.size(), vec); });
        snprintf(what, sizeof what, "geglu vec %d", vec), cmp(what, gg, gw, 0);
        int bc = 3, cc = 5, hw = 33;
        std::vector<float> xb((size_t)bc * cc * hw), bias(cc), xw;
        for (auto &e : xb) e = frand();
        for (auto &e : bias) e = frand();
        xw = xb;
        eltwise_add_bias_channels(xw.data(), bias.data(), bc, cc, hw);
        launch({2, 1, 1}, 64, [&] { add_bcast_kernel<float>(xb.data(), bias.data(), xb.size(), hw, cc, vec); });
        snprintf(what, sizeof what, "add_bias_channels vec %d", vec), cmp(what, xb, xw, 0);
    }
    printf("%d failures\n", fails);
    return fails != 0;
}
