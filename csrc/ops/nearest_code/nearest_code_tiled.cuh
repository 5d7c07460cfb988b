// A register-tiled float32 nearest-codeword kernel: candidate successor of the 4 x 4 kernel
// (nearest_code_4x4.cuh), reached only through the private op tsvq::_nearest_code_tiled until
// it has been timed on a GPU against that kernel (benchmarks/bench_vq.py, test_nearest_code_tiled).
//
// The 4 x 4 register tile of tile4::nearest_code_kernel runs at ~20 TFLOP/s of float32 FMA on a
// Hopper GPU (1.55x of cdist at N = 65536, K = 1024, D = 64; 0.69x at K = 8192, D = 256):
// per 16 FMAs a thread issues 8 scalar shared-memory loads. Here a block of 256 threads owns
// kBM = 128 rows and sweeps the codebook in tiles of kBN = 128 codes, kBK = 8 columns of D at a
// time staged transposed in shared memory; each thread accumulates an 8 x 8 tile (rows
// ty*4 + {0..3} and 64 + ty*4 + {0..3}, codes likewise with tx) from four 16-byte shared loads
// per 64 FMAs. Same arithmetic as nearest_code_kernel: a running (min, argmin) of
// ||c||^2 - 2 x.c per row, codes visited in increasing order by each thread (strict <), the
// 16 threads sharing rows reduced with warp shuffles (ties to the lower index),
// dist = max(||x||^2 + min, 0), index -1 and dist NaN for rows whose ||x||^2 or minimum is not
// finite. Any N, K, D (zero-filled edges); float32 only.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "nearest_code_common.cuh"

namespace tsvq {
namespace tiled {

constexpr int kBM = 128;      // rows per block
constexpr int kBN = 128;      // codes per tile
constexpr int kBK = 8;        // columns of D staged per step
constexpr int kThreads = 256;
constexpr int kPad = 4;       // keeps the transposed stores conflict-free and rows 16-byte aligned
static_assert(kBM == kBN && (kBM * kBK) % kThreads == 0, "the staging loop loads one row of each operand per element");

struct alignas(16) Float4 {
  float v[4];
};

__device__ __forceinline__ void load4(const float* p, float* out) {
  const Float4 q = *reinterpret_cast<const Float4*>(p);
#pragma unroll
  for (int i = 0; i < 4; ++i) out[i] = q.v[i];
}

struct alignas(16) Staged {  // slices of x and of the codebook, transposed: [column of D][row or code]
  float xs[kBK][kBM + kPad];
  float cs[kBK][kBN + kPad];
};

// Row (or code) of micro-tile slot i < 8 for thread coordinate t < 16.
__device__ __forceinline__ int slot(int t, int i) { return (i < 4 ? 0 : 64) + t * 4 + (i & 3); }

__global__ void __launch_bounds__(kThreads, 2)  // <= 128 registers: two blocks per multiprocessor
    nearest_code_tiled_kernel(const float* __restrict__ x, const float* __restrict__ cb,
                              const float* __restrict__ cnorm, int64_t N, int K, int64_t D,
                              int64_t* __restrict__ indices, float* __restrict__ dist) {
  __shared__ Staged smem;
  auto& xs = smem.xs;
  auto& cs = smem.cs;
  const int tid = threadIdx.x;
  const int ty = tid / 16, tx = tid % 16;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kBM;

  float best[8];
  int arg[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    best[i] = std::numeric_limits<float>::infinity();
    arg[i] = 0;
  }

  for (int k0 = 0; k0 < K; k0 += kBN) {
    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

    for (int64_t d0 = 0; d0 < D; d0 += kBK) {
      // 128 x 8 elements of each operand, 4 per thread; 8 consecutive threads read one row's
      // 8 consecutive columns (a 32-byte segment).
#pragma unroll
      for (int t = 0; t < (kBM * kBK) / kThreads; ++t) {
        const int e = tid + t * kThreads;
        const int r = e / kBK, dd = e % kBK;
        const int64_t gd = d0 + dd;
        const int64_t gr = row0 + r;
        xs[dd][r] = (gr < N && gd < D) ? x[gr * D + gd] : 0.f;
        const int gc = k0 + r;
        cs[dd][r] = (gc < K && gd < D) ? cb[static_cast<int64_t>(gc) * D + gd] : 0.f;
      }
      __syncthreads();
#pragma unroll
      for (int dd = 0; dd < kBK; ++dd) {
        float a[8], b[8];
        load4(&xs[dd][ty * 4], a);
        load4(&xs[dd][64 + ty * 4], a + 4);
        load4(&cs[dd][tx * 4], b);
        load4(&cs[dd][64 + tx * 4], b + 4);
#pragma unroll
        for (int i = 0; i < 8; ++i)
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
      }
      __syncthreads();
    }
    // slot(tx, j) increases with j, and tiles go up: strict < keeps the lowest index.
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int k = k0 + slot(tx, j);
      if (k < K) {
        const float cn = cnorm[k];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const float v = cn - 2.f * acc[i][j];
          if (v < best[i]) {
            best[i] = v;
            arg[i] = k;
          }
        }
      }
    }
  }
  // Reduce over the 16 threads (one half-warp) that share these rows; lane tx < 8 writes row slot tx.
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    int64_t ai = arg[i];
    half_warp_argmin(best[i], ai);
    arg[i] = static_cast<int>(ai);
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int64_t r = row0 + slot(ty, i);
    if (tx == i && r < N) write_nearest(x, r, D, best[i], static_cast<int64_t>(arg[i]), indices, dist);
  }
}

}  // namespace tiled
}  // namespace tsvq
