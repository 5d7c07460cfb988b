// The nearest-codeword kernel tsvq::nearest_code runs on CUDA (launched by nearest_code_cuda.cu),
// free of ATen so that CI runs it on a CPU emulation of its CUDA constructs
// (tests/cuda_emulation/nearest_code.cpp).
//
// A block of 256 threads owns kBM = 64 rows of x. It sweeps the codebook in tiles of kBN = 64
// codes; each tile's dot products are a small tiled GEMM (kBD-wide slices of x and of the
// codebook staged in shared memory, a 4 x 4 register micro-tile per thread, float32 FMAs;
// double in float64). Each thread keeps a running (min, argmin) of ||c||^2 - 2 x.c for its 4
// rows; the 16 threads that share rows reduce with warp shuffles at the end (ties to the lower
// index). dist = max(||x||^2 + min, 0). Rows whose ||x||^2 is not finite get index -1 and dist
// NaN: the kernel cannot raise without a host synchronisation (see tsvq.ops.nearest_code).
// Exact float32 arithmetic; a tensor-core (TF32/bf16) variant is future work.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "nearest_code_common.cuh"

namespace tsvq {
namespace tile4 {

constexpr int kBM = 64;   // rows per block
constexpr int kBN = 64;   // codes per tile
constexpr int kBD = 16;   // slice of D staged per step
constexpr int kThreads = 256;

template <typename T>
__device__ inline T pos_inf() {
  return std::numeric_limits<T>::infinity();
}

// The dot products of a kBM x kBN tile, rows row0.. of x against codes k0.. of the codebook:
// kBD-wide slices of both staged (transposed) in shared memory xs / cs, and thread (ty, tx) of
// the 256 accumulating acc[i][j] = x[row0 + ty*4 + i] . cb[k0 + tx*4 + j] (0 past N or K).
// Every thread of the block calls it; it ends after a __syncthreads, so xs / cs are free again.
template <typename scalar_t, typename acc_t>
__device__ inline void tile_dots(const scalar_t* __restrict__ x, const scalar_t* __restrict__ cb, int64_t N,
                                 int64_t K, int64_t D, int64_t row0, int64_t k0, acc_t (&xs)[kBD][kBM + 1],
                                 acc_t (&cs)[kBD][kBN + 1], acc_t (&acc)[4][4]) {
  const int tid = threadIdx.x;
  const int ty = tid / 16, tx = tid % 16;
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0;

  for (int64_t d0 = 0; d0 < D; d0 += kBD) {
    // Stage x[row0 : row0+kBM, d0 : d0+kBD] and cb[k0 : k0+kBN, d0 : d0+kBD], transposed.
    for (int e = tid; e < kBM * kBD; e += kThreads) {
      const int r = e / kBD, dd = e % kBD;
      const int64_t gr = row0 + r, gd = d0 + dd;
      xs[dd][r] = (gr < N && gd < D) ? static_cast<acc_t>(x[gr * D + gd]) : acc_t(0);
    }
    for (int e = tid; e < kBN * kBD; e += kThreads) {
      const int c = e / kBD, dd = e % kBD;
      const int64_t gc = k0 + c, gd = d0 + dd;
      cs[dd][c] = (gc < K && gd < D) ? static_cast<acc_t>(cb[gc * D + gd]) : acc_t(0);
    }
    __syncthreads();
#pragma unroll
    for (int dd = 0; dd < kBD; ++dd) {
      acc_t a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = xs[dd][ty * 4 + i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = cs[dd][tx * 4 + j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
}

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    nearest_code_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ cb,
                        const acc_t* __restrict__ cnorm, int64_t N, int64_t K, int64_t D,
                        int64_t* __restrict__ indices, scalar_t* __restrict__ dist) {
  __shared__ acc_t xs[kBD][kBM + 1];
  __shared__ acc_t cs[kBD][kBN + 1];
  const int tid = threadIdx.x;
  const int ty = tid / 16;  // row group: rows ty*4 .. ty*4+3
  const int tx = tid % 16;  // code group: codes tx*4 .. tx*4+3 of each tile
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kBM;

  acc_t best[4];
  int64_t arg[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    best[i] = pos_inf<acc_t>();
    arg[i] = 0;
  }

  for (int64_t k0 = 0; k0 < K; k0 += kBN) {
    acc_t acc[4][4];
    tile_dots(x, cb, N, K, D, row0, k0, xs, cs, acc);
    // Codes are visited in increasing order by each thread, so strict < keeps the lowest index.
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t k = k0 + tx * 4 + j;
      if (k < K) {
        const acc_t cn = cnorm[k];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const acc_t v = cn - acc_t(2) * acc[i][j];
          if (v < best[i]) {
            best[i] = v;
            arg[i] = k;
          }
        }
      }
    }
  }
  // Reduce over the 16 threads (one half-warp) that share these rows; lane 0 writes them.
#pragma unroll
  for (int i = 0; i < 4; ++i) half_warp_argmin(best[i], arg[i]);
  if (tx == 0) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t r = row0 + ty * 4 + i;
      if (r < N) write_nearest(x, r, D, best[i], arg[i], indices, dist);
    }
  }
}

}  // namespace tile4
}  // namespace tsvq
