// CUDA kernels of tsvq::stft / istft and their backward:
// fft_analysis_cuda / fft_synthesis_cuda: power-of-two n_fft in [2, 64], one fused kernel each
// (framing + real FFT in registers + output layout; inverse real FFT + overlap-add + envelope):
// stft_fft_small.cuh.
// frame_cuda / overlap_add_cuda: the framing and overlap-add of the FFT path (the other n_fft,
// around cuFFT), one kernel each (stft_framing.cuh).
// All four are this file's StftDeviceKernels table (stft.h), with which it registers the public
// ops for the CUDA dispatch key.
// GPUs never take the direct-DFT path (use_direct in stft.cpp): its CUDA kernels were slower than
// cuFFT (docs/kernels.md) and were removed; the private framing ops are CPU-only.
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
#include "stft_fft_small.cuh"
#include "stft_framing.cuh"

namespace tsvq {
namespace {

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
// and the frames tensor's round trip through memory with one kernel. The public ops reach them on
// CUDA only under TSVQ_CUDA_KERNELS=all until a GPU run (bench_stft.py::test_fused_kernels) shows
// them at least as fast as torch (tsvq/ops/_cuda_defaults.py, docs/kernels.md).
constexpr int64_t kFusedMaxNfftCuda = 64;

}  // namespace

extern const StftDeviceKernels kCudaKernels;
const StftDeviceKernels kCudaKernels{&frame_cuda,        &overlap_add_cuda,   2, kFusedMaxNfftCuda,
                                     &fft_analysis_cuda, &fft_synthesis_cuda, &cuda_tables_cacheable};

TORCH_LIBRARY_IMPL(tsvq, CUDA, m) {
  using Ops = StftOps<kCudaKernels>;
  m.impl("stft", &Ops::stft);
  m.impl("istft", &Ops::istft);
  m.impl("_stft_backward", &Ops::stft_backward);
  m.impl("_istft_backward", &Ops::istft_backward);
}

}  // namespace tsvq
