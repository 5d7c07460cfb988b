// Direct-DFT ISTFT synthesis for small n_fft (N <= 16): the kernel the CUDA _stft_synthesis
// runs for those N (stft_cuda.cu). Candidate for dispatch by tsvq::istft on GPUs once a GPU run
// has timed it against torch.istft (benchmarks/bench_stft.py, test_istft_synthesis_small_candidate_cuda).
//
// The tiled synthesis_kernel of stft_cuda.cu runs at 0.57x-0.72x of torch.istft at n_fft = 8
// (docs/kernels.md). Here the grid is flat over all R x length output samples, one thread
// per sample: y[p] = scale[q] * sum_t sum_j spec[j, t] basis[j, q - t hop] (q = p + start) over
// the at most ceil(N / hop) frames that cover q, read straight from spec (neighbouring samples
// share frames, so the loads hit L1), with the basis staged once per block in shared memory.
// The overlap-add and the envelope division are the same pass; no atomics, no host
// synchronisation; writes are coalesced.
#pragma once

#include <cstdint>

namespace tsvq {
namespace small_synthesis {

constexpr int kThreads = 256;
constexpr int kMaxN = 16;
constexpr int kMaxJ = 2 * kMaxN;

template <typename T>
struct alignas(2 * sizeof(T)) Pair {
  T re, im;
};

// spec [R, J, T] or, interleaved, [R, J/2, T, 2] (j = z J/2 + f); basis [J, N]; scale [Q] or null,
// Q = (T - 1) hop + N; y [R, length]: y[r, p] for q = p + start (0 where q >= Q). N <= kMaxN,
// J <= kMaxJ.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    stft_synthesis_small_kernel(const T* __restrict__ spec, int64_t R, int J, int64_t n_frames,
                                bool interleaved, const T* __restrict__ basis, int N,
                                const T* __restrict__ scale, int64_t hop, int64_t start, int64_t length,
                                T* __restrict__ y) {
  __shared__ T bs[kMaxJ * kMaxN];  // bs[j * N + n]
  for (int i = threadIdx.x; i < J * N; i += kThreads) bs[i] = basis[i];
  __syncthreads();
  const int64_t g = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (g >= R * length) return;
  const int64_t r = g / length, p = g - r * length;
  const int64_t q = p + start;
  const int64_t Q = (n_frames - 1) * hop + N;
  T v = T(0);
  if (q < Q) {
    const int64_t t_lo = q - N + 1 <= 0 ? 0 : (q - N + 1 + hop - 1) / hop;
    const int64_t t_hi = q / hop < n_frames - 1 ? q / hop : n_frames - 1;
    const int F = J / 2;
    for (int64_t t = t_lo; t <= t_hi; ++t) {
      const int n = static_cast<int>(q - t * hop);  // 0 <= n < N
      if (!interleaved) {
        const T* s = spec + r * J * n_frames + t;
        for (int j = 0; j < J; ++j) v += s[static_cast<int64_t>(j) * n_frames] * bs[j * N + n];
      } else {
        const Pair<T>* s = reinterpret_cast<const Pair<T>*>(spec) + r * F * n_frames + t;
        for (int f = 0; f < F; ++f) {
          const Pair<T> z = s[static_cast<int64_t>(f) * n_frames];
          v += z.re * bs[f * N + n] + z.im * bs[(F + f) * N + n];
        }
      }
    }
    if (scale) v *= scale[q];
  }
  y[g] = v;
}

}  // namespace small_synthesis
}  // namespace tsvq
