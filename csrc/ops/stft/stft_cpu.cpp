// CPU framing kernels behind tsvq::stft / tsvq::istft: the direct-DFT path (used for n_fft <= 16
// on CPUs, see use_direct in stft.cpp; the kernels themselves accept any n_fft).
//
// _stft_analysis: out[r, j, t] = sum_n basis[n, j] * scale[q] * xpad[r, q], q = t * hop + n.
//   Each row's centre padding is resolved by index arithmetic while the row is split into
//   `hop` phases (ph[n % hop][t + n / hop] == xpad[t * hop + n]), so that for a fixed n the
//   samples of consecutive frames are contiguous: the tile loop is then a small GEMM with
//   unit-stride, vectorised loads (AVX-512 / AVX2 clones picked at load time). The phase
//   buffer is a per-thread scratch of about L samples; no padded or framed copy of the input
//   is ever made.
// _stft_synthesis: y[r, p] = scale[q] * sum_t sum_j spec[r, j, t] * basis[j, q - t * hop],
//   q = p + start (zero where q is past the last frame). The transpose of the analysis: the
//   row's spectrum is copied to a [J, T] scratch (de-interleaving the complex layout), and for
//   each n a tile of frames is summed over j in registers and overlap-added into the phase
//   buffer ph[n % hop][t + n / hop] with unit stride; the output row is read back from the
//   phases with the envelope scale applied.
// Rows are distributed over threads with at::parallel_for.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "stft.h"

namespace tsvq {
namespace {

#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(_M_X64))
#define TSVQ_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TSVQ_MULTIVERSION
#endif

constexpr int64_t kTB = 32;  // frames per analysis tile
constexpr int64_t kJB = 4;   // basis columns per analysis tile

// Phase buffer shared by the analysis and the synthesis: ph[rr][m] holds padded sample
// q = m * hop + rr for the H = min(hop, N) phases that frames touch (hop > N leaves gaps), M
// entries per phase so that a tile of kTB frames starting at any t0 < n_frames stays inside.
struct PhaseLayout {
  int64_t H, Tp, M;
};

PhaseLayout phase_layout(int64_t n_frames, int64_t hop, int64_t N) {
  const int64_t Tp = (n_frames + kTB - 1) / kTB * kTB;
  return {std::min(hop, N), Tp, Tp + (N - 1) / hop + 1};
}

// acc[jj][tt] = sum_n basis[n][j0 + jj] * ph[n % hop][t0 + tt + n / hop]
template <typename T>
TSVQ_MULTIVERSION void analysis_tile(const T* __restrict ph, int64_t M, int64_t hop, int64_t N,
                                     const T* __restrict basis, int64_t Jp, int64_t j0, int64_t t0,
                                     T* __restrict acc) {
  for (int64_t i = 0; i < kJB * kTB; ++i) acc[i] = T(0);
  for (int64_t n = 0; n < N; ++n) {
    const T* __restrict src = ph + (n % hop) * M + t0 + n / hop;
    const T* __restrict b = basis + n * Jp + j0;
    for (int64_t jj = 0; jj < kJB; ++jj) {
      const T a = b[jj];
      T* __restrict row = acc + jj * kTB;
      for (int64_t tt = 0; tt < kTB; ++tt) row[tt] += a * src[tt];
    }
  }
}

// ph[rr][m] = scale[q] * xpad[q], q = m * hop + rr, for the H phases read by the frames (zero
// past the last frame). The interior is a strided copy; only the padded edges go through
// pad_source. Arguments by value so that nothing is reloaded through a closure.
template <typename T>
void build_phases(const T* __restrict xr, int64_t L, int64_t pad_left, int64_t mode, const T* __restrict scale,
                  int64_t hop, int64_t H, int64_t M, int64_t Qv, T* __restrict ph) {
  const int64_t inner_end = std::min(pad_left + L, Qv);  // q in [pad_left, inner_end): no padding
  for (int64_t rr = 0; rr < H; ++rr) {
    T* __restrict dst = ph + rr * M;
    // m_lo = first m with q >= pad_left, m_hi = first m with q >= inner_end
    const int64_t m_lo = std::min(M, pad_left > rr ? (pad_left - rr + hop - 1) / hop : 0);
    const int64_t m_hi = std::max(m_lo, std::min(M, inner_end > rr ? (inner_end - rr + hop - 1) / hop : 0));
    auto edge = [&](int64_t m) {
      const int64_t q = m * hop + rr;
      T v = T(0);
      if (q < Qv) {
        const int64_t src = pad_source(q, pad_left, L, mode);
        if (src >= 0) v = scale ? xr[src] * scale[q] : xr[src];
      }
      dst[m] = v;
    };
    for (int64_t m = 0; m < m_lo; ++m) edge(m);
    const T* __restrict xs = xr + rr - pad_left;  // xs[m * hop] = x[q - pad_left]
    if (scale) {
      const T* __restrict ss = scale + rr;
      for (int64_t m = m_lo; m < m_hi; ++m) dst[m] = xs[m * hop] * ss[m * hop];
    } else {
      for (int64_t m = m_lo; m < m_hi; ++m) dst[m] = xs[m * hop];
    }
    for (int64_t m = m_hi; m < M; ++m) edge(m);
  }
}

// One row of the analysis: tiles of kTB frames x kJB basis columns, written to out_r
// ([J, T] or, interleaved, [J / 2, T, 2]).
template <typename T>
TSVQ_MULTIVERSION void analysis_row(const T* __restrict ph, int64_t M, int64_t hop, int64_t N, const T* __restrict basis, int64_t Jp,
                  int64_t J, int64_t n_frames, bool interleaved, T* __restrict out_r) {
  alignas(64) T acc[kJB * kTB];
  for (int64_t t0 = 0; t0 < n_frames; t0 += kTB) {
    const int64_t nt = std::min(kTB, n_frames - t0);
    for (int64_t j0 = 0; j0 < J; j0 += kJB) {
      analysis_tile<T>(ph, M, hop, N, basis, Jp, j0, t0, acc);
      const int64_t nj = std::min(kJB, J - j0);
      if (!interleaved) {
        for (int64_t jj = 0; jj < nj; ++jj) {
          T* __restrict o = out_r + (j0 + jj) * n_frames + t0;
          const T* __restrict a = acc + jj * kTB;
          for (int64_t tt = 0; tt < nt; ++tt) o[tt] = a[tt];
        }
      } else {  // columns (2 f, 2 f + 1) = (re, im) of bin f; J is even, so pairs never straddle
        for (int64_t jj = 0; jj < nj; jj += 2) {
          const int64_t f = (j0 + jj) / 2;
          T* __restrict o = out_r + (f * n_frames + t0) * 2;
          const T* __restrict re = acc + jj * kTB;
          const T* __restrict im = re + kTB;
          for (int64_t tt = 0; tt < nt; ++tt) {
            o[2 * tt] = re[tt];
            o[2 * tt + 1] = im[tt];
          }
        }
      }
    }
  }
}

template <typename T>
void analysis_cpu(const T* x, int64_t R, int64_t L, const T* basis_in, int64_t N, int64_t J,
                  const T* scale, int64_t hop, int64_t n_frames, int64_t pad_left, int64_t mode,
                  bool interleaved, T* out) {
  const int64_t Jp = (J + kJB - 1) / kJB * kJB;
  // Columns padded to a multiple of kJB. Interleaved output: column c = 2 f + z holds input
  // column j = z F + f, so that a tile's column pairs are the real and imaginary parts of one bin
  // and its frames are written as one contiguous run of (re, im) pairs.
  std::vector<T> basis(N * Jp, T(0));
  const int64_t F = J / 2;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < J; ++j) {
      const int64_t c = interleaved ? 2 * (j % F) + j / F : j;
      basis[n * Jp + c] = basis_in[n * J + j];
    }
  const PhaseLayout g = phase_layout(n_frames, hop, N);
  const int64_t H = g.H, M = g.M;  // plain locals: lambdas cannot capture structured bindings in C++17
  const int64_t Qv = (n_frames - 1) * hop + N;  // samples covered by the frames
  at::parallel_for(0, R, 1, [&](int64_t r0, int64_t r1) {
    std::vector<T> ph(H * M);
    for (int64_t r = r0; r < r1; ++r) {
      build_phases<T>(x + r * L, L, pad_left, mode, scale, hop, H, M, Qv, ph.data());
      analysis_row<T>(ph.data(), M, hop, N, basis.data(), Jp, J, n_frames, interleaved, out + r * J * n_frames);
    }
  });
}

// ph[n % hop][t0 + tt + n / hop] += sum_j basis[j][n] * S[j][t0 + tt] for tt < kTB: the
// transpose of analysis_tile. The sum over j stays in registers; the overlap-add is a
// unit-stride update of one phase row per n.
template <typename T>
TSVQ_MULTIVERSION void synthesis_tile(const T* __restrict S, int64_t ldS, int64_t J,
                                      const T* __restrict basis, int64_t N, int64_t hop, int64_t M,
                                      int64_t t0, T* __restrict ph) {
  alignas(64) T acc[kTB];
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t tt = 0; tt < kTB; ++tt) acc[tt] = T(0);
    for (int64_t j = 0; j < J; ++j) {
      const T a = basis[j * N + n];
      const T* __restrict s = S + j * ldS + t0;
      for (int64_t tt = 0; tt < kTB; ++tt) acc[tt] += a * s[tt];
    }
    T* __restrict dst = ph + (n % hop) * M + t0 + n / hop;
    for (int64_t tt = 0; tt < kTB; ++tt) dst[tt] += acc[tt];
  }
}

template <typename T>
void synthesis_cpu(const T* spec, const int64_t* st, int64_t R, int64_t J, int64_t n_frames, bool interleaved,
                   const T* basis, int64_t N, const T* scale, int64_t hop, int64_t start,
                   int64_t length, T* y) {
  const int64_t Q = (n_frames - 1) * hop + N;
  const int64_t F = J / 2;
  const PhaseLayout g = phase_layout(n_frames, hop, N);
  const int64_t H = g.H, Tp = g.Tp, M = g.M;
  at::parallel_for(0, R, 1, [&](int64_t r0, int64_t r1) {
    std::vector<T> S(J * Tp, T(0));  // the row's spectrum as [J][Tp], zero past n_frames
    std::vector<T> ph(H * M);
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t j = 0; j < J; ++j) {
        // [R, J, T]: (r, j, t); interleaved [R, F, T, 2]: j = z * F + f at (r, f, t, z)
        const int64_t z = interleaved ? j / F : 0, f = interleaved ? j - z * F : j;
        const T* src = spec + r * st[0] + f * st[1] + (interleaved ? z * st[3] : 0);
        const int64_t ts = st[2];
        T* dst = S.data() + j * Tp;
        if (ts == 1) {
          std::copy_n(src, n_frames, dst);
        } else {
          for (int64_t t = 0; t < n_frames; ++t) dst[t] = src[t * ts];
        }
      }
      std::fill(ph.begin(), ph.end(), T(0));
      for (int64_t t0 = 0; t0 < n_frames; t0 += kTB)
        synthesis_tile<T>(S.data(), Tp, J, basis, N, hop, M, t0, ph.data());
      T* yr = y + r * length;
      int64_t q = start, m = start / hop, rr = start % hop;
      for (int64_t p = 0; p < length; ++p, ++q) {
        T v = T(0);
        if (q < Q && rr < H) v = scale ? ph[rr * M + m] * scale[q] : ph[rr * M + m];
        yr[p] = v;
        if (++rr == hop) {
          rr = 0;
          ++m;
        }
      }
    }
  });
}

// FFT-path framing on CPUs (see stft.cpp): frames[r, t, n] = window[n] * scale[q] * xpad[r, q],
// q = t * hop + n. Each row's padded (and scaled) samples are first gathered into a per-thread
// scratch of the Qv samples the frames cover (the centre padding by index arithmetic, the
// interior by a plain copy), then every frame is a unit-stride multiply by the window. One
// pass over the input instead of pad + unfold + multiply.
template <typename T>
void frame_rows(const T* x, int64_t R, int64_t L, const T* w, int64_t N, const T* scale, int64_t hop,
                int64_t n_frames, int64_t pad_left, int64_t mode, T* out) {
  const int64_t Qv = (n_frames - 1) * hop + N;
  const int64_t lo = std::min(std::max<int64_t>(0, pad_left), Qv);  // [lo, hi): q - pad_left inside x
  const int64_t hi = std::max(lo, std::min(Qv, pad_left + L));
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n_frames * N));
  at::parallel_for(0, R, grain, [&](int64_t r0, int64_t r1) {
    std::vector<T> xp(Qv);
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * L;
      for (int64_t q = 0; q < lo; ++q) {
        const int64_t src = pad_source(q, pad_left, L, mode);
        xp[q] = src < 0 ? T(0) : xr[src];
      }
      if (hi > lo) std::copy(xr + (lo - pad_left), xr + (hi - pad_left), xp.data() + lo);
      for (int64_t q = hi; q < Qv; ++q) {
        const int64_t src = pad_source(q, pad_left, L, mode);
        xp[q] = src < 0 ? T(0) : xr[src];
      }
      if (scale)
        for (int64_t q = 0; q < Qv; ++q) xp[q] *= scale[q];
      for (int64_t t = 0; t < n_frames; ++t) {
        const T* __restrict src = xp.data() + t * hop;
        T* __restrict o = out + (r * n_frames + t) * N;
        for (int64_t n = 0; n < N; ++n) o[n] = w[n] * src[n];
      }
    }
  });
}

// FFT-path overlap-add on CPUs: y[r, p] = scale[q] * sum_t window[n] * frames[r, t, n] with
// q = p + start = t * hop + n (zero past the frames). Unit-stride adds into the output row, the
// window and the envelope applied in the same pass (replaces unfold_backward, a multiply and a
// narrow).
template <typename T>
void overlap_add_rows(const T* frames, int64_t R, int64_t n_frames, int64_t N, const T* w, const T* scale,
                      int64_t hop, int64_t start, int64_t length, T* y) {
  const int64_t Q = (n_frames - 1) * hop + N;
  const int64_t kept = std::max<int64_t>(0, std::min(length, Q - start));
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n_frames * N));
  at::parallel_for(0, R, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      T* __restrict yr = y + r * length;
      std::fill_n(yr, length, T(0));
      for (int64_t t = 0; t < n_frames; ++t) {
        const int64_t q0 = t * hop - start;  // output position of n = 0
        const int64_t lo = std::max<int64_t>(0, -q0), hi = std::min<int64_t>(N, length - q0);
        const T* __restrict f = frames + (r * n_frames + t) * N;
        for (int64_t n = lo; n < hi; ++n) yr[q0 + n] += w[n] * f[n];
      }
      if (scale)
        for (int64_t p = 0; p < kept; ++p) yr[p] *= scale[p + start];
    }
  });
}

at::Tensor stft_analysis_cpu(const at::Tensor& x_in, const at::Tensor& basis_in,
                             const c10::optional<at::Tensor>& scale_in, int64_t hop,
                             int64_t n_frames, int64_t pad_left, int64_t mode, bool interleaved) {
  check_analysis_inputs(x_in, basis_in, scale_in, hop, n_frames, pad_left, mode, interleaved);
  const int64_t R = x_in.size(0), L = x_in.size(1), N = basis_in.size(0), J = basis_in.size(1);
  auto out = interleaved ? at::empty({R, J / 2, n_frames, 2}, x_in.options())
                         : at::empty({R, J, n_frames}, x_in.options());
  if (R == 0 || J == 0) return out;
  auto x = x_in.contiguous();
  auto basis = basis_in.contiguous();
  auto scale = contiguous_scale(scale_in);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "stft_analysis_cpu", [&] {
    analysis_cpu<scalar_t>(x.data_ptr<scalar_t>(), R, L, basis.data_ptr<scalar_t>(), N, J,
                           scale.defined() ? scale.data_ptr<scalar_t>() : nullptr, hop, n_frames,
                           pad_left, mode, interleaved, out.data_ptr<scalar_t>());
  });
  return out;
}

at::Tensor stft_synthesis_cpu(const at::Tensor& spec_in, const at::Tensor& basis_in,
                              const c10::optional<at::Tensor>& scale_in, int64_t hop, int64_t start,
                              int64_t length, bool interleaved) {
  check_synthesis_inputs(spec_in, basis_in, scale_in, hop, start, length, interleaved);
  const int64_t R = spec_in.size(0), n_frames = spec_in.size(2), J = basis_in.size(0),
                N = basis_in.size(1);
  auto y = at::empty({R, length}, spec_in.options());
  if (R == 0 || length == 0) return y;
  if (n_frames == 0 || N == 0) return y.zero_();
  // The spectrum is read through its strides (torch.stft's frames-major layout included): the
  // kernel copies each row into its scratch anyway, so a contiguous copy would be a wasted pass.
  const auto& spec = spec_in;
  auto basis = basis_in.contiguous();
  auto scale = contiguous_scale(scale_in);
  AT_DISPATCH_FLOATING_TYPES(spec.scalar_type(), "stft_synthesis_cpu", [&] {
    synthesis_cpu<scalar_t>(spec.data_ptr<scalar_t>(), spec.strides().data(), R, J, n_frames, interleaved,
                            basis.data_ptr<scalar_t>(), N,
                            scale.defined() ? scale.data_ptr<scalar_t>() : nullptr, hop, start,
                            length, y.data_ptr<scalar_t>());
  });
  return y;
}

}  // namespace

at::Tensor frame_cpu(const at::Tensor& x_in, const at::Tensor& window_in, const at::Tensor& scale_in, int64_t hop,
                     int64_t n_frames, int64_t pad_left, int64_t mode) {
  TORCH_CHECK(x_in.device().is_cpu() && x_in.dim() == 2, "frame_cpu: x must be a CPU Tensor[R, L]");
  const auto ops = framing_operands(x_in, window_in, scale_in);
  const auto &x = ops.input, &w = ops.window, &scale = ops.scale;
  const int64_t R = x.size(0), L = x.size(1), N = w.size(0);
  auto out = at::empty({R, n_frames, N}, x.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "frame_cpu", [&] {
    frame_rows<scalar_t>(x.data_ptr<scalar_t>(), R, L, w.data_ptr<scalar_t>(), N,
                         scale.defined() ? scale.data_ptr<scalar_t>() : nullptr, hop, n_frames, pad_left, mode,
                         out.data_ptr<scalar_t>());
  });
  return out;
}

at::Tensor overlap_add_cpu(const at::Tensor& frames_in, const at::Tensor& window_in, const at::Tensor& scale_in,
                           int64_t hop, int64_t start, int64_t length) {
  TORCH_CHECK(frames_in.device().is_cpu() && frames_in.dim() == 3, "overlap_add_cpu: frames must be a CPU "
              "Tensor[R, T, N]");
  const auto ops = framing_operands(frames_in, window_in, scale_in);
  const auto &frames = ops.input, &w = ops.window, &scale = ops.scale;
  const int64_t R = frames.size(0), T = frames.size(1), N = frames.size(2);
  auto y = at::empty({R, length}, frames.options());
  if (y.numel() == 0) return y;
  AT_DISPATCH_FLOATING_TYPES(frames.scalar_type(), "overlap_add_cpu", [&] {
    overlap_add_rows<scalar_t>(frames.data_ptr<scalar_t>(), R, T, N, w.data_ptr<scalar_t>(),
                               scale.defined() ? scale.data_ptr<scalar_t>() : nullptr, hop, start, length,
                               y.data_ptr<scalar_t>());
  });
  return y;
}

TORCH_LIBRARY_IMPL(tsvq, CPU, m) {
  m.impl("_stft_analysis", &stft_analysis_cpu);
  m.impl("_stft_synthesis", &stft_synthesis_cpu);
}

}  // namespace tsvq
