// CUDA framing kernels of the direct-DFT path (the private ops _stft_analysis / _stft_synthesis);
// the math is that of stft_cpu.cpp. Not dispatched by tsvq::stft / tsvq::istft on GPUs: slower
// than cuFFT at the benchmark shapes (use_direct in stft.cpp, docs/kernels.md).
//
// _stft_analysis: n_fft <= 16 runs stft_analysis_small.cuh (one thread per frame over a flat
//   grid). Above that, one block per (row, tile of kTT frames). The block reads the samples its
//   frames cover once, resolving the centre padding by index arithmetic, and stores them in
//   shared memory split into hop phases (ph[n % hop][t + n / hop]) so that threads of a warp,
//   which handle consecutive frames of one basis column, read consecutive words (no bank
//   conflicts). Output writes are coalesced along frames.
// _stft_synthesis: n_fft <= 16 runs stft_synthesis_small.cuh (one thread per output sample over a
//   flat grid). Above that, one block per (row, tile of P output samples). The frames that overlap the
//   tile are formed in shared memory (sum_j spec[j, t] basis[j, n]) and overlap-added and
//   scaled (window envelope) by the thread that owns each output sample: no atomics, no second
//   pass, no host synchronisation.
// Grids are flattened into x (rows x tiles), so the number of rows is not limited to 65535.
// fft_analysis_cuda / fft_synthesis_cuda: tsvq::stft / istft and their backward on GPUs for
// power-of-two n_fft in [2, 64], one fused kernel each (framing + real FFT in registers + output
// layout; inverse real FFT + overlap-add + envelope): stft_fft_small.cuh.
// frame_cuda / overlap_add_cuda: the framing and overlap-add of the FFT path (the other n_fft on
// GPUs, around cuFFT), one kernel each (stft_framing.cuh).
// All four are this file's StftDeviceKernels table (stft.h), registered for CUDA at load time.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGraphsC10Utils.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <atomic>
#include <limits>
#include <type_traits>

#include "../../common/cuda_utils.cuh"
#include "stft.h"
#include "stft_analysis_small.cuh"
#include "stft_fft_small.cuh"
#include "stft_framing.cuh"
#include "stft_synthesis_small.cuh"

namespace tsvq {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kTT = 64;                  // frames per analysis block
constexpr int64_t kSmemBytes = 48 * 1024;    // default dynamic shared memory limit

template <typename T>
__global__ void analysis_kernel(const T* __restrict__ x, int64_t L, const T* __restrict__ basis,
                                int64_t N, int64_t J, const T* __restrict__ scale, int64_t hop,
                                int64_t n_frames, int64_t pad_left, int64_t mode, int64_t H,
                                int64_t M, int64_t n_tiles, bool interleaved, T* __restrict__ out) {
  extern __shared__ unsigned char smem_raw[];
  T* ph = reinterpret_cast<T*>(smem_raw);
  const int64_t r = blockIdx.x / n_tiles;
  const int64_t t0 = (blockIdx.x % n_tiles) * kTT;
  const int64_t Qv = (n_frames - 1) * hop + N;
  const T* xr = x + r * L;
  for (int64_t i = threadIdx.x; i < H * M; i += blockDim.x) {
    const int64_t rr = i / M, m = i % M;
    const int64_t q = (t0 + m) * hop + rr;
    T v = T(0);
    if (q < Qv) {
      const int64_t s = pad_source(q, pad_left, L, mode);
      if (s >= 0) v = scale ? xr[s] * scale[q] : xr[s];
    }
    ph[i] = v;
  }
  __syncthreads();
  const int nt = static_cast<int>(min(kTT, n_frames - t0));
  const int64_t F = J / 2;
  // 32-bit indices (N <= 64, J <= 2N + 2, H * M fits the shared memory) and no division in the
  // tap loop: sample n = rr + k * hop of frame tl is ph[rr][tl + k], so the taps are walked
  // phase by phase (with n % hop and n / hop in 64-bit arithmetic per tap this kernel was 2.5-17x
  // slower than torch.stft).
  const int Ni = static_cast<int>(N), Ji = static_cast<int>(J), hopi = static_cast<int>(hop),
            Hi = static_cast<int>(H), Mi = static_cast<int>(M);
  constexpr int kTTi = static_cast<int>(kTT);
  for (int i = threadIdx.x; i < Ji * kTTi; i += blockDim.x) {
    const int j = i / kTTi, tl = i % kTTi;  // kTT is a power of two: shifts
    if (tl >= nt) continue;
    T acc = T(0);
    const T* bj = basis + j;
    for (int rr = 0; rr < Hi; ++rr) {
      const T* pr = ph + rr * Mi + tl;
      for (int n = rr, k = 0; n < Ni; n += hopi, ++k) acc += bj[n * Ji] * pr[k];
    }
    const int64_t t = t0 + tl;
    if (!interleaved) {
      out[(r * J + j) * n_frames + t] = acc;
    } else {
      const int64_t z = j / F, f = j - z * F;
      out[((r * F + f) * n_frames + t) * 2 + z] = acc;
    }
  }
}

template <typename T>
__global__ void synthesis_kernel(const T* __restrict__ spec, int64_t J, int64_t n_frames,
                                 bool interleaved, const T* __restrict__ basis, int64_t N,
                                 const T* __restrict__ scale, int64_t hop, int64_t start,
                                 int64_t length, int64_t P, int64_t n_tiles, T* __restrict__ y) {
  extern __shared__ unsigned char smem_raw[];
  T* frames = reinterpret_cast<T*>(smem_raw);
  const int64_t r = blockIdx.x / n_tiles;
  const int64_t p0 = (blockIdx.x % n_tiles) * P;
  const int64_t p1 = min(p0 + P, length);
  const int64_t Q = (n_frames - 1) * hop + N;
  const int64_t q0 = p0 + start, q1 = min(p1 + start, Q);  // covered samples [q0, q1)
  int64_t t_lo = 0, t_hi = -1;
  if (q0 < q1) {
    t_lo = q0 - N + 1 <= 0 ? 0 : ceil_div(q0 - N + 1, hop);
    t_hi = min(n_frames - 1, (q1 - 1) / hop);
  }
  const int64_t nt = t_hi - t_lo + 1;
  const int64_t F = J / 2;
  for (int64_t i = threadIdx.x; i < nt * N; i += blockDim.x) {
    const int64_t t = t_lo + i / N, n = i % N;
    T acc = T(0);
    if (!interleaved) {
      const T* s = spec + r * J * n_frames + t;
      for (int64_t j = 0; j < J; ++j) acc += s[j * n_frames] * basis[j * N + n];
    } else {
      const T* s = spec + (r * F * n_frames + t) * 2;
      for (int64_t f = 0; f < F; ++f) {
        acc += s[f * n_frames * 2] * basis[f * N + n];
        acc += s[f * n_frames * 2 + 1] * basis[(F + f) * N + n];
      }
    }
    frames[i] = acc;
  }
  __syncthreads();
  for (int64_t p = p0 + threadIdx.x; p < p1; p += blockDim.x) {
    const int64_t q = p + start;
    T v = T(0);
    if (q < Q && nt > 0) {
      const int64_t lo = max(t_lo, q - N + 1 <= 0 ? int64_t(0) : ceil_div(q - N + 1, hop));
      const int64_t hi = min(t_hi, q / hop);
      for (int64_t t = lo; t <= hi; ++t) v += frames[(t - t_lo) * N + (q - t * hop)];
      if (scale) v *= scale[q];
    }
    y[r * length + p] = v;
  }
}

at::Tensor stft_analysis_cuda(const at::Tensor& x_in, const at::Tensor& basis_in,
                              const c10::optional<at::Tensor>& scale_in, int64_t hop,
                              int64_t n_frames, int64_t pad_left, int64_t mode, bool interleaved) {
  check_analysis_inputs(x_in, basis_in, scale_in, hop, n_frames, pad_left, mode, interleaved);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const int64_t R = x_in.size(0), L = x_in.size(1), N = basis_in.size(0), J = basis_in.size(1);
  auto out = interleaved ? at::empty({R, J / 2, n_frames, 2}, x_in.options())
                         : at::empty({R, J, n_frames}, x_in.options());
  if (R == 0 || J == 0) return out;
  auto x = x_in.contiguous();
  auto basis = basis_in.contiguous();
  auto scale = contiguous_scale(scale_in);
  const int64_t H = std::min(hop, N);
  const int64_t M = kTT + (N - 1) / hop + 1;
  const int64_t n_tiles = ceil_div(n_frames, kTT);
  TORCH_CHECK(R * n_tiles < (int64_t(1) << 31), "_stft_analysis: too many rows x frame tiles for one launch");
  auto stream = c10::cuda::getCurrentCUDAStream();
  if (N <= small_analysis::kMaxN && J <= small_analysis::kMaxJ) {  // stft_analysis_small.cuh
    const int64_t blocks = ceil_div(R * n_frames, small_analysis::kThreads);
    TORCH_CHECK(blocks < (int64_t(1) << 31), "_stft_analysis: too many frames for one launch");
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "stft_analysis_small_cuda", [&] {
      auto kernel = N <= 8 ? small_analysis::stft_analysis_small_kernel<scalar_t, 8>
                           : small_analysis::stft_analysis_small_kernel<scalar_t, small_analysis::kMaxN>;
      kernel<<<static_cast<unsigned>(blocks), small_analysis::kThreads, 0, stream>>>(
          x.data_ptr<scalar_t>(), R, L, basis.data_ptr<scalar_t>(), static_cast<int>(N), static_cast<int>(J),
          scale.defined() ? scale.data_ptr<scalar_t>() : nullptr, hop, n_frames, pad_left, mode, interleaved,
          out.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    return out;
  }
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "stft_analysis_cuda", [&] {
    const size_t smem = static_cast<size_t>(H * M) * sizeof(scalar_t);
    TORCH_CHECK(smem <= static_cast<size_t>(kSmemBytes), "_stft_analysis: n_fft too large for the direct path");
    analysis_kernel<scalar_t><<<static_cast<unsigned>(R * n_tiles), kThreads, smem, stream>>>(
        x.data_ptr<scalar_t>(), L, basis.data_ptr<scalar_t>(), N, J,
        scale.defined() ? scale.data_ptr<scalar_t>() : nullptr, hop, n_frames, pad_left, mode, H, M,
        n_tiles, interleaved, out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor stft_synthesis_cuda(const at::Tensor& spec_in, const at::Tensor& basis_in,
                               const c10::optional<at::Tensor>& scale_in, int64_t hop, int64_t start,
                               int64_t length, bool interleaved) {
  check_synthesis_inputs(spec_in, basis_in, scale_in, hop, start, length, interleaved);
  const c10::cuda::CUDAGuard guard(spec_in.device());
  const int64_t R = spec_in.size(0), n_frames = spec_in.size(2), J = basis_in.size(0),
                N = basis_in.size(1);
  auto y = at::empty({R, length}, spec_in.options());
  if (R == 0 || length == 0) return y;
  if (n_frames == 0 || N == 0) return y.zero_();
  auto spec = spec_in.contiguous();
  auto basis = basis_in.contiguous();
  auto scale = contiguous_scale(scale_in);
  auto stream = c10::cuda::getCurrentCUDAStream();
  if (N <= small_synthesis::kMaxN && J <= small_synthesis::kMaxJ) {  // stft_synthesis_small.cuh
    const int64_t blocks = ceil_div(R * length, small_synthesis::kThreads);
    TORCH_CHECK(blocks < (int64_t(1) << 31), "_stft_synthesis: too many samples for one launch");
    AT_DISPATCH_FLOATING_TYPES(spec.scalar_type(), "stft_synthesis_small_cuda", [&] {
      small_synthesis::stft_synthesis_small_kernel<scalar_t>
          <<<static_cast<unsigned>(blocks), small_synthesis::kThreads, 0, stream>>>(
              spec.data_ptr<scalar_t>(), R, static_cast<int>(J), n_frames, interleaved,
              basis.data_ptr<scalar_t>(), static_cast<int>(N), scale.defined() ? scale.data_ptr<scalar_t>() : nullptr,
              hop, start, length, y.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    return y;
  }
  AT_DISPATCH_FLOATING_TYPES(spec.scalar_type(), "stft_synthesis_cuda", [&] {
    // Frames overlapping P outputs: at most (P + N - 2) / hop + 2; keep them within kSmemBytes.
    const int64_t max_frames = kSmemBytes / (N * static_cast<int64_t>(sizeof(scalar_t)));
    TORCH_CHECK(max_frames >= 2 + (N - 1) / hop, "_stft_synthesis: n_fft too large for the direct path");
    int64_t P = std::min<int64_t>(1024, (max_frames - 2) * hop - N + 2);
    P = std::max<int64_t>(1, std::min(P, length));
    const int64_t nt_max = (P + N - 2) / hop + 2;
    const size_t smem = static_cast<size_t>(nt_max * N) * sizeof(scalar_t);
    const int64_t n_tiles = ceil_div(length, P);
    TORCH_CHECK(R * n_tiles < (int64_t(1) << 31), "_stft_synthesis: too many rows x tiles for one launch");
    synthesis_kernel<scalar_t><<<static_cast<unsigned>(R * n_tiles), kThreads, smem, stream>>>(
        spec.data_ptr<scalar_t>(), J, n_frames, interleaved, basis.data_ptr<scalar_t>(), N,
        scale.defined() ? scale.data_ptr<scalar_t>() : nullptr, hop, start, length, P, n_tiles,
        y.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return y;
}

// Blocks of a grid-stride launch over `total` outputs: enough to fill the GPU, capped so that the
// stride (blocks x threads) keeps 32-bit index arithmetic from overflowing.
unsigned framing_blocks(int64_t total) {
  return static_cast<unsigned>(std::min<int64_t>(ceil_div(total, framing::kThreads), int64_t(1) << 20));
}

// Calls f(uint32_t{}) when every extent fits 32-bit index math, f(int64_t{}) otherwise.
template <typename F>
void with_index_type(std::initializer_list<int64_t> extents, F f) {
  for (int64_t e : extents)
    if (e > std::numeric_limits<int32_t>::max()) return f(int64_t{});
  f(uint32_t{});
}

}  // namespace

at::Tensor frame_cuda(const at::Tensor& x_in, const at::Tensor& window_in, const at::Tensor& scale_in, int64_t hop,
                      int64_t n_frames, int64_t pad_left, int64_t mode) {
  TORCH_CHECK(x_in.is_cuda() && x_in.dim() == 2, "frame_cuda: x must be a CUDA Tensor[R, L]");
  const c10::cuda::CUDAGuard guard(x_in.device());
  const auto ops = framing_operands(x_in, window_in, scale_in);
  const auto &x = ops.input, &w = ops.window, &scale = ops.scale;
  const int64_t R = x.size(0), L = x.size(1), N = w.size(0);
  auto out = at::empty({R, n_frames, N}, x.options());
  if (out.numel() == 0) return out;
  const int64_t Qv = (n_frames - 1) * hop + N;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "frame_cuda", [&] {
    with_index_type({out.numel(), R * L, Qv + hop, pad_left + L}, [&](auto index) {
      using Index = decltype(index);
      framing::frame_kernel<scalar_t, Index><<<framing_blocks(out.numel()), framing::kThreads, 0, stream>>>(
          x.data_ptr<scalar_t>(), R, L, w.data_ptr<scalar_t>(), N,
          scale.defined() ? scale.data_ptr<scalar_t>() : nullptr, hop, n_frames, pad_left, static_cast<int>(mode),
          out.data_ptr<scalar_t>());
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor overlap_add_cuda(const at::Tensor& frames_in, const at::Tensor& window_in, const at::Tensor& scale_in,
                            int64_t hop, int64_t start, int64_t length) {
  TORCH_CHECK(frames_in.is_cuda() && frames_in.dim() == 3, "overlap_add_cuda: frames must be a CUDA Tensor[R, T, N]");
  const c10::cuda::CUDAGuard guard(frames_in.device());
  const auto ops = framing_operands(frames_in, window_in, scale_in);
  const auto &frames = ops.input, &w = ops.window, &scale = ops.scale;
  const int64_t R = frames.size(0), T = frames.size(1), N = frames.size(2);
  auto y = at::empty({R, length}, frames.options());
  if (y.numel() == 0) return y;
  if (T == 0 || N == 0) return y.zero_();
  const int64_t Q = (T - 1) * hop + N;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(frames.scalar_type(), "overlap_add_cuda", [&] {
    with_index_type({frames.numel(), y.numel(), Q + hop, start + length}, [&](auto index) {
      using Index = decltype(index);
      framing::overlap_add_kernel<scalar_t, Index><<<framing_blocks(y.numel()), framing::kThreads, 0, stream>>>(
          frames.data_ptr<scalar_t>(), R, T, N, w.data_ptr<scalar_t>(),
          scale.defined() ? scale.data_ptr<scalar_t>() : nullptr, hop, start, length, y.data_ptr<scalar_t>());
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return y;
}

namespace {

// Calls f(std::integral_constant<int, P>{}) for P = n_fft / 2, n_fft a power of two in [2, 64].
template <typename F>
void with_half_size(int64_t n_fft, F f) {
  switch (n_fft) {
    case 2: return f(std::integral_constant<int, 1>{});
    case 4: return f(std::integral_constant<int, 2>{});
    case 8: return f(std::integral_constant<int, 4>{});
    case 16: return f(std::integral_constant<int, 8>{});
    case 32: return f(std::integral_constant<int, 16>{});
    case 64: return f(std::integral_constant<int, 32>{});
    default: TORCH_CHECK(false, "fft kernels: n_fft must be a power of two in [2, 64], got ", n_fft);
  }
}

// Streaming multiprocessors of a device, read once per device.
int multiprocessors(int device) {
  static std::atomic<int> counts[64];
  TORCH_CHECK(device >= 0 && device < 64, "fft kernels: device index ", device, " out of range");
  int n = counts[device].load(std::memory_order_relaxed);
  if (n == 0) {
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
    counts[device].store(n, std::memory_order_relaxed);
  }
  return n;
}

// One past the largest element offset of t (its strides are non-negative).
int64_t offset_extent(const at::Tensor& t) {
  int64_t e = 1;
  for (int64_t d = 0; d < t.dim(); ++d) e += (t.size(d) - 1) * t.stride(d);
  return e;
}

}  // namespace

at::Tensor fft_analysis_cuda(const at::Tensor& x_in, const at::Tensor& window_in, const at::Tensor& scale_in,
                             int64_t hop, int64_t n_frames, int64_t pad_left, int64_t mode, double edge,
                             double interior, int64_t n_bins, bool zero_two_sided, bool stacked) {
  TORCH_CHECK(x_in.is_cuda() && x_in.dim() == 2, "fft_analysis_cuda: x must be a CUDA Tensor[R, L]");
  const c10::cuda::CUDAGuard guard(x_in.device());
  const auto ops = framing_operands(x_in, window_in, scale_in);
  const auto &x = ops.input, &w = ops.window, &scale = ops.scale;
  const int64_t R = x.size(0), L = x.size(1), N = w.size(0);
  TORCH_CHECK(n_bins == N / 2 + 1 || n_bins == N, "fft_analysis_cuda: n_bins must be n_fft / 2 + 1 or n_fft");
  const int two_sided = n_bins == N / 2 + 1 ? warpfft::kOneSided : zero_two_sided ? warpfft::kZero : warpfft::kMirror;
  TORCH_CHECK(two_sided != warpfft::kMirror || edge == interior, "fft_analysis_cuda: a mirrored spectrum needs "
              "edge == interior");
  // frames-major buffer: [R, T, F, 2] returned as its [R, F, T, 2] transposed view, or [R, 2F, T]
  auto out = stacked ? at::empty({R, 2 * n_bins, n_frames}, x.options())
                     : at::empty({R, n_frames, n_bins, 2}, x.options());
  if (out.numel() == 0) return stacked ? out : out.transpose(1, 2);
  const int64_t Qv = (n_frames - 1) * hop + N;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fft_analysis_cuda", [&] {
    with_half_size(N, [&](auto half) {
      constexpr int P = decltype(half)::value;
      // At most the blocks the GPU holds at once (8 of 256 threads an SM): each thread then loops
      // over several groups of frames, which spreads its twiddles (one sincospi per stage) thin.
      const int64_t resident = int64_t(8) * multiprocessors(x.get_device());
      const int64_t groups = ceil_div(R * n_frames, warpfft::kWarps * (32 / P));
      const auto blocks = static_cast<unsigned>(std::max<int64_t>(1, std::min(groups, resident)));
      with_index_type({out.numel(), R * L, Qv + hop, pad_left + L, R * n_frames}, [&](auto index) {
        using Index = decltype(index);
        warpfft::analysis_kernel<scalar_t, P, Index><<<blocks, warpfft::kThreads, 0, stream>>>(
            x.data_ptr<scalar_t>(), R, L, w.data_ptr<scalar_t>(), scale.defined() ? scale.data_ptr<scalar_t>() : nullptr,
            hop, n_frames, pad_left, static_cast<int>(mode), static_cast<scalar_t>(edge),
            static_cast<scalar_t>(interior), two_sided, !stacked, out.data_ptr<scalar_t>());
      });
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return stacked ? out : out.transpose(1, 2);
}

at::Tensor fft_synthesis_cuda(const at::Tensor& spec, bool interleaved, int64_t n_fft, const at::Tensor& window_in,
                              const at::Tensor& scale_in, int64_t hop, int64_t start, int64_t length, double edge,
                              double interior) {
  TORCH_CHECK(spec.is_cuda() && spec.dim() == (interleaved ? 4 : 3),
              "fft_synthesis_cuda: spec must be a CUDA Tensor[R, F, T, 2] or Tensor[R, 2F, T]");
  const c10::cuda::CUDAGuard guard(spec.device());
  // The spec is read through its strides (any layout, no copy).
  const auto w = window_in.contiguous();
  const auto scale = scale_in.defined() ? scale_in.contiguous() : at::Tensor();
  const int64_t R = spec.size(0), n_frames = spec.size(2), N = n_fft;
  const int64_t F = interleaved ? spec.size(1) : spec.size(1) / 2;
  TORCH_CHECK(w.size(0) == N && F >= N / 2 + 1, "fft_synthesis_cuda: spec needs n_fft / 2 + 1 bins");
  auto y = at::empty({R, length}, spec.options());
  if (y.numel() == 0) return y;
  if (n_frames == 0) return y.zero_();
  const int64_t Q = (n_frames - 1) * hop + N;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(spec.scalar_type(), "fft_synthesis_cuda", [&] {
    const auto tile = warpfft::synthesis_tile(N, hop, n_frames, warpfft::kSynthesisSmemBytes / sizeof(scalar_t));
    const int64_t n_tiles = ceil_div(n_frames, tile.frames);
    TORCH_CHECK(R * n_tiles < (int64_t(1) << 31), "fft_synthesis_cuda: too many rows x frame tiles for one launch");
    with_half_size(N, [&](auto half) {
      constexpr int P = decltype(half)::value;
      with_index_type({offset_extent(spec), y.numel(), (n_frames + tile.frames) * hop + N + Q, start + length + Q},
                      [&](auto index) {
        using Index = decltype(index);
        const warpfft::SpecStrides<Index> st{
            static_cast<Index>(spec.stride(0)), static_cast<Index>(spec.stride(1)),
            static_cast<Index>(spec.stride(2)),
            static_cast<Index>(interleaved ? spec.stride(3) : F * spec.stride(1))};
        warpfft::synthesis_kernel<scalar_t, P, Index>
            <<<static_cast<unsigned>(R * n_tiles), warpfft::kThreads, 0, stream>>>(
                spec.data_ptr<scalar_t>(), st, n_frames, w.data_ptr<scalar_t>(),
                scale.defined() ? scale.data_ptr<scalar_t>() : nullptr, hop, start, length,
                static_cast<scalar_t>(edge), static_cast<scalar_t>(interior), tile.frames, tile.halo, n_tiles,
                y.data_ptr<scalar_t>());
      });
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return y;
}

namespace {

// Window tables are cached on the device except while the current stream captures a graph (a
// cached table built during capture would be freed with the graph's private pool).
bool cuda_tables_cacheable(const at::Device& device) {
  const c10::cuda::CUDAGuard guard(device);
  return c10::cuda::currentStreamCaptureStatusMayInitCtx() == c10::cuda::CaptureStatus::None;
}

// The fused kernels take every power-of-two n_fft in [2, 64]: each replaces three to five kernels
// and the frames tensor's round trip through memory with one kernel. Their GPU timings against the
// FFT path (bench_stft.py::test_fused_kernels_vs_fft_path) decide whether the range stays
// (docs/kernels.md).
constexpr int64_t kFusedMaxNfftCuda = 64;

const StftDeviceKernels kCudaKernels{&frame_cuda,        &overlap_add_cuda,   2, kFusedMaxNfftCuda,
                                     &fft_analysis_cuda, &fft_synthesis_cuda, &cuda_tables_cacheable};
const StftKernelsRegistration kCudaRegistration(c10::DeviceType::CUDA, &kCudaKernels);

}  // namespace

TORCH_LIBRARY_IMPL(tsvq, CUDA, m) {
  m.impl("_stft_analysis", &stft_analysis_cuda);
  m.impl("_stft_synthesis", &stft_synthesis_cuda);
}

}  // namespace tsvq
