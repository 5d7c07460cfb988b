// The CUDA kernels of tsvq::code_stats (launched by code_stats_cuda.cu), free of ATen so that CI
// runs them on a CPU emulation of their CUDA constructs (tests/cuda_emulation/code_stats.cpp).
//
// code_stats_atomic_kernel: one thread per element of x (grid-stride), atomicAdd into counts and
//   sums; float atomics make the summation order (and so the last bits) vary between runs.
// code_stats_segment_kernel: the deterministic variant, one block per code summing the code's
//   segment of the rows sorted by code (order, offsets), in row order: bitwise reproducible.
// Rows whose index is outside [0, K) are skipped (the atomic kernel) or sort outside every
// segment (the segment kernel).
#pragma once

#include <cstdint>

namespace tsvq {
namespace stats {

template <typename scalar_t, typename acc_t>
__global__ void code_stats_atomic_kernel(const scalar_t* __restrict__ x,
                                         const int64_t* __restrict__ idx, int64_t N, int64_t D,
                                         int64_t K, acc_t* __restrict__ counts,
                                         acc_t* __restrict__ sums) {
  const int64_t total = N * D;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = e / D, d = e % D;
    const int64_t k = idx[n];
    if (k < 0 || k >= K) continue;
    atomicAdd(sums + k * D + d, static_cast<acc_t>(x[e]));
    if (d == 0) atomicAdd(counts + k, acc_t(1));
  }
}

// One block per code; threads over D; rows of the code's segment visited in sorted order.
template <typename scalar_t, typename acc_t>
__global__ void code_stats_segment_kernel(const scalar_t* __restrict__ x,
                                          const int64_t* __restrict__ order,
                                          const int64_t* __restrict__ offsets, int64_t D,
                                          acc_t* __restrict__ counts, acc_t* __restrict__ sums) {
  const int64_t k = blockIdx.x;
  const int64_t begin = offsets[k], end = offsets[k + 1];
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    acc_t s = 0;
    for (int64_t j = begin; j < end; ++j) s += static_cast<acc_t>(x[order[j] * D + d]);
    sums[k * D + d] = s;
  }
  if (threadIdx.x == 0) counts[k] = static_cast<acc_t>(end - begin);
}

}  // namespace stats
}  // namespace tsvq
