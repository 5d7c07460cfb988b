// STFT / ISTFT with torch.stft / torch.istft semantics, forward and adjoint backward.
//
// Public ops (schemas here; each device file registers its implementation for its dispatch key,
// the bodies below with the device's kernels, stft.h):
//   stft(x[B, C, L], n_fft, hop_length, window[n_fft], center, pad_mode, normalized, onesided,
//        stacked) -> [B, C, F, T, 2] (real, imaginary last) or, when stacked, [B, 2C, F, T]
//        (channel 2c real, 2c + 1 imaginary: the TimeVQVAE layout), written in that layout.
//   istft(spec, n_fft, hop_length, window, center, normalized, onesided, length, stacked)
//        -> [B, C, L]; spec in either layout; length < 0 means "natural length".
//   _stft_backward / _istft_backward: the adjoints (used by autograd; linear, so their own
//        backward is the forward op).
// Direct path (n_fft <= 16 on CPUs; not taken on GPUs, see use_direct): the DFT is a real GEMM against a basis matrix whose columns are
// w[n] cos(2 pi f n / N) and -w[n] sin(2 pi f n / N) (window and normalisation folded in),
// evaluated by the private framing kernels _stft_analysis / _stft_synthesis (CPU only), which
// read the centre padding by index arithmetic and overlap-add in the same pass. Above that the op
// uses ATen's FFTs (rfft / irfft) with the same padding, windowing and overlap-add, each a single
// pass: frame / overlap_add below (one-pass loops on CPUs, stft_cpu.cpp; one kernel each on CUDA,
// stft_framing.cuh; each device file passes its kernels as a StftDeviceKernels table, stft.h).
// On CUDA, power-of-two n_fft in [2, 64] instead take one fused kernel per op
// (framing + real FFT in registers, or inverse FFT + overlap-add + envelope: stft_fft_small.cuh),
// and on CPUs n_fft = 32 the same algorithm on blocks of frames (stft_cpu.cpp); see use_fused_fft
// (the two-sided stft_backward excepted). The window tables (bases, envelope) are cached per window: cached_table.
// The ISTFT divides by the window envelope sum_t w^2[q - t hop] without any host
// synchronisation (torch.istft's NOLA check reads the envelope back: pytorch issue 94718);
// positions where the envelope vanishes are set to 0, and the Python wrapper checks NOLA on the
// host from the window alone.
#include <ATen/ATen.h>
#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <c10/util/intrusive_ptr.h>
#include <torch/library.h>

#include <atomic>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <mutex>
#include <tuple>

#include "stft.h"

namespace tsvq {
namespace {

// Largest n_fft evaluated by the direct-DFT kernels (every path returns the same output layout,
// so nothing outside this file depends on the choice). CPUs: the O(n_fft^2) direct DFT only beats
// pocketfft/MKL for small transforms.
// GPUs: none. CUDA direct kernels ran at 0.12x-0.72x of torch's cuFFT path for n_fft 8..64, this
// op's FFT path at 0.81x-0.90x (docs/kernels.md), so GPUs take the FFT path or the fused kernels.
constexpr int64_t kDirectMaxNfftCpu = 16;
constexpr int64_t kDirectMaxNfftGpu = 0;

bool use_direct(int64_t n_fft, const at::Device& device) {
  return n_fft <= (device.is_cpu() ? kDirectMaxNfftCpu : kDirectMaxNfftGpu);
}

// The fused kernels (framing, FFT and output layout in one pass; inverse FFT, overlap-add and
// envelope in one) take the power-of-two n_fft in the range the device registered, in place of
// frame / overlap_add around ATen's FFT. The ranges and their measurements are in the device files:
// kFusedNfftCpu (stft_cpu.cpp), kFusedMaxNfftCuda (stft_cuda.cu).
bool use_fused_fft(const StftDeviceKernels& k, int64_t n_fft) {
  if (n_fft < 2 || (n_fft & (n_fft - 1)) != 0) return false;
  return n_fft >= k.fused_min_nfft && n_fft <= k.fused_max_nfft;
}

int64_t pad_mode_code(c10::string_view mode) {
  if (mode == "constant") return kPadConstant;
  if (mode == "reflect") return kPadReflect;
  if (mode == "replicate") return kPadReplicate;
  if (mode == "circular") return kPadCircular;
  TORCH_CHECK_VALUE(false, "pad_mode must be 'constant', 'reflect', 'replicate' or 'circular', got '",
                    std::string(mode), "'");
  return 0;
}

const char* pad_mode_name(int64_t code) {
  static const char* names[] = {"constant", "reflect", "replicate", "circular"};
  return names[code];
}

// cos / sin of 2 pi f n / N for f < F, n < N: Tensor[2, F, N], cached per (N, F, device, dtype).
// The cache is leaked on purpose so that no device memory is freed after the allocator at exit.
at::Tensor trig_table(int64_t N, int64_t F, const at::TensorOptions& opts) {
  using Key = std::tuple<int64_t, int64_t, int, int, int>;
  static auto* cache = new std::map<Key, at::Tensor>();
  static std::mutex mutex;
  const Key key{N, F, static_cast<int>(opts.device().type()), opts.device().index(),
                static_cast<int>(opts.dtype().toScalarType())};
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache->find(key);
  if (it != cache->end()) return it->second;
  auto host = at::empty({2, F, N}, at::kDouble);
  auto h = host.accessor<double, 3>();
  for (int64_t f = 0; f < F; ++f)
    for (int64_t n = 0; n < N; ++n) {
      const double angle = 2.0 * M_PI * static_cast<double>((f * n) % N) / static_cast<double>(N);
      h[0][f][n] = std::cos(angle);
      h[1][f][n] = std::sin(angle);
    }
  auto table = host.to(opts);
  cache->emplace(key, table);
  return table;
}

// Analysis basis rows [2F, N]: s w[n] cos, -s w[n] sin (transpose for the forward kernel).
at::Tensor analysis_rows(int64_t n_fft, int64_t F, const at::Tensor& window, bool normalized) {
  auto trig = trig_table(n_fft, F, window.options());
  const double s = normalized ? 1.0 / std::sqrt(static_cast<double>(n_fft)) : 1.0;
  return at::cat({trig[0], -trig[1]}, 0) * (window * s).unsqueeze(0);
}

// Weights of the first n_fft / 2 + 1 bins in a real inverse DFT written as a sum over the
// one-sided bins: 1 for DC and (even n_fft) Nyquist, `interior` for the others, 0 for bins past
// n_fft / 2 (a two-sided spectrum). Tensor[F] built on the device: no host copy per call.
at::Tensor onesided_bin_weights(int64_t n_fft, int64_t F, double interior, const at::TensorOptions& opts) {
  const int64_t used = std::min(F, n_fft / 2 + 1);
  auto c = at::zeros({F}, opts);
  c.narrow(0, 0, used).fill_(interior);
  c.narrow(0, 0, 1).fill_(1.0);
  if (n_fft % 2 == 0 && n_fft / 2 < F) c.narrow(0, n_fft / 2, 1).fill_(1.0);
  return c;
}

// Synthesis basis [2F, N] of the inverse real DFT as torch.istft computes it (irfft of the first
// n_fft / 2 + 1 bins, imaginary parts of DC / Nyquist ignored), times the window.
at::Tensor synthesis_rows(int64_t n_fft, int64_t F, const at::Tensor& window, bool normalized) {
  auto trig = trig_table(n_fft, F, window.options());
  const double s = normalized ? 1.0 / std::sqrt(static_cast<double>(n_fft)) : 1.0 / static_cast<double>(n_fft);
  auto cw = onesided_bin_weights(n_fft, F, 2.0, window.options()).unsqueeze(1);
  return at::cat({trig[0] * cw, -trig[1] * cw}, 0) * (window * s).unsqueeze(0);
}

// 1 / sum_t w^2[q - t hop] over q in [0, (T-1) hop + N); 0 where the envelope vanishes.
at::Tensor inverse_envelope(const at::Tensor& window, int64_t hop, int64_t n_frames) {
  const int64_t N = window.size(0);
  const int64_t Q = (n_frames - 1) * hop + N;
  auto env = at::unfold_backward((window * window).unsqueeze(0).expand({n_frames, N}), {Q}, 0, N, hop);
  return at::where(env > 1e-11, env.reciprocal(), at::zeros_like(env));
}

// Tables derived from the window (DFT bases, inverse envelope, scaled window) or from a few
// integers only (one-sided bin weights), cached so that a repeated call builds none of them (about
// ten small ops, which dominate a small STFT; on GPUs as many kernel launches).
//  * CPU: keyed by the window's values (reading a CPU window is free, so a hit can never be stale).
//  * CUDA: reading the window back would synchronise, so the key is the window tensor itself (held
//    by a weak reference: the entry never keeps it alive, and its address cannot be reused while
//    the entry exists) with its version counter, which every in-place change bumps, views
//    included. That is the guarantee autograd gives its saved tensors, with the same exception
//    (writes through `.data` are not seen). Inference tensors (no version counter) and tensor
//    subclasses are never cached, nor is anything while the stream captures a CUDA graph (the
//    graph replays its own build). A table is built on the current stream; an event recorded after
//    the build makes another stream wait for it on the device (no host synchronisation), and
//    record_stream keeps its memory from reuse under that stream's work if the entry is evicted.
//  * Elsewhere (other devices, CUDA tensors in a build without CUDA kernels): rebuilt per call.
// Each cache is bounded: cleared at 512 entries (on CUDA after dropping those of freed windows).
enum TableKind : char {
  kAnalysisNJ = 0, kAnalysisJN = 1, kSynthesisJN = 2, kSynthesisNJ = 3, kInvEnvelope = 4, kScaledWindow = 5,
  kAdjointBinWeights = 6, kInverseBinWeights = 7
};
constexpr size_t kMaxTables = 512;

std::string table_key(TableKind kind, const at::TensorOptions& opts, std::initializer_list<int64_t> params) {
  std::string key(1, static_cast<char>(kind));
  key.push_back(static_cast<char>(opts.device().type()));
  key.push_back(static_cast<char>(opts.device().index()));
  key.push_back(static_cast<char>(opts.dtype().toScalarType()));
  for (int64_t p : params) key.append(reinterpret_cast<const char*>(&p), sizeof(p));
  return key;
}

bool device_tables_cacheable(const StftDeviceKernels& k, const at::Device& device) {
  return k.tables_cacheable != nullptr && k.tables_cacheable(device);
}

struct DeviceTable {
  bool has_window;
  c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl> window;
  uint32_t version;
  at::Tensor table;
  std::shared_ptr<c10::Event> ready;  // recorded on `stream` after the build
  c10::Stream stream;
};

// The table `build()` makes for (kind, window, params) in `opts`; window undefined for tables of
// the parameters alone.
template <typename Build>
at::Tensor cached_table(const StftDeviceKernels& k, TableKind kind, const at::Tensor& window,
                        const at::TensorOptions& opts, std::initializer_list<int64_t> params, Build build) {
  const at::Device device = opts.device();
  std::string key = table_key(kind, opts, params);
  if (device.is_cpu()) {
    if (window.defined()) {
      auto w = window.contiguous();
      key.push_back(static_cast<char>(w.scalar_type()));
      key.append(reinterpret_cast<const char*>(w.data_ptr()), w.numel() * w.element_size());
    }
    static auto* cache = new std::unordered_map<std::string, at::Tensor>();
    static std::mutex mutex;
    {
      std::lock_guard<std::mutex> lock(mutex);
      auto it = cache->find(key);
      if (it != cache->end()) return it->second;
    }
    at::Tensor table = build();
    std::lock_guard<std::mutex> lock(mutex);
    if (cache->size() >= kMaxTables) cache->clear();
    cache->emplace(std::move(key), table);
    return table;
  }
  if (!device_tables_cacheable(k, device)) return build();
  uint32_t version = 0;
  if (window.defined()) {
    if (window.is_inference() || window.key_set().has(c10::DispatchKey::Python)) return build();
    version = window.unsafeGetTensorImpl()->version_counter().current_version();
    const auto address = reinterpret_cast<uintptr_t>(window.unsafeGetTensorImpl());
    key.append(reinterpret_cast<const char*>(&address), sizeof(address));
  }
  const c10::impl::VirtualGuardImpl guard_impl(device.type());
  const c10::Stream current = guard_impl.getStream(device);
  static auto* cache = new std::unordered_map<std::string, DeviceTable>();
  static std::mutex mutex;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache->find(key);
    if (it != cache->end() && it->second.version == version &&
        (!it->second.has_window || !it->second.window.expired())) {
      DeviceTable& e = it->second;
      if (e.stream != current) {
        e.ready->block(current);
        e.table.record_stream(current);
      }
      return e.table;
    }
  }
  at::Tensor table = build();
  auto ready = std::make_shared<c10::Event>(device.type());
  ready->record(current);
  c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl> weak(
      window.defined() ? window.getIntrusivePtr()
                       : c10::intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>());
  std::lock_guard<std::mutex> lock(mutex);
  if (cache->size() >= kMaxTables) {
    for (auto it = cache->begin(); it != cache->end();)
      it = it->second.has_window && it->second.window.expired() ? cache->erase(it) : std::next(it);
    if (cache->size() >= kMaxTables) cache->clear();
  }
  cache->insert_or_assign(std::move(key),
                          DeviceTable{window.defined(), std::move(weak), version, table, std::move(ready), current});
  return table;
}

template <typename Build>
at::Tensor window_table(const StftDeviceKernels& k, TableKind kind, const at::Tensor& window,
                        std::initializer_list<int64_t> params, Build build) {
  return cached_table(k, kind, window, window.options(), params, build);
}

// Adjoint of the centre padding: gradient of the padded series [R, L + 2 pad] -> [R, L].
at::Tensor pad_adjoint(const at::Tensor& gp, int64_t L, int64_t pad, int64_t mode) {
  if (pad == 0) return gp.narrow(1, 0, L).contiguous();
  auto g = gp.narrow(1, pad, L).clone();
  auto left = gp.narrow(1, 0, pad), right = gp.narrow(1, pad + L, pad);
  switch (mode) {
    case kPadReflect:  // left q -> pad - q (source 1..pad), right -> L-2 .. L-1-pad
      g.narrow(1, 1, pad).add_(left.flip({1}));
      g.narrow(1, L - 1 - pad, pad).add_(right.flip({1}));
      break;
    case kPadReplicate:
      g.narrow(1, 0, 1).add_(left.sum(1, true));
      g.narrow(1, L - 1, 1).add_(right.sum(1, true));
      break;
    case kPadCircular:
      g.narrow(1, L - pad, pad).add_(left);
      g.narrow(1, 0, pad).add_(right);
      break;
    default:
      break;
  }
  return g;
}

struct Geometry {
  int64_t B, C, L, N, hop, pad, mode, T, F;
};

void check_window(const at::Tensor& window, const at::Tensor& ref, const char* ref_name, int64_t n_fft) {
  check_rank(window, 1, "window", "Tensor[n_fft]");
  TORCH_CHECK_VALUE(window.size(0) == n_fft, "window must be Tensor[n_fft] with n_fft == ", n_fft,
                    " (pad a shorter window to n_fft, centred), got ", window.sizes());
  TORCH_CHECK_TYPE(window.scalar_type() == ref.scalar_type(), "window must have the dtype of ", ref_name,
                   " (", ref.scalar_type(), "), got ", window.scalar_type());
  check_same_device(ref, ref_name, window, "window");
}

void check_real_float(const at::Tensor& t, const char* name) {
  TORCH_CHECK_TYPE(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, name,
                   " must be float32 or float64 (the Python wrappers upcast float16/bfloat16), got ",
                   t.scalar_type());
}

Geometry stft_geometry(const at::Tensor& x, int64_t n_fft, int64_t hop, const at::Tensor& window,
                       bool center, c10::string_view pad_mode, bool onesided) {
  check_rank(x, 3, "x", "Tensor[B, C, L]");
  check_real_float(x, "x");
  TORCH_CHECK_VALUE(n_fft >= 1, "n_fft must be >= 1, got ", n_fft);
  TORCH_CHECK_VALUE(hop >= 1, "hop_length must be >= 1, got ", hop);
  check_window(window, x, "x", n_fft);
  Geometry g{x.size(0), x.size(1), x.size(2), n_fft, hop, center ? n_fft / 2 : 0, pad_mode_code(pad_mode), 0,
             onesided ? n_fft / 2 + 1 : n_fft};
  TORCH_CHECK_VALUE(g.L >= 1, "x must have L >= 1 samples, got shape ", x.sizes());
  if (g.pad > 0 && g.mode == kPadReflect)
    TORCH_CHECK_VALUE(g.pad < g.L, "x is too short for reflect padding: center=True pads n_fft // 2 = ", g.pad,
                      " samples on each side, which needs L > ", g.pad, ", got L = ", g.L);
  if (g.pad > 0 && g.mode == kPadCircular)
    TORCH_CHECK_VALUE(g.pad <= g.L, "x is too short for circular padding: needs L >= n_fft // 2 = ", g.pad,
                      ", got L = ", g.L);
  const int64_t Lp = g.L + 2 * g.pad;
  TORCH_CHECK_VALUE(Lp >= n_fft, "x is shorter than n_fft: L", center ? " + 2 * (n_fft // 2)" : "", " = ", Lp,
                    " < n_fft = ", n_fft);
  g.T = 1 + (Lp - n_fft) / hop;
  return g;
}

const c10::TypedOperatorHandle<at::Tensor(const at::Tensor&, const at::Tensor&,
                                          const c10::optional<at::Tensor>&, int64_t, int64_t, int64_t,
                                          int64_t, bool)>&
analysis_op() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("tsvq::_stft_analysis", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&,
                                         const c10::optional<at::Tensor>&, int64_t, int64_t, int64_t,
                                         int64_t, bool)>();
  return op;
}

const c10::TypedOperatorHandle<at::Tensor(const at::Tensor&, const at::Tensor&,
                                          const c10::optional<at::Tensor>&, int64_t, int64_t, int64_t,
                                          bool)>&
synthesis_op() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("tsvq::_stft_synthesis", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&,
                                         const c10::optional<at::Tensor>&, int64_t, int64_t, int64_t,
                                         bool)>();
  return op;
}

// [R, F, T, 2] (interleaved) or [R, 2F, T] -> complex [R, T, F] (a copy).
at::Tensor to_complex_frames(const at::Tensor& spec, int64_t F, bool interleaved) {
  at::Tensor ri;  // [R, T, F, 2]
  if (interleaved) {
    ri = spec.transpose(1, 2);
  } else {
    ri = spec.reshape({spec.size(0), 2, F, spec.size(2)}).permute({0, 3, 2, 1});
  }
  return at::view_as_complex(ri.contiguous());
}

// complex [R, T, F] -> [R, F, T, 2] or [R, 2F, T]. The interleaved layout is returned as a
// transposed view of the frames-major FFT output (as torch.stft does): no layout copy; the
// fake kernels in tsvq/ops/stft.py give the same strides.
at::Tensor from_complex_frames(const at::Tensor& z, bool interleaved) {
  auto ri = at::view_as_real(z);  // [R, T, F, 2]
  if (interleaved) return ri.transpose(1, 2);
  return ri.permute({0, 3, 2, 1}).contiguous().reshape({z.size(0), 2 * z.size(2), z.size(1)});
}

at::Tensor shape_stft_output(const at::Tensor& out, const Geometry& g, bool stacked) {
  // out: [R, F, T, 2] when !stacked, [R, 2F, T] when stacked.
  if (stacked) return out.view({g.B, 2 * g.C, g.F, g.T});  // [R, 2F, T] == [B, C, 2, F, T]
  return out.view({g.B, g.C, g.F, g.T, 2});
}

}  // namespace

at::Tensor stft_impl(const StftDeviceKernels& k, const at::Tensor& x, int64_t n_fft, int64_t hop,
                     const at::Tensor& window, bool center, c10::string_view pad_mode, bool normalized,
                     bool onesided, bool stacked) {
  const auto g = stft_geometry(x, n_fft, hop, window, center, pad_mode, onesided);
  const int64_t R = g.B * g.C;
  auto x2 = x.reshape({R, g.L});
  at::Tensor out;
  if (use_direct(n_fft, x.device())) {
    auto basis = window_table(k, kAnalysisNJ, window, {n_fft, g.F, normalized}, [&] {
      return analysis_rows(n_fft, g.F, window, normalized).t().contiguous();  // [N, 2F]
    });
    out = analysis_op().call(x2, basis, c10::nullopt, hop, g.T, g.pad, g.mode, !stacked);
  } else if (use_fused_fft(k, n_fft)) {
    const double s = normalized ? 1.0 / std::sqrt(static_cast<double>(n_fft)) : 1.0;
    out = k.fused_analysis(x2, window, at::Tensor(), hop, g.T, g.pad, g.mode, s, s, g.F, false, stacked);
  } else {
    auto frames = k.frame(x2, window, at::Tensor(), hop, g.T, g.pad, g.mode);  // [R, T, N]
    auto norm = normalized ? "ortho" : "backward";
    auto z = onesided ? at::fft_rfft(frames, n_fft, -1, norm) : at::fft_fft(frames, n_fft, -1, norm);
    out = from_complex_frames(z, !stacked);
  }
  return shape_stft_output(out, g, stacked);
}

namespace {

// spec of the public layout -> [R, F, T, 2] (interleaved) or [R, 2F, T], plus B, C, F, T.
std::tuple<at::Tensor, int64_t, int64_t, int64_t, int64_t> flatten_spec(const at::Tensor& spec, bool stacked,
                                                                        const char* name) {
  if (stacked) {
    check_rank(spec, 4, name, "Tensor[B, 2C, F, T]");
    TORCH_CHECK_VALUE(spec.size(1) % 2 == 0, name, " must have an even number of channels 2C (real and "
                      "imaginary parts), got shape ", spec.sizes());
    const int64_t B = spec.size(0), C = spec.size(1) / 2, F = spec.size(2), T = spec.size(3);
    return {spec.reshape({B * C, 2 * F, T}), B, C, F, T};
  }
  check_rank(spec, 5, name, "Tensor[B, C, F, T, 2]");
  TORCH_CHECK_VALUE(spec.size(4) == 2, name, " must end in a (real, imaginary) dimension of 2, got shape ",
                    spec.sizes());
  const int64_t B = spec.size(0), C = spec.size(1), F = spec.size(2), T = spec.size(3);
  return {spec.reshape({B * C, F, T, 2}), B, C, F, T};
}

struct InverseGeometry {
  int64_t B, C, F, T, N, hop, start, length, Q;
};

InverseGeometry istft_geometry(const at::Tensor& spec, int64_t B, int64_t C, int64_t F, int64_t T, int64_t n_fft,
                               int64_t hop, const at::Tensor& window, bool center, bool onesided, int64_t length) {
  check_real_float(spec, "spec");
  TORCH_CHECK_VALUE(n_fft >= 1, "n_fft must be >= 1, got ", n_fft);
  TORCH_CHECK_VALUE(hop >= 1, "hop_length must be >= 1, got ", hop);
  check_window(window, spec, "spec", n_fft);
  const int64_t expect_f = onesided ? n_fft / 2 + 1 : n_fft;
  TORCH_CHECK_VALUE(F == expect_f, "spec must have F = ", onesided ? "n_fft // 2 + 1 = " : "n_fft = ", expect_f,
                    " frequency bins for n_fft = ", n_fft, " and onesided = ", onesided ? "True" : "False",
                    ", got F = ", F);
  TORCH_CHECK_VALUE(T >= 1, "spec must have T >= 1 frames, got T = ", T);
  const int64_t Q = n_fft + hop * (T - 1);
  const int64_t start = center ? n_fft / 2 : 0;
  int64_t out_len = length;
  if (length < 0) out_len = center ? Q - start - n_fft / 2 : Q;
  TORCH_CHECK_VALUE(out_len >= 0, "the frames of spec cover ", Q, " samples, fewer than the centre padding");
  return {B, C, F, T, n_fft, hop, start, out_len, Q};
}

}  // namespace

at::Tensor istft_impl(const StftDeviceKernels& k, const at::Tensor& spec_in, int64_t n_fft, int64_t hop,
                      const at::Tensor& window, bool center, bool normalized, bool onesided, int64_t length,
                      bool stacked) {
  auto [spec, B, C, F, T] = flatten_spec(spec_in, stacked, "spec");
  const auto g = istft_geometry(spec_in, B, C, F, T, n_fft, hop, window, center, onesided, length);
  auto inv_env = window_table(k, kInvEnvelope, window, {hop, T}, [&] { return inverse_envelope(window, hop, T); });
  at::Tensor y;
  if (use_direct(n_fft, spec.device())) {
    auto basis = window_table(k, kSynthesisJN, window, {n_fft, F, normalized}, [&] {
      return synthesis_rows(n_fft, F, window, normalized);  // [2F, N]
    });
    y = synthesis_op().call(spec, basis, inv_env, hop, g.start, g.length, !stacked);
  } else if (use_fused_fft(k, n_fft)) {
    const double s = normalized ? 1.0 / std::sqrt(static_cast<double>(n_fft)) : 1.0 / static_cast<double>(n_fft);
    y = k.fused_synthesis(spec, !stacked, n_fft, window, inv_env, hop, g.start, g.length, s, s);
  } else {
    auto z = to_complex_frames(spec, F, !stacked);  // [R, T, F]
    if (!onesided) z = z.narrow(2, 0, n_fft / 2 + 1);
    auto frames = at::fft_irfft(z, n_fft, -1, normalized ? "ortho" : "backward");  // [R, T, N]
    y = k.overlap_add(frames, window, inv_env, hop, g.start, g.length);
  }
  return y.view({B, C, g.length});
}

at::Tensor stft_backward_impl(const StftDeviceKernels& k, const at::Tensor& grad_in, int64_t L, int64_t n_fft,
                              int64_t hop, const at::Tensor& window, bool center, c10::string_view pad_mode,
                              bool normalized, bool onesided, bool stacked) {
  auto [grad, B, C, F, T] = flatten_spec(grad_in, stacked, "grad");
  check_real_float(grad_in, "grad");
  TORCH_CHECK_VALUE(n_fft >= 1 && hop >= 1, "n_fft and hop_length must be >= 1");
  check_window(window, grad_in, "grad", n_fft);
  const int64_t pad = center ? n_fft / 2 : 0, mode = pad_mode_code(pad_mode);
  const int64_t Lp = L + 2 * pad, Q = (T - 1) * hop + n_fft;
  TORCH_CHECK_VALUE(Q <= Lp && F == (onesided ? n_fft / 2 + 1 : n_fft), "grad does not match an STFT of length ", L);
  at::Tensor gp;  // [R, Lp]
  if (use_direct(n_fft, grad.device())) {
    auto basis = window_table(k, kAnalysisJN, window, {n_fft, F, normalized}, [&] {
      return analysis_rows(n_fft, F, window, normalized);  // [2F, N]
    });
    gp = synthesis_op().call(grad, basis, c10::nullopt, hop, 0, Lp, !stacked);
  } else if (onesided && use_fused_fft(k, n_fft)) {
    // frames = n_fft irfft(bins x (1, 1/2, ..., 1/2, 1)), times the (scaled) window
    const double s = normalized ? 1.0 / std::sqrt(static_cast<double>(n_fft)) : 1.0;
    gp = k.fused_synthesis(grad, !stacked, n_fft, window, at::Tensor(), hop, 0, Lp, s, 0.5 * s);
  } else {
    auto z = to_complex_frames(grad, F, !stacked);  // [R, T, F]
    at::Tensor frames;
    if (onesided) {
      const auto opts = z.options().dtype(grad.scalar_type());
      auto w = cached_table(k, kAdjointBinWeights, at::Tensor(), opts, {n_fft, F},
                            [&] { return onesided_bin_weights(n_fft, F, 0.5, opts); });
      frames = at::fft_irfft(z * w, n_fft, -1, "forward");  // = n_fft * irfft(...)
    } else {
      frames = at::real(at::fft_ifft(z, n_fft, -1, "forward"));
    }
    const auto w = !normalized ? window : window_table(k, kScaledWindow, window, {n_fft}, [&] {
      return window * (1.0 / std::sqrt(static_cast<double>(n_fft)));
    });
    gp = k.overlap_add(frames, w, at::Tensor(), hop, 0, Lp);
  }
  return pad_adjoint(gp, L, pad, mode).view({B, C, L});
}

at::Tensor istft_backward_impl(const StftDeviceKernels& k, const at::Tensor& grad_y, int64_t F, int64_t T,
                               int64_t n_fft, int64_t hop, const at::Tensor& window, bool center, bool normalized,
                               bool onesided, bool stacked) {
  check_rank(grad_y, 3, "grad", "Tensor[B, C, L]");
  check_real_float(grad_y, "grad");
  const int64_t B = grad_y.size(0), C = grad_y.size(1), R = B * C, length = grad_y.size(2);
  const auto g = istft_geometry(grad_y, B, C, F, T, n_fft, hop, window, center, onesided, length);
  auto inv_env = window_table(k, kInvEnvelope, window, {hop, T}, [&] { return inverse_envelope(window, hop, T); });
  auto gy = grad_y.reshape({R, length});
  at::Tensor out;  // [R, F, T, 2] or [R, 2F, T]
  if (use_direct(n_fft, grad_y.device())) {
    auto basis = window_table(k, kSynthesisNJ, window, {n_fft, F, normalized}, [&] {
      return synthesis_rows(n_fft, F, window, normalized).t().contiguous();  // [N, 2F]
    });
    out = analysis_op().call(gy, basis, inv_env, hop, T, g.start, kPadConstant, !stacked);
  } else if (use_fused_fft(k, n_fft)) {
    // rfft of the framed (envelope-scaled, windowed) gradient times the one-sided inverse's weights
    const double s = normalized ? 1.0 / std::sqrt(static_cast<double>(n_fft)) : 1.0 / static_cast<double>(n_fft);
    out = k.fused_analysis(gy, window, inv_env, hop, T, g.start, kPadConstant, s, 2.0 * s, F, true, stacked);
  } else {
    auto frames = k.frame(gy, window, inv_env, hop, T, g.start, kPadConstant);  // [R, T, N]
    const int64_t used = n_fft / 2 + 1;
    auto z = at::fft_rfft(frames, n_fft, -1, "backward");  // [R, T, used]
    auto cs = cached_table(k, kInverseBinWeights, at::Tensor(), frames.options(), {n_fft, normalized}, [&] {
      const double s = normalized ? 1.0 / std::sqrt(static_cast<double>(n_fft)) : 1.0 / static_cast<double>(n_fft);
      return onesided_bin_weights(n_fft, used, 2.0, frames.options()) * s;
    });
    z = z * cs;
    if (F > used) z = at::cat({z, at::zeros({R, T, F - used}, z.options())}, 2);
    out = from_complex_frames(z, !stacked);
  }
  if (stacked) return out.view({B, 2 * C, F, T});
  return out.view({B, C, F, T, 2});
}

TORCH_LIBRARY_FRAGMENT(tsvq, m) {
  m.def("stft(Tensor x, int n_fft, int hop_length, Tensor window, bool center, str pad_mode, "
        "bool normalized, bool onesided, bool stacked) -> Tensor");
  m.def("istft(Tensor spec, int n_fft, int hop_length, Tensor window, bool center, bool normalized, "
        "bool onesided, int length, bool stacked) -> Tensor");
  m.def("_stft_backward(Tensor grad, int length, int n_fft, int hop_length, Tensor window, bool center, "
        "str pad_mode, bool normalized, bool onesided, bool stacked) -> Tensor");
  m.def("_istft_backward(Tensor grad, int n_freqs, int n_frames, int n_fft, int hop_length, Tensor window, "
        "bool center, bool normalized, bool onesided, bool stacked) -> Tensor");
  // Private framing kernels of the direct path (CPU), see stft_cpu.cpp.
  m.def("_stft_analysis(Tensor x, Tensor basis, Tensor? scale, int hop_length, int n_frames, int pad_left, "
        "int pad_mode, bool interleaved) -> Tensor");
  m.def("_stft_synthesis(Tensor spec, Tensor basis, Tensor? scale, int hop_length, int start, int length, "
        "bool interleaved) -> Tensor");
}


}  // namespace tsvq
