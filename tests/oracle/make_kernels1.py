"""Reference data for the first CPU kernels (tests/unit/test_gemm.c, test_conv2d.c,
test_pool.c, test_upsample.c): seeded inputs and the float32 results of
torch.matmul / torch.nn.functional for GEMM (all transposes, odd sizes, leading
dimensions wider than the rows, alpha/beta), batched GEMM, Linear, Conv2d,
MaxPool2d, AvgPool2d, global average pooling and nearest 2x upsampling."""
import torch
import torch.nn.functional as F

from oracle_util import save

# Plain IEEE float32 everywhere: no TF32/bf16 shortcuts, denormals kept.
torch.set_float32_matmul_precision("highest")
torch.set_flush_denormal(False)
for mod in (getattr(torch.backends, "mkldnn", None), getattr(getattr(torch.backends, "mkldnn", None), "matmul", None),
            getattr(getattr(torch.backends, "mkldnn", None), "conv", None)):
    if mod is not None and hasattr(mod, "fp32_precision"):
        mod.fp32_precision = "ieee"
torch.manual_seed(1234)

t = {}


def stored(rows, cols, ld):
    """A rows x ld buffer whose first cols columns are the matrix; the rest is junk
    the kernel must not read into the result (or, for C, must leave alone)."""
    return torch.randn(rows, ld)


# GEMM: C[m,n] = alpha * op(A) op(B) + beta * C, op = identity or transpose.
m, n, k, alpha, beta = 37, 53, 29, 0.7, -0.3
for ta in (0, 1):
    for tb in (0, 1):
        name = f"gemm_t{ta}{tb}"
        a_rows, a_cols = (k, m) if ta else (m, k)
        b_rows, b_cols = (n, k) if tb else (k, n)
        lda, ldb, ldc = a_cols + 3, b_cols + 2, n + 5
        a = stored(a_rows, a_cols, lda)
        b = stored(b_rows, b_cols, ldb)
        c = stored(m, n, ldc)
        opa = a[:, :a_cols].T if ta else a[:, :a_cols]
        opb = b[:, :b_cols].T if tb else b[:, :b_cols]
        out = c.clone()
        out[:, :n] = alpha * torch.matmul(opa, opb) + beta * c[:, :n]
        t[name + ".a"], t[name + ".b"], t[name + ".c_in"], t[name + ".c_out"] = a, b, c, out
        t[name + ".dims"] = torch.tensor([m, n, k, lda, ldb, ldc], dtype=torch.int32)
# beta = 0: C's old contents (NaN in the C test) must not matter.
t["gemm_t00.ab"] = alpha * torch.matmul(t["gemm_t00.a"][:, :k], t["gemm_t00.b"][:, :n])


def batched(name, batch, m, n, k, ta, tb, alpha, beta, gap, half=False):
    """Matrices batch-strided with `gap` unused floats between them. half: the
    inputs are stored as float16 (to keep the fixture small) and the reference
    is computed from exactly those rounded values; the C test widens them."""
    a_rows, a_cols = (k, m) if ta else (m, k)
    b_rows, b_cols = (n, k) if tb else (k, n)
    sa, sb, sc = a_rows * a_cols + gap, b_rows * b_cols + gap, m * n + gap
    a = torch.randn(batch * sa)
    b = torch.randn(batch * sb)
    c = torch.randn(batch * sc)
    if half:
        a, b, c = a.half().float(), b.half().float(), c.half().float()
    out = c.clone()
    for i in range(batch):
        A = a[i * sa:i * sa + a_rows * a_cols].view(a_rows, a_cols)
        B = b[i * sb:i * sb + b_rows * b_cols].view(b_rows, b_cols)
        C = c[i * sc:i * sc + m * n].view(m, n)
        res = alpha * torch.matmul(A.T if ta else A, B.T if tb else B)
        if beta != 0:
            res = res + beta * C
        out[i * sc:i * sc + m * n] = res.reshape(-1)
    if half:
        t[name + ".a"], t[name + ".b"], t[name + ".c_in"] = a.half(), b.half(), c.half()
    else:
        t[name + ".a"], t[name + ".b"], t[name + ".c_in"] = a, b, c
    t[name + ".c_out"] = out
    t[name + ".dims"] = torch.tensor([batch, m, n, k, ta, tb, sa, sb, sc], dtype=torch.int32)
    t[name + ".alpha_beta"] = torch.tensor([alpha, beta])


batched("bgemm_small", 5, 17, 23, 19, 0, 1, 1.3, 0.5, 7)     # many small: one matrix per thread
# large (m n k >= 2^21, gemm.c's GEMM_SMALL_WORK): 2 one per thread, 1 on all threads
batched("bgemm_large", 3, 130, 131, 129, 1, 0, 0.9, 0.0, 3, half=True)

# Linear (torch.nn.Linear): out = x @ W^T + b.
x = torch.randn(7, 29)
w = torch.randn(13, 29)
bias = torch.randn(13)
t["linear.x"], t["linear.w"], t["linear.b"] = x, w, bias
t["linear.out_bias"] = F.linear(x, w, bias)
t["linear.out_nobias"] = F.linear(x, w)

# Conv2d: name, batch, in_ch, h, w, out_ch, kernel, stride, pad, bias
convs = [
    ("conv_3x3_s1", 2, 8, 12, 10, 16, 3, 1, 1, True),     # non-square, batch 2
    ("conv_3x3_s2", 1, 16, 15, 16, 16, 3, 2, 1, True),    # diffusers Downsample2D
    ("conv_3x3_s2p0", 1, 8, 17, 17, 8, 3, 2, 0, True),    # VAE Downsample2D (it pads itself)
    ("conv_1x1", 2, 16, 9, 11, 24, 1, 1, 0, True),
    ("conv_1x1_nobias", 1, 24, 7, 5, 16, 1, 1, 0, False),
    ("conv_1x1_s2", 1, 16, 14, 14, 32, 1, 2, 0, False),   # ResNet projection shortcut
    ("conv_7x7_s2", 1, 3, 33, 30, 16, 7, 2, 3, False),    # ResNet stem
    ("conv_tiled", 1, 16, 20, 18, 24, 3, 1, 1, True),     # test_conv2d runs it in many tiles
]
for name, bsz, cin, h, wd, cout, kk, s, p, has_bias in convs:
    x = torch.randn(bsz, cin, h, wd)
    w = torch.randn(cout, cin, kk, kk) / (cin * kk * kk) ** 0.5
    b = torch.randn(cout) if has_bias else None
    t[name + ".x"], t[name + ".w"] = x, w
    if b is not None:
        t[name + ".b"] = b
    t[name + ".out"] = F.conv2d(x, w, b, stride=s, padding=p)
    t[name + ".dims"] = torch.tensor([bsz, cin, h, wd, cout, kk, kk, s, s, p, p], dtype=torch.int32)

# Pooling: name, batch, ch, h, w, kernel, stride, pad
x = torch.randn(2, 3, 13, 12)
t["maxpool_3x3_s2_p1.x"] = x
t["maxpool_3x3_s2_p1.out"] = F.max_pool2d(x, 3, 2, 1)
x = torch.randn(2, 3, 12, 10)
t["avgpool_2x2_s2.x"] = x
t["avgpool_2x2_s2.out"] = F.avg_pool2d(x, 2, 2)
x = torch.randn(1, 4, 9, 7)
t["avgpool_3x3_s1_p1.x"] = x
t["avgpool_3x3_s1_p1.out"] = F.avg_pool2d(x, 3, 1, 1)  # count_include_pad=True (torch default)
x = torch.randn(2, 5, 7, 7) + 0.5
t["global_avgpool.x"] = x
t["global_avgpool.out"] = F.adaptive_avg_pool2d(x, 1).flatten(1)

# Nearest 2x upsampling (diffusers Upsample2D).
x = torch.randn(2, 3, 5, 4)
t["upsample.x"] = x
t["upsample.out"] = F.interpolate(x, scale_factor=2.0, mode="nearest")

save("kernels1.safetensors", t)
