// The CUDA kernels of the Barlow Twins loss op around its GEMMs (launched by
// barlow_twins_loss_cuda.cu), free of ATen so that CI runs them on a CPU emulation of their CUDA
// constructs (tests/cuda_emulation/barlow_twins.cpp). Notation of barlow_twins_loss.cpp.
//
// standardize_kernel: one block per strip of kCols columns of both views (columns j and D + j of
//   A = [A1 | A2]), blockDim.x = kCols * kRowGroups threads; each thread walks the rows
//   n = group, group + kRowGroups, ... of its column. Three passes over the strip (column means;
//   sums of squared deviations, so the variance is the two-pass one; then A, written as
//   Tensor[N, 2D] in the accumulation type, and r_j = sum_n A1[n, j] A2[n, j]), reading z1, z2 in
//   their own dtype and strides (no concatenated or converted copy). Each block also writes the
//   sum over its columns of c0 + c1 r_j + c2 r_j^2 (the per-dimension part of the loss) to
//   partial[block], summed in a fixed order: deterministic.
// finish_kernel: one block; loss = sum of the partials (fixed order) + coef * frob[0], in the
//   output dtype (the GEMM-side term frob = <G1, G2> comes from cuBLAS).
// standardize_backward_kernel: the same strips; for view v and column j,
//   g[n] = grad (k P[v, n, j] + A[n, (1 - v) D + j] w_j),  w_j = w1 r_j + w0,
//   with P = [G2 A1, G1 A2] from the GEMMs, then the batch-standardisation backward
//   dz[v, n, j] = invstd (g - mean_n g - A_self mean_n (g A_self)): two passes, written as
//   Tensor[2, N, D] in the output dtype (dz[0], dz[1]: the contiguous gradients of z1, z2). grad is read from device memory (no host synchronisation).
#pragma once

#include <cstdint>

namespace tsvq {
namespace bt {

constexpr int kCols = 32;      // columns of a strip (one warp's lanes: coalesced row reads)
constexpr int kRowGroups = 8;  // threads down a column
constexpr int kThreads = kCols * kRowGroups;
constexpr int kFinishThreads = 256;

template <typename acc_t>
__device__ __forceinline__ acc_t inv_sqrt(acc_t v) {
  return acc_t(1) / sqrt(v);
}

// Sum over the kRowGroups row groups of column tx, returned to every thread of the column. Ends
// with a barrier, so the buffer can be reused at once.
template <typename acc_t>
__device__ __forceinline__ acc_t column_sum(acc_t (*buf)[kCols], acc_t v, int tx, int ty) {
  buf[ty][tx] = v;
  __syncthreads();
  acc_t s = 0;
  for (int h = 0; h < kRowGroups; ++h) s += buf[h][tx];
  __syncthreads();
  return s;
}

template <typename in_t, typename acc_t>
__global__ void __launch_bounds__(kThreads) standardize_kernel(
    const in_t* __restrict__ z1, const in_t* __restrict__ z2, int64_t N, int64_t D, int64_t s1n, int64_t s1d,
    int64_t s2n, int64_t s2d, acc_t eps, acc_t c0, acc_t c1, acc_t c2, acc_t* __restrict__ a,
    acc_t* __restrict__ invstd, acc_t* __restrict__ r, acc_t* __restrict__ partial) {
  __shared__ acc_t buf1[kRowGroups][kCols];
  __shared__ acc_t buf2[kRowGroups][kCols];
  const int tx = threadIdx.x % kCols, ty = threadIdx.x / kCols;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kCols + tx;
  const bool live = j < D;
  const in_t* p1 = z1 + (live ? j * s1d : 0);
  const in_t* p2 = z2 + (live ? j * s2d : 0);
  const acc_t inv_n = acc_t(1) / static_cast<acc_t>(N);

  acc_t s1 = 0, s2 = 0;
  if (live)
    for (int64_t n = ty; n < N; n += kRowGroups) {
      s1 += static_cast<acc_t>(p1[n * s1n]);
      s2 += static_cast<acc_t>(p2[n * s2n]);
    }
  const acc_t m1 = column_sum(buf1, s1, tx, ty) * inv_n;
  const acc_t m2 = column_sum(buf2, s2, tx, ty) * inv_n;

  acc_t q1 = 0, q2 = 0;
  if (live)
    for (int64_t n = ty; n < N; n += kRowGroups) {
      const acc_t d1 = static_cast<acc_t>(p1[n * s1n]) - m1, d2 = static_cast<acc_t>(p2[n * s2n]) - m2;
      q1 += d1 * d1;
      q2 += d2 * d2;
    }
  const acc_t i1 = inv_sqrt(column_sum(buf1, q1, tx, ty) * inv_n + eps);
  const acc_t i2 = inv_sqrt(column_sum(buf2, q2, tx, ty) * inv_n + eps);

  acc_t dot = 0;
  if (live)
    for (int64_t n = ty; n < N; n += kRowGroups) {
      const acc_t a1 = (static_cast<acc_t>(p1[n * s1n]) - m1) * i1;
      const acc_t a2 = (static_cast<acc_t>(p2[n * s2n]) - m2) * i2;
      a[n * 2 * D + j] = a1;
      a[n * 2 * D + D + j] = a2;
      dot += a1 * a2;
    }
  const acc_t rj = column_sum(buf1, dot, tx, ty);
  if (ty == 0) {
    if (live) {
      r[j] = rj;
      invstd[j] = i1;
      invstd[D + j] = i2;
    }
    buf2[0][tx] = live ? c0 + c1 * rj + c2 * rj * rj : acc_t(0);
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    acc_t s = 0;
    for (int c = 0; c < kCols; ++c) s += buf2[0][c];
    partial[blockIdx.x] = s;
  }
}

template <typename acc_t, typename out_t>
__global__ void __launch_bounds__(kFinishThreads) finish_kernel(const acc_t* __restrict__ partial, int64_t count,
                                                                const acc_t* __restrict__ frob, acc_t coef,
                                                                out_t* __restrict__ loss) {
  __shared__ acc_t buf[kFinishThreads];
  acc_t s = 0;
  for (int64_t i = threadIdx.x; i < count; i += kFinishThreads) s += partial[i];
  buf[threadIdx.x] = s;
  __syncthreads();
  for (int width = kFinishThreads / 2; width > 0; width /= 2) {
    if (static_cast<int>(threadIdx.x) < width) buf[threadIdx.x] += buf[threadIdx.x + width];
    __syncthreads();
  }
  if (threadIdx.x == 0) *loss = static_cast<out_t>(buf[0] + coef * frob[0]);
}

template <typename acc_t, typename out_t>
__global__ void __launch_bounds__(kThreads) standardize_backward_kernel(
    const acc_t* __restrict__ grad, const acc_t* __restrict__ a, const acc_t* __restrict__ invstd,
    const acc_t* __restrict__ r, const acc_t* __restrict__ p, int64_t N, int64_t D, acc_t k, acc_t w1, acc_t w0,
    out_t* __restrict__ dz) {
  __shared__ acc_t buf1[kRowGroups][kCols];
  __shared__ acc_t buf2[kRowGroups][kCols];
  const int tx = threadIdx.x % kCols, ty = threadIdx.x / kCols;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kCols + tx;
  const bool live = j < D;
  const acc_t g0 = grad[0], inv_n = acc_t(1) / static_cast<acc_t>(N);
  const acc_t wj = live ? w1 * r[j] + w0 : acc_t(0);
  for (int v = 0; v < 2; ++v) {
    const int64_t self = v * D + j, other = (1 - v) * D + j;
    const acc_t* pv = p + v * N * D + j;
    acc_t sg = 0, sga = 0;
    if (live)
      for (int64_t n = ty; n < N; n += kRowGroups) {
        const acc_t g = g0 * (k * pv[n * D] + a[n * 2 * D + other] * wj);
        sg += g;
        sga += g * a[n * 2 * D + self];
      }
    const acc_t mg = column_sum(buf1, sg, tx, ty) * inv_n;
    const acc_t mga = column_sum(buf2, sga, tx, ty) * inv_n;
    if (live) {
      const acc_t is = invstd[self];
      for (int64_t n = ty; n < N; n += kRowGroups) {
        const acc_t as = a[n * 2 * D + self];
        const acc_t g = g0 * (k * pv[n * D] + a[n * 2 * D + other] * wj);
        dz[v * N * D + n * D + j] = static_cast<out_t>(is * (g - mg - as * mga));
      }
    }
  }
}

}  // namespace bt
}  // namespace tsvq
