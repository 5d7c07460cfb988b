// Direct-DFT STFT analysis for small n_fft (N <= 16): the kernel the CUDA _stft_analysis runs
// for those N (stft_cuda.cu). Candidate for dispatch by tsvq::stft on GPUs at the models'
// n_fft = 8 once a GPU run has timed it against torch.stft (benchmarks/bench_stft.py,
// test_stft_analysis_small_candidate_cuda).
//
// The tiled analysis_kernel of stft_cuda.cu runs at 0.50x of torch.stft at n_fft = 8
// (docs/kernels.md): its blocks own 64 frames of one row (4096 x 9 blocks for BC = 4096, L = 1024,
// the last of each row holding one frame) and read the basis from global memory per tap. Here the
// grid is flat over all R x T frames, one thread per frame: the thread reads its N taps straight
// from x (neighbouring frames overlap, so the loads hit L1; the centre padding is index
// arithmetic, pad_source) into registers, and every output bin is a dot product with a column of
// the basis, staged once per block in shared memory (every thread reads the same word: a
// broadcast). Writes are coalesced along frames; in the interleaved layout each (re, im) pair is
// one 2-word store. At n_fft = 8, hop 2 the kernel moves about 6 bytes out per byte in, so its
// floor is the output bandwidth.
#pragma once

#include <cstdint>

#include "stft_pad.h"

namespace tsvq {
namespace small_analysis {

constexpr int kThreads = 256;
constexpr int kMaxN = 16;
constexpr int kMaxJ = 2 * kMaxN;  // two-sided spectrum: 2 N columns

template <typename T>
struct alignas(2 * sizeof(T)) Pair {
  T re, im;
};

// x [R, L]; basis [N, J] (window and normalisation folded in: columns f < J/2 real parts,
// J/2 + f imaginary parts); scale [(T-1) hop + N] or null; out [R, J, T] or, interleaved,
// [R, J/2, T, 2]. Requires N <= kMaxTaps <= kMaxN and J <= kMaxJ.
template <typename T, int kMaxTaps>
__global__ void __launch_bounds__(kThreads)
    stft_analysis_small_kernel(const T* __restrict__ x, int64_t R, int64_t L, const T* __restrict__ basis,
                               int N, int J, const T* __restrict__ scale, int64_t hop, int64_t n_frames,
                               int64_t pad_left, int64_t mode, bool interleaved, T* __restrict__ out) {
  __shared__ T bs[kMaxTaps * kMaxJ];  // bs[n * J + j], zero for n >= N
  for (int i = threadIdx.x; i < kMaxTaps * J; i += kThreads) bs[i] = i < N * J ? basis[i] : T(0);
  __syncthreads();
  const int64_t g = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (g >= R * n_frames) return;
  const int64_t r = g / n_frames, t = g - r * n_frames;
  const T* xr = x + r * L;
  const int64_t q0 = t * hop;
  T tap[kMaxTaps];
  const bool inside = q0 >= pad_left && q0 - pad_left + N <= L;  // no padding in this frame
#pragma unroll
  for (int n = 0; n < kMaxTaps; ++n) {
    T v = T(0);
    if (n < N) {
      const int64_t q = q0 + n;
      const int64_t s = inside ? q - pad_left : pad_source(q, pad_left, L, mode);
      if (s >= 0) v = xr[s];
      if (scale) v *= scale[q];
    }
    tap[n] = v;
  }
  if (!interleaved) {
    T* o = out + r * J * n_frames + t;
    for (int j = 0; j < J; ++j) {
      T acc = T(0);
#pragma unroll
      for (int n = 0; n < kMaxTaps; ++n) acc += tap[n] * bs[n * J + j];
      o[static_cast<int64_t>(j) * n_frames] = acc;
    }
  } else {
    const int F = J / 2;
    Pair<T>* o = reinterpret_cast<Pair<T>*>(out) + r * F * n_frames + t;
    for (int f = 0; f < F; ++f) {
      T re = T(0), im = T(0);
#pragma unroll
      for (int n = 0; n < kMaxTaps; ++n) {
        re += tap[n] * bs[n * J + f];
        im += tap[n] * bs[n * J + F + f];
      }
      o[static_cast<int64_t>(f) * n_frames] = Pair<T>{re, im};
    }
  }
}

}  // namespace small_analysis
}  // namespace tsvq
