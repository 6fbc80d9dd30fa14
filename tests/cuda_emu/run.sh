#!/bin/bash
# tests/cuda_emu/run.sh — runs libcommon's CUDA kernels on the CPU, without a
# GPU, to check their indexing and synchronisation logic (not their speed, not
# the hardware's rounding): each CUDA thread of a block becomes a std::thread,
# __syncthreads/__syncwarp and shuffles become std::barrier waits, a WMMA
# fragment is a whole 16x16 tile every lane holds, mma.sync is a warp
# collective on its documented fragment layouts, and cuBLAS's strided-batched
# GEMM a column-major loop (fake_cuda.h). The kernels' source is cut out of
# libcommon/*.cu by extract.sh, instantiated with float storage and compared
# with the CPU twins: attn_emu.cpp, the three attention kernels and the cuBLAS
# path for wide heads; other_emu.cpp, the norms, softmax, transpose, concat,
# upsample, broadcasts, element-wise ops and activations with and without
# 16-byte packs, and im2col; conv_emu.cpp, the implicit-GEMM convolution
# (built with AddressSanitizer, so reads outside the tensors show). Shared
# memory starts as NaN bytes, so a read of something never written shows.
# Needs g++ (C++20), perl and a CPU build of libcommon.a (make CUDA=0
# BUILD=build/cpu BINDIR=build/cpu/bin). Not part of make check: a development
# aid for machines with nvcc and no GPU. Prints one line per case and
# "N failures" per program; exits 1 on any failure.
set -euo pipefail
cd "$(dirname "$0")"
root=../..
lib=${CPU_LIB:-$root/build/cpu/libcommon.a}
[ -f "$lib" ] || { echo "run.sh: $lib missing: make CUDA=0 BUILD=build/cpu BINDIR=build/cpu/bin first" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
L=$root/libcommon
# __shared__ arrays become function statics: one block runs at a time, its threads share them.
{
  ./extract.sh $L/cuda_kernels.cuh warp_sum warp_max
  grep '^enum { FQ\|^enum { WQ\|^enum { MQ' $L/attention_cuda.cu
  ./extract.sh $L/cuda_kernels.cuh vec8
  ./extract.sh $L/attention_cuda.cu attn_fma_kernel wmma_smem attn_wmma_kernel mma_smem attn_mma_kernel
  # attn_blas launches its softmax kernel with <<< >>>: made a call to launch()
  ./extract.sh $L/attention_cuda.cu attn_softmax_rows_kernel attn_blas |
    perl -0pe 's/(attn_softmax_rows_kernel<T>)<<<(.*?), 128>>>\((.*?)\);/launch({$2, 1, 1}, 128, [&] { $1($3); });/s'
} | sed -e 's/__shared__ float/static float/' \
        -e 's/extern __shared__ __align__(128) unsigned char smem\[\];/unsigned char *smem = g_smem;/' >"$tmp/kernels.inc"
{
  ./extract.sh $L/cuda_kernels.cuh pack16 warp_sum warp_max block_sum
  grep '^#define GRID_STRIDE' -A1 $L/cuda_kernels.cuh
  grep '^enum { GN_BLOCK' $L/norm_cuda.cu
  ./extract.sh $L/norm_cuda.cu gn_stats_kernel gn_apply_kernel layernorm_kernel softmax_kernel
  grep '^enum { TT' $L/eltwise_cuda.cu
  grep '^enum { OP_ADD' $L/eltwise_cuda.cu
  ./extract.sh $L/eltwise_cuda.cu op1 binary_kernel transpose_kernel concat_kernel upsample2x_kernel add_bcast_kernel
  grep '^enum { ACT_GELU' $L/activation_cuda.cu
  ./extract.sh $L/activation_cuda.cu gelu1 act1 act_kernel geglu_kernel
  ./extract.sh $L/conv2d_cuda.cu im2col_kernel
} | sed -e 's/__shared__ /static /' >"$tmp/other.inc"
{
  ./extract.sh $L/cuda_kernels.cuh vec8
  grep '^enum { IG_BM' $L/conv2d_cuda.cu
  # conv_igemm_launch launches with <<< >>>: made a call to launch()
  ./extract.sh $L/conv2d_cuda.cu igemm_smem conv_igemm_kernel conv_igemm_launch |
    perl -0pe 's/(conv_igemm_kernel<T, BN>)<<<grid, IG_THREADS, .*?>>>\((.*?)\);/launch(grid, IG_THREADS, [&] { $1($2); });/s'
} | sed -e 's/extern __shared__ __align__(128) unsigned char smem\[\];/unsigned char *smem = g_smem;/' >"$tmp/conv.inc"
cxx=(g++ -std=c++20 -O1 -pthread -w -I. -I"$tmp" -I$L)
"${cxx[@]}" -o "$tmp/attn_emu" attn_emu.cpp
"${cxx[@]}" -o "$tmp/other_emu" other_emu.cpp "$lib" -fopenmp \
  -L/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -lm
"${cxx[@]}" -fsanitize=address -o "$tmp/conv_emu" conv_emu.cpp "$lib" -fopenmp \
  -L/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -lm
rc=0
"$tmp/attn_emu" || rc=1
"$tmp/other_emu" || rc=1
"$tmp/conv_emu" || rc=1
exit $rc
