// The CUDA kernels of the EMA codebook update's O(K D) part (launched by
// ema_codebook_update_cuda.cu after the code statistics), free of ATen so that CI runs them on a
// CPU emulation of their CUDA constructs (tests/cuda_emulation/ema_apply.cpp). Notation of
// ema_codebook_update.h: n = cluster_size[K], m = embed_sum[K, D], e = codebook[K, D], c and s the
// batch's counts[K] and sums[K, D], all of one dtype T.
//
// cluster_size_kernel: one block (kThreads threads) over the K codes:
//   n_k <- decay n_k + (1 - decay) c_k, and total = sum_k n_k (the new sizes) reduced in double in
//   a fixed order (deterministic), written to total[0] in T. One block, so the total is complete
//   when the kernel ends: no grid-wide synchronisation, no atomics.
// codebook_kernel: grid-stride over the K D entries, reading the new n and total:
//   m_kd <- decay m_kd + (1 - decay) s_kd,  e_kd <- m_kd / ((n_k + eps) / (total + K eps) total).
// Before these two kernels the update was eleven ATen element-wise and reduction kernels.
#pragma once

#include <cstdint>

namespace tsvq {
namespace ema {

constexpr int kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    cluster_size_kernel(T* __restrict__ n, const T* __restrict__ c, int64_t K, T decay, T keep_new,
                        T* __restrict__ total) {
  __shared__ double buf[kThreads];
  double s = 0;
  for (int64_t k = threadIdx.x; k < K; k += kThreads) {
    const T v = decay * n[k] + keep_new * c[k];
    n[k] = v;
    s += static_cast<double>(v);
  }
  buf[threadIdx.x] = s;
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (static_cast<int>(threadIdx.x) < width) buf[threadIdx.x] += buf[threadIdx.x + width];
    __syncthreads();
  }
  if (threadIdx.x == 0) *total = static_cast<T>(buf[0]);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    codebook_kernel(const T* __restrict__ n, const T* __restrict__ total, T* __restrict__ m,
                    T* __restrict__ e, const T* __restrict__ s, int64_t K, int64_t D, T decay,
                    T keep_new, T eps) {
  const T tot = *total;
  const T denom = tot + static_cast<T>(K) * eps;
  const int64_t count = K * D;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t k = i / D;
    const T smoothed = (n[k] + eps) / denom * tot;
    const T v = decay * m[i] + keep_new * s[i];
    m[i] = v;
    e[i] = v / smoothed;
  }
}

}  // namespace ema
}  // namespace tsvq
