// Fused STFT / ISTFT kernels for power-of-two n_fft = N in [2, 64] on GPUs: the framing, the
// real FFT and the output layout (analysis), or the inverse real FFT, the overlap-add and the
// envelope division (synthesis), each one kernel with no intermediate tensor. Launched by
// fft_analysis_cuda / fft_synthesis_cuda in stft_cuda.cu for tsvq::stft, istft and their
// backward; free of ATen so that CI runs them through the CPU emulation of
// tests/cuda_emulation/.
//
// Why: torch.stft on a GPU is pad + unfold + multiply + cuFFT (four passes over memory, the
// frames written and read back), and torch.istft adds unfold_backward and the envelope; the
// FFT path of this op without these kernels is the same passes with fused framing (0.81x-0.90x
// of torch, docs/kernels.md). A direct DFT (O(N^2) per frame) loses to cuFFT at n_fft 32-64. These kernels do the O(N log N) FFT in registers instead:
//
// The real FFT of a frame x[0..N) is computed as the complex FFT of size P = N / 2 of
// z[j] = x[2j] + i x[2j+1] (the standard real-input trick), by P lanes of a warp, lane j holding
// z[j]: log2 P radix-2 decimation-in-frequency stages, each an exchange with lane j ^ h through
// __shfl_xor_sync, leave lane j with Z[rev(j)] (rev: bit reversal of log2 P bits). Then lane k
// reads Z[k] and Z[P - k] from lanes rev(k), rev(P - k) and forms
//     X[k] = E[k] + W_N^k O[k],  E[k] = (Z[k] + conj Z[P-k]) / 2,  O[k] = (Z[k] - conj Z[P-k]) / 2i
// (W_N = exp(-2 pi i / N); lane 0 also forms the Nyquist bin X[P] = E[0] - O[0]). A warp holds
// G = 32 / P frames. The inverse runs the same steps backwards: lane k forms
// Z[k] = E[k] + i W_N^-k O[k] from X[k] and conj X[P - k], the P-point inverse FFT (conjugate
// twiddles) leaves lane j with z[rev(j)], i.e. the output samples 2 rev(j) and 2 rev(j) + 1.
// (The imaginary parts of the DC and Nyquist bins are dropped first, as irfft does.)
//
// Weights: a bin k is multiplied by `edge` when k is 0 or N / 2 and by `interior` otherwise
// (before the inverse, after the forward FFT), which covers every caller: the STFT's
// normalisation (edge = interior), the one-sided inverse's weights and the adjoints'.
//
// analysis_kernel: out bins of the frames x_pad[r, t hop + n] * scale[t hop + n] * w[n] of the
//   rows x[R, L] (centre padding by index arithmetic, pad_source), written frames-major
//   [R, T, F, 2] (interleaved: the buffer of the op's transposed view, as torch.stft) or
//   [R, 2F, T] (stacked, the TimeVQVAE layout). Bins past N / 2 (F = N): the conjugate mirror
//   (kMirror) or zeros (kZero). Flat grid over groups of frames; samples read from global memory
//   (consecutive lanes, consecutive addresses; the overlap of frames is served by the cache).
// synthesis_kernel: y[r, p] = scale[q] * sum_t w[q - t hop] frame_t[q - t hop], q = p + start, the
//   frames the inverse FFTs of spec[r, :, t] read through the spec's strides (any layout, no
//   copy). One block per (row, tile of frames): its frames, and the H = ceil(N / hop) - 1 before
//   them that reach into its samples, are inverse-transformed into shared memory (windowed), then
//   each thread sums the <= ceil(N / hop) frames over one output sample: no atomics, no second
//   pass, the trimming to [start, start + length) and the zeros past the frames in the same pass.
//
// Every loop bound that encloses a shuffle is uniform over the block (frames past the end are
// computed on zeros and not stored), so all 32 lanes take part in each exchange. Index math in
// Index: uint32_t when every offset fits (the launcher's choice), int64_t otherwise.
#pragma once

#include <cstdint>

#include "stft_pad.h"

namespace tsvq {
namespace warpfft {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kSynthesisSmemBytes = 32 * 1024;  // synthesis_kernel's frames in shared memory

// What analysis_kernel writes for the bins past N / 2 when F = N (two-sided output).
enum TwoSided : int { kOneSided = 0, kMirror = 1, kZero = 2 };

template <int P>
struct Log2 {
  static constexpr int value = 1 + Log2<P / 2>::value;
};
template <>
struct Log2<1> {
  static constexpr int value = 0;
};

template <int P>
TSVQ_HOST_DEVICE int bit_reverse(int j) {
  int r = 0;
#pragma unroll
  for (int b = 0; b < Log2<P>::value; ++b) r |= ((j >> b) & 1) << (Log2<P>::value - 1 - b);
  return r;
}

// (cos, sin) of pi * a, a a dyadic rational: exact argument, ~1 ulp.
__device__ __forceinline__ void sincos_pi(float a, float* s, float* c) { sincospif(a, s, c); }
__device__ __forceinline__ void sincos_pi(double a, double* s, double* c) { sincospi(a, s, c); }

template <typename T>
struct Cx {
  T re, im;
};
// (re, im) stored with one vector store (8 / 16 bytes; the offsets written are even).
template <typename T>
struct alignas(2 * sizeof(T)) Pair {
  T re, im;
};

template <typename T>
__device__ __forceinline__ Cx<T> cmul(Cx<T> a, Cx<T> b) {
  return {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}
template <typename T>
__device__ __forceinline__ Cx<T> shfl(Cx<T> v, int src) {
  return {__shfl_sync(kFullMask, v.re, src), __shfl_sync(kFullMask, v.im, src)};
}

// In-place P-point DFT, sign -1 (forward) or +1 (inverse, unnormalised), of the values held by
// the P lanes of each aligned group: lane j holds a[j] before and A[rev(j)] after. tw[s] is the
// lane's twiddle of stage s (see twiddles()).
template <typename T, int P>
__device__ __forceinline__ Cx<T> dif_fft(Cx<T> a, int j, const Cx<T>* tw) {
#pragma unroll
  for (int s = 0, h = P / 2; h >= 1; ++s, h /= 2) {
    Cx<T> b{__shfl_xor_sync(kFullMask, a.re, h), __shfl_xor_sync(kFullMask, a.im, h)};
    if (j & h) {
      a = cmul(Cx<T>{b.re - a.re, b.im - a.im}, tw[s]);  // (a[j - h] - a[j]) W_2h^(j mod h)
    } else {
      a = Cx<T>{a.re + b.re, a.im + b.im};
    }
  }
  return a;
}

// tw[s] = exp(sign i pi (j mod h) / h) for the stage of half-size h = P / 2^(s+1).
template <typename T, int P>
__device__ __forceinline__ void twiddles(int j, T sign, Cx<T>* tw) {
#pragma unroll
  for (int s = 0, h = P / 2; h >= 1; ++s, h /= 2) {
    T sn, cs;
    sincos_pi(sign * static_cast<T>(j & (h - 1)) / static_cast<T>(h), &sn, &cs);
    tw[s] = Cx<T>{cs, sn};
  }
}

// x [R, L] -> out [R, T, F, 2] (interleaved) or [R, 2F, T]; scale [(T - 1) hop + N] or null.
template <typename T, int P, typename Index>
__global__ void __launch_bounds__(kThreads)
    analysis_kernel(const T* __restrict__ x, Index R, Index L, const T* __restrict__ w,
                    const T* __restrict__ scale, Index hop, Index n_frames, Index pad_left, int mode,
                    T edge, T interior, int two_sided, bool interleaved, T* __restrict__ out) {
  constexpr int N = 2 * P, G = 32 / P, S = Log2<P>::value > 0 ? Log2<P>::value : 1;
  const int lane = threadIdx.x % 32, k = lane % P, base = lane - k;
  const Index F = two_sided != kOneSided ? Index(N) : Index(P + 1);
  const Index total = R * n_frames;
  Cx<T> tw[S];
  twiddles<T, P>(k, T(-1), tw);
  T ws, wc;  // W_N^k = exp(-2 pi i k / N)
  sincos_pi(-static_cast<T>(k) / static_cast<T>(P), &ws, &wc);
  const T w0 = w[2 * k], w1 = w[2 * k + 1];
  const int src_k = base + bit_reverse<P>(k), src_m = base + bit_reverse<P>((P - k) & (P - 1));
  const Index per_pass = static_cast<Index>(gridDim.x) * (kWarps * G);
  for (Index f0 = static_cast<Index>(blockIdx.x) * (kWarps * G); f0 < total; f0 += per_pass) {
    const Index fid = f0 + static_cast<Index>(threadIdx.x / 32) * G + static_cast<Index>(lane / P);
    const bool active = fid < total;
    const Index r = active ? fid / n_frames : Index(0), t = active ? fid - r * n_frames : Index(0);
    Cx<T> a{T(0), T(0)};
    if (active) {
      const Index q = t * hop + static_cast<Index>(2 * k);
      const T* xr = x + r * L;
      const int64_t s0 = pad_source(static_cast<int64_t>(q), static_cast<int64_t>(pad_left),
                                    static_cast<int64_t>(L), mode);
      const int64_t s1 = pad_source(static_cast<int64_t>(q) + 1, static_cast<int64_t>(pad_left),
                                    static_cast<int64_t>(L), mode);
      T v0 = s0 < 0 ? T(0) : xr[static_cast<Index>(s0)];
      T v1 = s1 < 0 ? T(0) : xr[static_cast<Index>(s1)];
      if (scale) {
        v0 *= scale[q];
        v1 *= scale[q + 1];
      }
      a = Cx<T>{w0 * v0, w1 * v1};
    }
    a = dif_fft<T, P>(a, k, tw);
    const Cx<T> zk = shfl(a, src_k), zm = shfl(a, src_m);  // Z[k], Z[P - k]
    const Cx<T> e{T(0.5) * (zk.re + zm.re), T(0.5) * (zk.im - zm.im)};
    // O = (Z[k] - conj Z[P-k]) / 2i
    const Cx<T> o{T(0.5) * (zk.im + zm.im), T(-0.5) * (zk.re - zm.re)};
    const Cx<T> wo = cmul(Cx<T>{wc, ws}, o);
    const T c = k == 0 ? edge : interior;
    const Cx<T> X{c * (e.re + wo.re), c * (e.im + wo.im)};
    if (!active) continue;
    // bins: k (every lane), P (lane 0: E[0] - O[0]), N - k (two-sided, k >= 1)
    const Cx<T> nyq{edge * (e.re - o.re), edge * (e.im - o.im)};
    if (interleaved) {
      Pair<T>* o_t = reinterpret_cast<Pair<T>*>(out + (r * n_frames + t) * F * 2);
      o_t[k] = Pair<T>{X.re, X.im};
      if (k == 0) o_t[P] = Pair<T>{nyq.re, nyq.im};
      if (two_sided != kOneSided && k > 0)
        o_t[N - k] = two_sided == kMirror ? Pair<T>{X.re, -X.im} : Pair<T>{T(0), T(0)};
    } else {
      T* o_r = out + r * 2 * F * n_frames + t;  // re at [f * T], im at [(F + f) * T]
      const Index im = F * n_frames;
      o_r[static_cast<Index>(k) * n_frames] = X.re;
      o_r[im + static_cast<Index>(k) * n_frames] = X.im;
      if (k == 0) {
        o_r[static_cast<Index>(P) * n_frames] = nyq.re;
        o_r[im + static_cast<Index>(P) * n_frames] = nyq.im;
      }
      if (two_sided != kOneSided && k > 0) {
        o_r[static_cast<Index>(N - k) * n_frames] = two_sided == kMirror ? X.re : T(0);
        o_r[im + static_cast<Index>(N - k) * n_frames] = two_sided == kMirror ? -X.im : T(0);
      }
    }
  }
}

// Strides (in elements) of the spectrum read by synthesis_kernel: X[r, k, t] = (spec[r sR + k sF
// + t sT], spec[r sR + k sF + t sT + sC]).
template <typename Index>
struct SpecStrides {
  Index r, f, t, c;
};

// Frames per synthesis block, and those before them it also needs, for N and hop.
struct SynthesisTile {
  int64_t frames;  // frames owned by a block (its output samples start at t0 * hop)
  int64_t halo;    // H = ceil(N / hop) - 1 earlier frames that overlap them
};
constexpr int64_t kMaxTileFrames = 128;  // so that short batches still spread over many blocks
inline SynthesisTile synthesis_tile(int64_t N, int64_t hop, int64_t n_frames, int64_t smem_elems) {
  const int64_t halo = (N + hop - 1) / hop - 1;
  int64_t frames = smem_elems / N - halo;
  if (frames > kMaxTileFrames) frames = kMaxTileFrames;
  if (frames > n_frames) frames = n_frames;
  if (frames < 1) frames = 1;
  return {frames, halo};
}

// spec (strides st) [R, >= N / 2 + 1 bins, T] -> y [R, length]; scale [(T - 1) hop + N] or null.
// Grid: R * n_tiles blocks; (tile + halo) * N <= kSynthesisSmemBytes / sizeof(T) (synthesis_tile).
template <typename T, int P, typename Index>
__global__ void __launch_bounds__(kThreads)
    synthesis_kernel(const T* __restrict__ spec, SpecStrides<Index> st, Index n_frames,
                     const T* __restrict__ w, const T* __restrict__ scale, Index hop, Index start,
                     Index length, T edge, T interior, Index tile, Index halo, Index n_tiles,
                     T* __restrict__ y) {
  constexpr int N = 2 * P, G = 32 / P, S = Log2<P>::value > 0 ? Log2<P>::value : 1;
  __shared__ T frames[kSynthesisSmemBytes / sizeof(T)];  // [tile + halo, N], windowed
  const Index r = static_cast<Index>(blockIdx.x) / n_tiles;
  const Index t0 = (static_cast<Index>(blockIdx.x) - r * n_tiles) * tile;
  const Index Q = (n_frames - 1) * hop + Index(N);
  const bool last = t0 + tile >= n_frames;
  // output samples q in [q_lo, q_hi) of this block, kept where start <= q < start + length
  const Index q_lo = t0 * hop;
  Index q_hi = last ? (Q > start + length ? Q : start + length) : (t0 + tile) * hop;
  const Index keep_lo = q_lo > start ? q_lo : start;
  const Index keep_hi = q_hi < start + length ? q_hi : start + length;
  if (keep_lo >= keep_hi) return;  // the whole block: no barrier or shuffle is skipped by part of it
  const Index t_first = t0 > halo ? t0 - halo : Index(0);
  Index t_end = t0 + tile;
  if (t_end > n_frames) t_end = n_frames;
  const Index count = t_end - t_first;

  const int lane = threadIdx.x % 32, k = lane % P, base = lane - k;
  Cx<T> tw[S];
  twiddles<T, P>(k, T(1), tw);
  T ws, wc;  // W_N^-k = exp(2 pi i k / N)
  sincos_pi(static_cast<T>(k) / static_cast<T>(P), &ws, &wc);
  const int n0 = 2 * bit_reverse<P>(k);  // samples n0, n0 + 1 end in this lane
  const T w0 = w[n0], w1 = w[n0 + 1];
  const int src_m = base + ((P - k) & (P - 1));
  const T c = k == 0 ? edge : interior;
  const T* sr = spec + r * st.r;
  for (Index i0 = 0; i0 < count; i0 += kWarps * G) {
    const Index i = i0 + static_cast<Index>(threadIdx.x / 32) * G + static_cast<Index>(lane / P);
    const bool active = i < count;
    const Index t = t_first + (active ? i : Index(0));
    Cx<T> xk{T(0), T(0)}, xp{T(0), T(0)};  // c X[k]; lane 0 also edge X[P]
    if (active) {
      const T* s = sr + static_cast<Index>(k) * st.f + t * st.t;
      xk = Cx<T>{c * s[0], k == 0 ? T(0) : c * s[st.c]};  // irfft drops Im X[0]
      if (k == 0) xp = Cx<T>{edge * s[static_cast<Index>(P) * st.f], T(0)};  // and Im X[N / 2]
    }
    Cx<T> xm = shfl(xk, src_m);  // X[P - k] (lane 0: X[P], from itself below)
    if (k == 0) xm = xp;
    // E = (X[k] + conj X[P-k]) / 2, O = (X[k] - conj X[P-k]) W_N^-k / 2, Z = E + i O
    const Cx<T> e{T(0.5) * (xk.re + xm.re), T(0.5) * (xk.im - xm.im)};
    const Cx<T> o = cmul(Cx<T>{T(0.5) * (xk.re - xm.re), T(0.5) * (xk.im + xm.im)}, Cx<T>{wc, ws});
    Cx<T> z{e.re - o.im, e.im + o.re};
    z = dif_fft<T, P>(z, k, tw);  // lane k: z[rev(k)] = (x[n0] + i x[n0 + 1]) / 2 of N irfft
    if (active) {
      T* fr = frames + i * Index(N);
      fr[n0] = T(2) * z.re * w0;
      fr[n0 + 1] = T(2) * z.im * w1;
    }
  }
  __syncthreads();
  for (Index q = keep_lo + threadIdx.x; q < keep_hi; q += kThreads) {
    T v = T(0);
    if (q < Q) {
      // frames t with 0 <= q - t hop < N, among those in shared memory
      Index t_lo = q + 1 <= Index(N) ? Index(0) : (q + 1 - Index(N) + hop - 1) / hop;
      if (t_lo < t_first) t_lo = t_first;
      Index t_hi = q / hop;
      if (t_hi > t_end - 1) t_hi = t_end - 1;
      for (Index t = t_lo; t <= t_hi; ++t) v += frames[(t - t_first) * Index(N) + (q - t * hop)];
      if (scale) v *= scale[q];
    }
    y[r * length + (q - start)] = v;
  }
}

}  // namespace warpfft
}  // namespace tsvq
