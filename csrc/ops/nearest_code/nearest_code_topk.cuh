// The k-nearest-codes kernel tsvq::nearest_code_topk runs on CUDA (launched by
// nearest_code_cuda.cu), free of ATen so that CI runs it on a CPU emulation of its CUDA constructs
// (tests/cuda_emulation/nearest_code_topk.cpp).
//
// A block of 256 threads owns tile4::kBM = 64 rows of x and sweeps the codebook in tiles of
// tile4::kBN = 64 codes with the nearest-codeword kernel's tiled GEMM (tile4::tile_dots). Each
// tile's values ||c||^2 - 2 x.c go to shared memory (over the staging buffers, which tile_dots has
// released), and thread r < 64 merges its row's 64 values, in increasing code order, into a sorted
// list of the k smallest (strict <: ties go to the lower index). dist = max(||x||^2 + value, 0).
// Rows whose ||x||^2 or k-th value is not finite get indices -1 and dist NaN (no host
// synchronisation to raise). k <= kMaxK; the op takes the library path for larger k.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "nearest_code_4x4.cuh"
#include "sorted_insert.h"

namespace tsvq {
namespace topk {

constexpr int kMaxK = 64;  // the largest k of this kernel (its per-thread list)

// Shared memory of a block: the staged slices of tile_dots, then (same bytes) the tile's values.
template <typename acc_t>
struct Shared {
  static constexpr int kStage = 2 * tile4::kBD * (tile4::kBM + 1);
  static constexpr int kValues = tile4::kBM * (tile4::kBN + 1);
  static constexpr int kSize = kStage > kValues ? kStage : kValues;
};

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(tile4::kThreads)
    nearest_code_topk_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ cb,
                             const acc_t* __restrict__ cnorm, int64_t N, int64_t K, int64_t D, int k,
                             int64_t* __restrict__ indices, scalar_t* __restrict__ dist) {
  using tile4::kBD;
  using tile4::kBM;
  using tile4::kBN;
  __shared__ acc_t smem[Shared<acc_t>::kSize];
  auto& xs = *reinterpret_cast<acc_t(*)[kBD][kBM + 1]>(smem);
  auto& cs = *reinterpret_cast<acc_t(*)[kBD][kBN + 1]>(smem + kBD * (kBM + 1));
  auto& values = *reinterpret_cast<acc_t(*)[kBM][kBN + 1]>(smem);
  const int tid = threadIdx.x;
  const int ty = tid / 16, tx = tid % 16;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kBM;
  const bool owner = tid < kBM && row0 + tid < N;  // thread tid keeps row row0 + tid's list

  acc_t best[kMaxK];
  int64_t arg[kMaxK];
  for (int i = 0; i < k; ++i) {
    best[i] = tile4::pos_inf<acc_t>();
    arg[i] = 0;
  }

  for (int64_t k0 = 0; k0 < K; k0 += kBN) {
    acc_t acc[4][4];
    tile4::tile_dots(x, cb, N, K, D, row0, k0, xs, cs, acc);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t c = k0 + tx * 4 + j;
      const acc_t cn = c < K ? cnorm[c] : tile4::pos_inf<acc_t>();
#pragma unroll
      for (int i = 0; i < 4; ++i) values[ty * 4 + i][tx * 4 + j] = cn - acc_t(2) * acc[i][j];
    }
    __syncthreads();
    if (owner) {
      const int n_codes = K - k0 < kBN ? static_cast<int>(K - k0) : kBN;
      for (int j = 0; j < n_codes; ++j) sorted_insert(best, arg, k, values[tid][j], k0 + j);
    }
    __syncthreads();  // the values are read before the next tile stages over them
  }
  if (owner) {
    const int64_t r = row0 + tid;
    acc_t s = 0;
    for (int64_t d = 0; d < D; ++d) {
      const acc_t v = static_cast<acc_t>(x[r * D + d]);
      s = fma(v, v, s);
    }
    const bool ok = isfinite(s) && isfinite(best[k - 1]);
    for (int i = 0; i < k; ++i) {
      const acc_t dv = s + best[i];
      indices[r * k + i] = ok ? arg[i] : int64_t(-1);
      dist[r * k + i] = static_cast<scalar_t>(ok ? (dv > acc_t(0) ? dv : acc_t(0))
                                                 : std::numeric_limits<acc_t>::quiet_NaN());
    }
  }
}

}  // namespace topk
}  // namespace tsvq
