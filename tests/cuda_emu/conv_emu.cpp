// conv_emu.cpp — the implicit-GEMM convolution of libcommon/conv2d_cuda.cu
// (conv_igemm_launch and conv_igemm_kernel, mma.sync fragments emulated by
// fake_cuda.h, float storage) against the CPU twin conv2d_forward, on every
// shape class the UNet and the VAE use: 3x3 stride 1 pad 1, 3x3 stride 2 pad 1
// (downsamplers), 3x3 stride 2 unpadded (the VAE's, after its own pad), 1x1,
// conv_in's 4 input channels (K = 36), with K not a multiple of the 32-wide
// step, out_ch past one 128-row tile, pixels past one tile, batch > 1, odd
// out_h*out_w; each with both pixel tiles (64 and 128), the 16-byte and the
// element-wise weight loads, and the paired and single output stores. The
// output is prefilled with NaN and followed by guard values, so a pixel never
// written or a write past the end shows; built with AddressSanitizer, so a
// read outside the input or the weight shows. See run.sh.
#include "fake_cuda.h"
using dim3 = dim3_;
extern "C" {
#include "conv2d.h"
}
#include "conv.inc"

static float frand() { return (float)rand() / RAND_MAX * 2 - 1; }

int main() {
    struct { conv2d_dims d; int bias; const char *what; } cases[] = {
        /* batch, in_ch, in_h, in_w, out_ch, k_h, k_w, stride_h, stride_w, pad_h, pad_w */
        {{2, 12, 9, 7, 20, 3, 3, 1, 1, 1, 1}, 1, "3x3 s1 p1, K 108 (not % 8), ohw 63 odd"},
        {{2, 16, 6, 5, 136, 3, 3, 1, 1, 1, 1}, 1, "3x3 s1 p1, K 144, out_ch 136 (2 row tiles)"},
        {{3, 8, 11, 9, 24, 3, 3, 2, 2, 1, 1}, 0, "3x3 s2 p1 (downsampler), batch 3"},
        {{2, 4, 9, 9, 5, 3, 3, 2, 2, 0, 0}, 1, "3x3 s2 p0 (VAE downsampler)"},
        {{2, 40, 7, 5, 33, 1, 1, 1, 1, 0, 0}, 1, "1x1, K 40, ohw 35 odd"},
        {{1, 36, 8, 6, 130, 1, 1, 1, 1, 0, 0}, 0, "1x1, out_ch 130"},
        {{2, 4, 10, 10, 32, 3, 3, 1, 1, 1, 1}, 1, "conv_in: in_ch 4, K 36"},
        {{2, 8, 16, 12, 16, 3, 3, 1, 1, 1, 1}, 1, "3x3 s1 p1, 384 pixels (3 or 6 tiles)"},
        {{1, 3, 5, 4, 7, 3, 2, 1, 2, 2, 0}, 1, "3x2 s1x2 p2x0, K 18"},
    };
    int fails = 0;
    for (auto &c : cases) {
        const conv2d_dims *d = &c.d;
        const int oh = conv2d_out_h(d), ow = conv2d_out_w(d), ohw = oh * ow, K = d->in_ch * d->k_h * d->k_w;
        const size_t nin = (size_t)d->batch * d->in_ch * d->in_h * d->in_w, nw = (size_t)d->out_ch * K;
        const size_t nout = (size_t)d->batch * d->out_ch * ohw;
        std::vector<float> x(nin), w(nw), bias(d->out_ch), want(nout);
        for (auto &e : x) e = frand();
        for (auto &e : w) e = 0.3f * frand();
        for (auto &e : bias) e = frand();
        const float *bp = c.bias ? bias.data() : nullptr;
        conv2d_forward(want.data(), x.data(), w.data(), bp, d);
        for (int bn = 64; bn <= 128; bn *= 2)
            for (int vec_a = 0; vec_a <= (K % 8 == 0); vec_a++)
                for (int pair = 0; pair <= (ohw % 2 == 0); pair++) {
                    std::vector<float> out(nout + 8, NAN);
                    for (int i = 0; i < 8; i++) out[nout + i] = 777.0f;
                    if (bn == 64) conv_igemm_launch<float, 64>(out.data(), x.data(), w.data(), bp, d, vec_a, pair);
                    else conv_igemm_launch<float, 128>(out.data(), x.data(), w.data(), bp, d, vec_a, pair);
                    double mx = 0, sc = 0;
                    int bad = 0, guard = 0;
                    for (size_t i = 0; i < nout; i++) {
                        if (!std::isfinite(out[i])) bad++;
                        mx = std::max(mx, (double)std::fabs(out[i] - want[i]));
                        sc = std::max(sc, (double)std::fabs(want[i]));
                    }
                    for (int i = 0; i < 8; i++) guard += out[nout + i] != 777.0f;
                    const double err = mx / (sc > 0 ? sc : 1);
                    printf("igemm BN %3d vec_a %d pair %d %-44s err %.2e nonfinite %d guard %d\n", bn, vec_a, pair,
                           c.what, err, bad, guard);
                    if (err > 1e-5 || bad || guard) fails++;
                }
    }
    printf("%d failures\n", fails);
    return fails != 0;
}
