// Shared pieces of the STFT / ISTFT kernels: the checks of the private framing ops (the
// centre-padding map pad_source is in stft_pad.h).
#pragma once

#include <ATen/ATen.h>

#include "../../common/checks.h"
#include "stft_pad.h"

namespace tsvq {

// Contiguous copy of an optional per-sample scale; undefined when absent.
inline at::Tensor contiguous_scale(const c10::optional<at::Tensor>& scale) {
  return scale.has_value() && scale->defined() ? scale->contiguous() : at::Tensor();
}

// x: [R, L]; basis: [N, J]; scale: [>= (T-1)*hop + N] or undefined; out [R, J, T] or, when
// interleaved, [R, J/2, T, 2] with j = z * J/2 + f.
inline void check_analysis_inputs(const at::Tensor& x, const at::Tensor& basis,
                                  const c10::optional<at::Tensor>& scale, int64_t hop,
                                  int64_t n_frames, int64_t pad_left, int64_t mode, bool interleaved) {
  check_rank(x, 2, "x", "Tensor[R, L]");
  check_rank(basis, 2, "basis", "Tensor[N, J]");
  TORCH_CHECK_TYPE(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
                   "x must be float32 or float64, got ", x.scalar_type());
  TORCH_CHECK_TYPE(basis.scalar_type() == x.scalar_type(), "basis must have the dtype of x");
  check_same_device(x, "x", basis, "basis");
  TORCH_CHECK_VALUE(hop >= 1, "hop_length must be >= 1, got ", hop);
  TORCH_CHECK_VALUE(n_frames >= 1, "n_frames must be >= 1, got ", n_frames);
  TORCH_CHECK_VALUE(mode >= 0 && mode <= 3, "pad_mode code must be in [0, 3], got ", mode);
  TORCH_CHECK_VALUE(pad_left >= 0, "pad_left must be >= 0, got ", pad_left);
  TORCH_CHECK_VALUE(!interleaved || basis.size(1) % 2 == 0, "basis must have an even J when interleaved");
  const int64_t L = x.size(1);
  TORCH_CHECK_VALUE(L >= 1, "x must have L >= 1 samples");
  TORCH_CHECK_VALUE(mode != kPadReflect || pad_left < L, "reflect padding needs pad < L, got pad ",
                    pad_left, " and L ", L);
  TORCH_CHECK_VALUE(mode != kPadCircular || pad_left <= L, "circular padding needs pad <= L, got pad ",
                    pad_left, " and L ", L);
  if (scale.has_value() && scale->defined()) {
    check_rank(*scale, 1, "scale", "Tensor[Q]");
    TORCH_CHECK_VALUE(scale->size(0) >= (n_frames - 1) * hop + basis.size(0),
                      "scale must cover (n_frames - 1) * hop + N samples");
    TORCH_CHECK_TYPE(scale->scalar_type() == x.scalar_type(), "scale must have the dtype of x");
    check_same_device(x, "x", *scale, "scale");
  }
}

// spec: [R, J, T] or [R, J/2, T, 2]; basis: [J, N]; scale: [(T-1)*hop + N] or undefined.
inline void check_synthesis_inputs(const at::Tensor& spec, const at::Tensor& basis,
                                   const c10::optional<at::Tensor>& scale, int64_t hop,
                                   int64_t start, int64_t length, bool interleaved) {
  check_rank(spec, interleaved ? 4 : 3, "spec", interleaved ? "Tensor[R, F, T, 2]" : "Tensor[R, J, T]");
  check_rank(basis, 2, "basis", "Tensor[J, N]");
  TORCH_CHECK_TYPE(spec.scalar_type() == at::kFloat || spec.scalar_type() == at::kDouble,
                   "spec must be float32 or float64, got ", spec.scalar_type());
  TORCH_CHECK_TYPE(basis.scalar_type() == spec.scalar_type(), "basis must have the dtype of spec");
  check_same_device(spec, "spec", basis, "basis");
  const int64_t J = interleaved ? 2 * spec.size(1) : spec.size(1);
  TORCH_CHECK_VALUE(!interleaved || spec.size(3) == 2, "spec must end in a dimension of 2 when interleaved");
  TORCH_CHECK_VALUE(basis.size(0) == J, "basis must be Tensor[J, N] with J == ", J, ", got ", basis.sizes());
  TORCH_CHECK_VALUE(hop >= 1, "hop_length must be >= 1, got ", hop);
  TORCH_CHECK_VALUE(start >= 0 && length >= 0, "start and length must be >= 0");
  TORCH_CHECK_VALUE(spec.size(2) >= 1 || !interleaved, "spec must have T >= 1 frames");
  if (scale.has_value() && scale->defined()) {
    const int64_t T = spec.size(2);
    check_rank(*scale, 1, "scale", "Tensor[Q]");
    TORCH_CHECK_VALUE(scale->size(0) >= (T - 1) * hop + basis.size(1),
                      "scale must cover (n_frames - 1) * hop + N samples");
    TORCH_CHECK_TYPE(scale->scalar_type() == spec.scalar_type(), "scale must have the dtype of spec");
    check_same_device(spec, "spec", *scale, "scale");
  }
}

// The operands of frame_* / overlap_add_* below as their kernels read them: contiguous input,
// window and scale (undefined when absent; the callers pass window and scale in the input's dtype).
struct FramingOperands {
  at::Tensor input, window, scale;
};
inline FramingOperands framing_operands(const at::Tensor& input, const at::Tensor& window, const at::Tensor& scale) {
  return {input.contiguous(), window.contiguous(), scale.defined() ? scale.contiguous() : at::Tensor()};
}

// The FFT path's kernels of one device type, semantics below. stft_cpu.cpp (CPU) and stft_cuda.cu
// (CUDA, compiled only in builds with CUDA kernels) each register the public ops for their dispatch
// key as the *_impl bodies of stft.cpp with their own table: one implementation per dispatch key,
// no device branches in the op code. Other devices (and CUDA tensors in a build without CUDA
// kernels) have no implementation: the Python wrappers take the pure-PyTorch reference there.
//
// frame: x [R, L] -> frames [R, n_frames, N], frames[r, t, n] = window[n] * scale[q] * xpad[r, q],
//   q = t * hop + n, xpad the series padded by pad_left with `mode` (scale undefined: 1).
// overlap_add: frames [R, T, N] -> y [R, length], y[r, p] = scale[p + start] *
//   sum_{t, n: t * hop + n = p + start} window[n] * frames[r, t, n] (scale undefined: 1).
// fused_analysis / fused_synthesis: the fused kernels for power-of-two n_fft = N in
//   [fused_min_nfft, fused_max_nfft] (framing + real FFT in one pass; inverse FFT + overlap-add +
//   envelope in one). Bin k of a frame is multiplied by `edge` (k = 0, N / 2) or `interior`.
//   fused_analysis: x [R, L] -> bins 0..n_bins-1 of rfft(frames) (frames as `frame`), as the
//   [R, F, T, 2] transposed view of a frames-major buffer, or [R, 2F, T] when stacked. n_bins is
//   N / 2 + 1, or N: the bins past N / 2 zero (zero_two_sided) or the conjugate mirror (then edge
//   must equal interior).
//   fused_synthesis: spec [R, F, T, 2] (interleaved) or [R, 2F, T], read through its strides, F >=
//   N / 2 + 1 (bins past N / 2 ignored) -> y [R, length], y[r, p] = scale[q] * sum_t window[n] *
//   (N irfft(weighted bins of frame t))[n], q = p + start = t * hop + n (scale undefined: 1).
// tables_cacheable: whether window tables on `device` may be cached now (CUDA: not while the current
//   stream captures a graph); nullptr: built per call.
struct StftDeviceKernels {
  at::Tensor (*frame)(const at::Tensor& x, const at::Tensor& window, const at::Tensor& scale, int64_t hop,
                      int64_t n_frames, int64_t pad_left, int64_t mode);
  at::Tensor (*overlap_add)(const at::Tensor& frames, const at::Tensor& window, const at::Tensor& scale,
                            int64_t hop, int64_t start, int64_t length);
  int64_t fused_min_nfft, fused_max_nfft;
  at::Tensor (*fused_analysis)(const at::Tensor& x, const at::Tensor& window, const at::Tensor& scale, int64_t hop,
                               int64_t n_frames, int64_t pad_left, int64_t mode, double edge, double interior,
                               int64_t n_bins, bool zero_two_sided, bool stacked);
  at::Tensor (*fused_synthesis)(const at::Tensor& spec, bool interleaved, int64_t n_fft, const at::Tensor& window,
                                const at::Tensor& scale, int64_t hop, int64_t start, int64_t length, double edge,
                                double interior);
  bool (*tables_cacheable)(const at::Device& device);
};

// The bodies of the public ops (stft.cpp) for a device with kernels `k`; schemas in stft.cpp.
at::Tensor stft_impl(const StftDeviceKernels& k, const at::Tensor& x, int64_t n_fft, int64_t hop,
                     const at::Tensor& window, bool center, c10::string_view pad_mode, bool normalized,
                     bool onesided, bool stacked);
at::Tensor istft_impl(const StftDeviceKernels& k, const at::Tensor& spec, int64_t n_fft, int64_t hop,
                      const at::Tensor& window, bool center, bool normalized, bool onesided, int64_t length,
                      bool stacked);
at::Tensor stft_backward_impl(const StftDeviceKernels& k, const at::Tensor& grad, int64_t L, int64_t n_fft,
                              int64_t hop, const at::Tensor& window, bool center, c10::string_view pad_mode,
                              bool normalized, bool onesided, bool stacked);
at::Tensor istft_backward_impl(const StftDeviceKernels& k, const at::Tensor& grad_y, int64_t F, int64_t T,
                               int64_t n_fft, int64_t hop, const at::Tensor& window, bool center, bool normalized,
                               bool onesided, bool stacked);

// The public ops' implementations for the dispatch key of kernels `K` (a static table).
template <const StftDeviceKernels& K>
struct StftOps {
  static at::Tensor stft(const at::Tensor& x, int64_t n_fft, int64_t hop, const at::Tensor& window, bool center,
                         c10::string_view pad_mode, bool normalized, bool onesided, bool stacked) {
    return stft_impl(K, x, n_fft, hop, window, center, pad_mode, normalized, onesided, stacked);
  }
  static at::Tensor istft(const at::Tensor& spec, int64_t n_fft, int64_t hop, const at::Tensor& window,
                          bool center, bool normalized, bool onesided, int64_t length, bool stacked) {
    return istft_impl(K, spec, n_fft, hop, window, center, normalized, onesided, length, stacked);
  }
  static at::Tensor stft_backward(const at::Tensor& grad, int64_t L, int64_t n_fft, int64_t hop,
                                  const at::Tensor& window, bool center, c10::string_view pad_mode, bool normalized,
                                  bool onesided, bool stacked) {
    return stft_backward_impl(K, grad, L, n_fft, hop, window, center, pad_mode, normalized, onesided, stacked);
  }
  static at::Tensor istft_backward(const at::Tensor& grad_y, int64_t F, int64_t T, int64_t n_fft, int64_t hop,
                                   const at::Tensor& window, bool center, bool normalized, bool onesided,
                                   bool stacked) {
    return istft_backward_impl(K, grad_y, F, T, n_fft, hop, window, center, normalized, onesided, stacked);
  }
};

}  // namespace tsvq
