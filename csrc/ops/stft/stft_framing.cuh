// Framing and overlap-add of the FFT path on GPUs (n_fft above the direct-DFT range), the CUDA
// counterparts of frame_cpu / overlap_add_cpu (stft_cpu.cpp) with the same semantics; launched by
// frame_cuda / overlap_add_cuda in stft_cuda.cu.
//
// Before these kernels the GPU path was ATen's pad + unfold + multiply (a padded copy of the
// series, then the frames) around the forward FFT, and multiply + unfold_backward + narrow +
// multiply around the inverse one (three passes over the frames plus the envelope's own kernels).
// Each is now one pass:
//   frame_kernel:       frames[r, t, n] = w[n] * (xpad[r, t hop + n] * scale[t hop + n]), the centre
//                       padding resolved by index arithmetic (pad_source), no padded copy;
//   overlap_add_kernel: y[r, p] = scale[q] * sum_t w[q - t hop] frames[r, t, q - t hop], q = p + start,
//                       over the at most ceil(N / hop) frames that cover q (0 where none does),
//                       one thread per output sample: no atomics, the envelope division and the
//                       trimming to `length` in the same pass.
// Both grids are flat over the output (coalesced writes; a warp's reads of frames are consecutive
// along n) and stride over it when it exceeds the grid. Index math runs in Index: uint32_t when
// every offset fits (the launcher's choice), int64_t otherwise.
#pragma once

#include <cstdint>

#include "stft_pad.h"

namespace tsvq {
namespace framing {

constexpr int kThreads = 256;

// x [R, L] -> out [R, T, N]; scale [(T - 1) hop + N] or null.
template <typename T, typename Index>
__global__ void __launch_bounds__(kThreads)
    frame_kernel(const T* __restrict__ x, Index R, Index L, const T* __restrict__ w, Index N,
                 const T* __restrict__ scale, Index hop, Index n_frames, Index pad_left, int mode,
                 T* __restrict__ out) {
  const Index total = R * n_frames * N;
  const Index per_row = n_frames * N;
  for (Index g = static_cast<Index>(blockIdx.x) * kThreads + threadIdx.x; g < total;
       g += static_cast<Index>(gridDim.x) * kThreads) {
    const Index r = g / per_row, rem = g - r * per_row;
    const Index t = rem / N, n = rem - t * N;
    const Index q = t * hop + n;
    const int64_t s = pad_source(static_cast<int64_t>(q), static_cast<int64_t>(pad_left),
                                 static_cast<int64_t>(L), mode);
    T v = s < 0 ? T(0) : x[r * L + static_cast<Index>(s)];
    if (scale) v = v * scale[q];
    out[g] = w[n] * v;
  }
}

// frames [R, T, N] -> y [R, length]; scale [(T - 1) hop + N] or null.
template <typename T, typename Index>
__global__ void __launch_bounds__(kThreads)
    overlap_add_kernel(const T* __restrict__ frames, Index R, Index n_frames, Index N,
                       const T* __restrict__ w, const T* __restrict__ scale, Index hop, Index start,
                       Index length, T* __restrict__ y) {
  const Index total = R * length;
  const Index Q = (n_frames - 1) * hop + N;
  for (Index g = static_cast<Index>(blockIdx.x) * kThreads + threadIdx.x; g < total;
       g += static_cast<Index>(gridDim.x) * kThreads) {
    const Index r = g / length, p = g - r * length;
    const Index q = p + start;
    T v = T(0);
    if (q < Q) {
      // frames t with 0 <= q - t hop < N: t in [ceil((q - N + 1) / hop), floor(q / hop)]
      const Index t_lo = q + 1 <= N ? Index(0) : (q + 1 - N + hop - 1) / hop;
      Index t_hi = q / hop;
      if (t_hi > n_frames - 1) t_hi = n_frames - 1;
      const T* fr = frames + r * n_frames * N;
      for (Index t = t_lo; t <= t_hi; ++t) {
        const Index n = q - t * hop;
        v += w[n] * fr[t * N + n];
      }
      if (scale) v *= scale[q];
    }
    y[g] = v;
  }
}

}  // namespace framing
}  // namespace tsvq
