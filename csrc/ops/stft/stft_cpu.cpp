// CPU kernels behind tsvq::stft / tsvq::istft: the direct-DFT path (used for n_fft <= 16 on CPUs,
// see use_direct in stft.cpp; the kernels themselves accept any n_fft), the FFT path's framing /
// overlap-add loops, and the fused FFT path (n_fft = 32, further down).
//
// _stft_analysis: out[r, j, t] = sum_n basis[n, j] * scale[q] * xpad[r, q], q = t * hop + n
//   (interleaved: out[r, f, t, z] with j = z F + f, frames-major in memory).
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
#include <cmath>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <vector>

#include "stft.h"

namespace tsvq {
namespace {

#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(_M_X64))
#define TSVQ_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
// The fused FFT path's kV = 8-frame loops: no AVX-512 clone (GCC's x86-64-v4 code for them ran 3-4x
// slower than the AVX2 one on an AMD Zen CPU, benchmarks/RESULTS.md).
#define TSVQ_MULTIVERSION_AVX2 __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define TSVQ_MULTIVERSION
#define TSVQ_MULTIVERSION_AVX2
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
// ([J, T] or, interleaved, frames-major [T, J / 2, 2]).
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
        const int64_t F = J / 2;
        for (int64_t jj = 0; jj < nj; jj += 2) {
          const int64_t f = (j0 + jj) / 2;
          T* __restrict o = out_r + (t0 * F + f) * 2;
          const T* __restrict re = acc + jj * kTB;
          const T* __restrict im = re + kTB;
          for (int64_t tt = 0; tt < nt; ++tt) {
            o[2 * F * tt] = re[tt];
            o[2 * F * tt + 1] = im[tt];
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

// Rows of x [R, L] padded by pad_left (mode) and scaled, in parallel, `group` rows at a time:
// f(r, n, xp) with xp[i * Qv + q] = scale[q] * xpad[r + i, q] for i < n <= group, q < Qv, in a
// per-thread scratch (the centre padding by index arithmetic outside the interior, a plain copy
// inside; scale null: 1). work = samples written per row (the grain).
template <typename T, typename F>
void for_each_padded_row(const T* x, int64_t R, int64_t L, int64_t pad_left, int64_t mode, const T* scale,
                         int64_t Qv, int64_t work, int64_t group, F f) {
  const int64_t lo = std::min(std::max<int64_t>(0, pad_left), Qv);  // [lo, hi): q - pad_left inside x
  const int64_t hi = std::max(lo, std::min(Qv, pad_left + L));
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, work));
  at::parallel_for(0, R, grain, [&](int64_t r0, int64_t r1) {
    std::vector<T> scratch(std::min(group, r1 - r0) * Qv);
    for (int64_t rg = r0; rg < r1; rg += group) {
      const int64_t n = std::min(group, r1 - rg);
      for (int64_t i = 0; i < n; ++i) {
        const T* xr = x + (rg + i) * L;
        T* xp = scratch.data() + i * Qv;
        for (int64_t q = 0; q < lo; ++q) {
          const int64_t src = pad_source(q, pad_left, L, mode);
          xp[q] = src < 0 ? T(0) : xr[src];
        }
        if (hi > lo) std::copy(xr + (lo - pad_left), xr + (hi - pad_left), xp + lo);
        for (int64_t q = hi; q < Qv; ++q) {
          const int64_t src = pad_source(q, pad_left, L, mode);
          xp[q] = src < 0 ? T(0) : xr[src];
        }
        if (scale)
          for (int64_t q = 0; q < Qv; ++q) xp[q] *= scale[q];
      }
      f(rg, n, static_cast<const T*>(scratch.data()));
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
  for_each_padded_row(x, R, L, pad_left, mode, scale, Qv, n_frames * N, 1, [&](int64_t r, int64_t, const T* xp) {
    for (int64_t t = 0; t < n_frames; ++t) {
      const T* __restrict src = xp + t * hop;
      T* __restrict o = out + (r * n_frames + t) * N;
      for (int64_t n = 0; n < N; ++n) o[n] = w[n] * src[n];
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
  // Interleaved: [R, F, T, 2] as the transposed view of a frames-major [R, T, F, 2] buffer, the
  // layout of the FFT path and of torch.stft, so that the op has one output layout on every path.
  auto out = interleaved ? at::empty({R, n_frames, J / 2, 2}, x_in.options()).transpose(1, 2)
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

// ---- Fused FFT path on CPUs (power-of-two n_fft, use_fused_fft in stft.cpp) ----------------------
// The algorithm of the CUDA kernels (stft_fft_small.cuh): the real FFT of a frame as the P = N / 2
// point complex FFT of z[j] = x[2j] + i x[2j+1] plus the real-input post-processing, here on
// blocks of kV frames (consecutive frames of a group of rows, rows_per_group) held
// structure-of-arrays (re[j][v], frame v of the block), so that every butterfly is a unit-stride
// loop over the kV frames (vectorised; AVX2 / default clones). The
// framing (centre padding by index arithmetic, window, scale) is done while filling a block and
// the output is written in its final layout from it; the inverse fills a block from the spectrum
// (read through its strides), transforms it back and overlap-adds it into the frames' rows. No frames
// tensor, no separate FFT call: one pass over the input and one over the output. Between the
// frame-major memory layouts (frames of the row, interleaved [T, F, 2] spectra, the overlap-add)
// and the block's sample-major one, kV x kV transposes in registers (transpose_kv): without them
// the block's scalar loads and stores cost more than its FFT and lose to MKL's FFT path
// (benchmarks/RESULTS.md).
constexpr int kV = 8;  // frames per block

// Twiddles of the radix-2 decimation-in-frequency stages (half-size h at offset h - 1, entries
// exp(-i pi m / h), m < h) and of the real-input step (exp(-2 pi i k / N), k <= P), and the bit
// reversal of log2 P bits; built once per (T, P) in double.
template <typename T, int P>
struct FftTables {
  T stage_re[P], stage_im[P], stage_im_conj[P], rot_re[P + 1], rot_im[P + 1];
  int rev[P];
  FftTables() {
    const double pi = 3.14159265358979323846;
    for (int h = 1; h < P; h *= 2)
      for (int m = 0; m < h; ++m) {
        stage_re[h - 1 + m] = static_cast<T>(std::cos(pi * m / h));
        stage_im[h - 1 + m] = static_cast<T>(-std::sin(pi * m / h));
        stage_im_conj[h - 1 + m] = -stage_im[h - 1 + m];
      }
    for (int k = 0; k <= P; ++k) {
      rot_re[k] = static_cast<T>(std::cos(pi * k / P));
      rot_im[k] = static_cast<T>(-std::sin(pi * k / P));
    }
    int bits = 0;
    while ((1 << bits) < P) ++bits;
    for (int j = 0; j < P; ++j) {
      int r = 0;
      for (int b = 0; b < bits; ++b) r |= ((j >> b) & 1) << (bits - 1 - b);
      rev[j] = r;
    }
  }
};

template <typename T, int P>
const FftTables<T, P>& fft_tables() {
  static const FftTables<T, P> tables;
  return tables;
}

// One radix-2 stage (half-size H) and the stages after it, unrolled at compile time so that each
// butterfly is a straight run of kV-wide vector operations with its twiddle as a scalar.
template <typename T, int P, int H>
inline __attribute__((always_inline)) void soa_dif_stages(T (*__restrict re)[kV], T (*__restrict im)[kV],
                                                          const T* __restrict tw_re, const T* __restrict tw_im) {
  if constexpr (H >= 1) {
#pragma GCC unroll 64
    for (int b = 0; b < P; b += 2 * H)
#pragma GCC unroll 64
      for (int m = 0; m < H; ++m) {
        const T wr = tw_re[H - 1 + m], wi = tw_im[H - 1 + m];
        T* __restrict ar = re[b + m];
        T* __restrict ai = im[b + m];
        T* __restrict br = re[b + m + H];
        T* __restrict bi = im[b + m + H];
        for (int v = 0; v < kV; ++v) {
          const T dr = ar[v] - br[v], di = ai[v] - bi[v];
          ar[v] += br[v];
          ai[v] += bi[v];
          br[v] = dr * wr - di * wi;
          bi[v] = dr * wi + di * wr;
        }
      }
    soa_dif_stages<T, P, H / 2>(re, im, tw_re, tw_im);
  }
}

// In-place P-point DFT of kV frames with the twiddles given (exp(-i pi m / h) forward, their
// conjugates for the inverse): entry i holds A[rev(i)] afterwards.
template <typename T, int P>
TSVQ_MULTIVERSION_AVX2 void soa_dif_fft(T (*__restrict re)[kV], T (*__restrict im)[kV], const T* __restrict tw_re,
                                        const T* __restrict tw_im) {
  soa_dif_stages<T, P, P / 2>(re, im, tw_re, tw_im);
}

// Real-input step of the forward transform: bins X[0..P] (times edge / interior) of kV frames from
// the P-point DFT Z of z[j] = x[2j] + i x[2j+1] (entry i holding Z[rev(i)]).
template <typename T, int P>
TSVQ_MULTIVERSION_AVX2 void fft_post(const T (*__restrict re)[kV], const T (*__restrict im)[kV], const FftTables<T, P>& tb,
                                T edge, T interior, T (*__restrict Xr)[kV], T (*__restrict Xi)[kV]) {
  for (int v = 0; v < kV; ++v) {  // k = 0: Z[0] with itself; also the Nyquist bin
    const T zr = re[0][v], zi = im[0][v];
    Xr[0][v] = edge * (zr + zi);
    Xi[0][v] = T(0);
    Xr[P][v] = edge * (zr - zi);
    Xi[P][v] = T(0);
  }
#pragma GCC unroll 64
  for (int k = 1; k < P; ++k) {
    const T* __restrict zr = re[tb.rev[k]];
    const T* __restrict zi = im[tb.rev[k]];
    const T* __restrict mr = re[tb.rev[P - k]];
    const T* __restrict mi = im[tb.rev[P - k]];
    const T wr = tb.rot_re[k], wi = tb.rot_im[k];
    for (int v = 0; v < kV; ++v) {
      const T er = T(0.5) * (zr[v] + mr[v]), ei = T(0.5) * (zi[v] - mi[v]);
      const T orr = T(0.5) * (zi[v] + mi[v]), oi = T(-0.5) * (zr[v] - mr[v]);
      Xr[k][v] = interior * (er + (wr * orr - wi * oi));
      Xi[k][v] = interior * (ei + (wr * oi + wi * orr));
    }
  }
}

// kV-wide vectors (GCC vector extensions; AVX2 registers in the x86-64-v3 clones).
template <typename T>
struct VecKV;
template <>
struct VecKV<float> {
  typedef float type __attribute__((vector_size(kV * sizeof(float))));
};
template <>
struct VecKV<double> {
  typedef double type __attribute__((vector_size(kV * sizeof(double))));
};

template <typename V>
inline __attribute__((always_inline)) V load_vec(const void* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

template <typename V>
inline __attribute__((always_inline)) void store_vec(void* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

// In-place transpose of the kV x kV matrix whose rows are r[0..kV): r[k] becomes column k
// (unpack pairs, then pairs of pairs, then 128-bit halves: three rounds of shuffles).
template <typename V>
inline __attribute__((always_inline)) void transpose_kv(V* r) {
  static_assert(kV == 8, "transpose_kv is written for 8 x 8");
  V t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = __builtin_shufflevector(r[2 * i], r[2 * i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[2 * i + 1] = __builtin_shufflevector(r[2 * i], r[2 * i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int i = 0; i < 2; ++i) {
    u[4 * i] = __builtin_shufflevector(t[4 * i], t[4 * i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
    u[4 * i + 1] = __builtin_shufflevector(t[4 * i], t[4 * i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    u[4 * i + 2] = __builtin_shufflevector(t[4 * i + 1], t[4 * i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
    u[4 * i + 3] = __builtin_shufflevector(t[4 * i + 1], t[4 * i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
  }
  for (int c = 0; c < 4; ++c) {
    r[c] = __builtin_shufflevector(u[c], u[4 + c], 0, 1, 2, 3, 8, 9, 10, 11);
    r[c + 4] = __builtin_shufflevector(u[c], u[4 + c], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}

// re[j][v] = w[2j] f_v[2j], im[j][v] = w[2j+1] f_v[2j+1] for the kV frames f_v: kV samples of
// each frame loaded as one vector, transposed in registers to one vector a sample.
template <typename T, int P>
TSVQ_MULTIVERSION_AVX2 void load_frames(const T* const* __restrict f, const T* __restrict w, T (*__restrict re)[kV],
                                        T (*__restrict im)[kV]) {
  using V = typename VecKV<T>::type;
  static_assert((2 * P) % kV == 0, "n_fft must be a multiple of kV");
#pragma GCC unroll 16
  for (int s0 = 0; s0 < 2 * P; s0 += kV) {
    V r[kV];
    for (int v = 0; v < kV; ++v) r[v] = load_vec<V>(f[v] + s0);
    transpose_kv(r);
    for (int k = 0; k < kV; k += 2) {
      store_vec(re[(s0 + k) / 2], r[k] * w[s0 + k]);
      store_vec(im[(s0 + k) / 2], r[k + 1] * w[s0 + k + 1]);
    }
  }
}

// The interleaved output of the kV frames of a block, bins 0 .. P - 1: o_v[2f], o_v[2f + 1] =
// Xr[f][v], Xi[f][v] for every frame v (the caller's buffer holds a whole block), four bins (kV
// values of a frame) per transpose. The constant trip count keeps the transposed block in registers
// (a variable one, for partial blocks, spilled it to the stack).
template <typename T, int P>
TSVQ_MULTIVERSION_AVX2 void store_interleaved(const T (*__restrict Xr)[kV], const T (*__restrict Xi)[kV],
                                              T* __restrict o, int64_t frame_stride) {
  using V = typename VecKV<T>::type;
  static_assert(P % (kV / 2) == 0, "P must be a multiple of kV / 2");
#pragma GCC unroll 16
  for (int f0 = 0; f0 < P; f0 += kV / 2) {
    V m[kV];
    for (int i = 0; i < kV / 2; ++i) {
      m[2 * i] = load_vec<V>(Xr[f0 + i]);
      m[2 * i + 1] = load_vec<V>(Xi[f0 + i]);
    }
    transpose_kv(m);
#pragma GCC unroll 8
    for (int v = 0; v < kV; ++v) store_vec(o + v * frame_stride + 2 * f0, m[v]);
  }
}

// Rows per block group: frames are taken kV at a time across the rows of a group, so that a row's
// last block is not left partly empty (at n_fft 32 and L = 128, 17 frames a row filled 3 blocks of 8
// when blocked per row: 30 % of the work wasted). A group holds a multiple of kV frames (only the
// last group of a thread's rows can end in a partial block) and at least 8 blocks. Rows of 64 blocks
// or more go alone (a partial block wastes < 1.4 % there), which bounds the per-thread scratch of a
// group (the padded rows, or the synthesis accumulators) to 8 rows of < 512 frames.
inline int64_t rows_per_group(int64_t n_frames) {
  if (n_frames >= 64 * kV) return 1;
  const int64_t step = kV / std::gcd<int64_t>(n_frames, kV);  // rows for a multiple of kV frames
  const int64_t least = (8 * kV + n_frames - 1) / n_frames;
  return (least + step - 1) / step * step;
}

// Where the frames of a block lie when blocks run over the frames of a group of rows in order: the
// (row, frame) of the block's first frame, advanced a block at a time (no division per frame).
struct BlockCursor {
  int64_t row = 0, t = 0;
  // (row[v], t[v]) of the block's frames v < kV; a partial block (nv < kV) repeats its last frame.
  void frames(int nv, int64_t n_frames, int64_t* row_v, int64_t* t_v) const {
    int64_t r = row, f = t;
    for (int v = 0; v < kV; ++v) {
      row_v[v] = r;
      t_v[v] = f;
      if (v + 1 < nv && ++f == n_frames) f = 0, ++r;
    }
  }
  // Whether the block's kV frames are consecutive frames of one row.
  bool in_one_row(int nv, int64_t n_frames) const { return nv == kV && t + kV <= n_frames; }
  void next(int64_t n_frames) {
    for (t += kV; t >= n_frames; t -= n_frames) ++row;
  }
};

// The frames of `rows` consecutive rows (padded, scaled samples xp, row i at xp + i * Qv) -> their
// output, out = the first row's (interleaved [T, F, 2] or stacked [2F, T] per row), block by block
// over the rows' frames in order (g = i * n_frames + t): load, FFT, real-input step, stores.
template <typename T, int P>
void fused_analysis_rows(const T* __restrict xp, int64_t Qv, int64_t rows, int64_t hop, int64_t n_frames,
                         const T* __restrict w, T edge, T interior, int64_t F, bool zero_two_sided, bool interleaved,
                         T* __restrict out) {
  constexpr int N = 2 * P;
  const auto& tb = fft_tables<T, P>();
  alignas(64) T re[P][kV], im[P][kV], Xr[P + 1][kV], Xi[P + 1][kV];
  alignas(64) T obuf[kV * 2 * N];  // F <= N bins
  const int64_t G = rows * n_frames;
  BlockCursor cursor;
  for (int64_t g0 = 0; g0 < G; g0 += kV, cursor.next(n_frames)) {
    const int nv = static_cast<int>(std::min<int64_t>(kV, G - g0));
    const T* f[kV];
    int64_t row[kV], t[kV];
    cursor.frames(nv, n_frames, row, t);
    for (int v = 0; v < kV; ++v) f[v] = xp + row[v] * Qv + t[v] * hop;
    load_frames<T, P>(f, w, re, im);
    soa_dif_fft<T, P>(re, im, tb.stage_re, tb.stage_im);
    fft_post<T, P>(re, im, tb, edge, interior, Xr, Xi);
    if (interleaved) {
      // Frames g0 .. g0 + nv are one contiguous run of nv * F * 2 values (rows are [T, F, 2]):
      // assembled in obuf (L1), then copied in order, front to back in whole cache lines.
      store_interleaved<T, P>(Xr, Xi, obuf, F * 2);  // bins 0 .. P - 1
      for (int v = 0; v < nv; ++v) {
        T* o = obuf + v * F * 2;
        o[2 * P] = Xr[P][v];
        o[2 * P + 1] = Xi[P][v];
        for (int64_t k = P + 1; k < F; ++k) {  // two-sided: the conjugate mirror, or zeros
          o[2 * k] = zero_two_sided ? T(0) : Xr[N - k][v];
          o[2 * k + 1] = zero_two_sided ? T(0) : -Xi[N - k][v];
        }
      }
      std::memcpy(out + g0 * F * 2, obuf, sizeof(T) * nv * F * 2);
    } else {
      T* o[kV];
      for (int v = 0; v < nv; ++v) o[v] = out + row[v] * 2 * F * n_frames + t[v];
      for (int k = 0; k <= P; ++k)
        for (int v = 0; v < nv; ++v) {
          o[v][k * n_frames] = Xr[k][v];
          o[v][(F + k) * n_frames] = Xi[k][v];
        }
      for (int64_t k = P + 1; k < F; ++k)
        for (int v = 0; v < nv; ++v) {
          o[v][k * n_frames] = zero_two_sided ? T(0) : Xr[N - k][v];
          o[v][(F + k) * n_frames] = zero_two_sided ? T(0) : -Xi[N - k][v];
        }
    }
  }
}

// x [R, L] -> out [R, T, F, 2] (interleaved, frames-major) or [R, 2F, T]: the semantics of
// StftDeviceKernels::fused_analysis (stft.h).
template <typename T, int P>
void fft_analysis_rows(const T* x, int64_t R, int64_t L, const T* w, const T* scale, int64_t hop, int64_t n_frames,
                       int64_t pad_left, int64_t mode, T edge, T interior, int64_t n_bins, bool zero_two_sided,
                       bool interleaved, T* out) {
  constexpr int N = 2 * P;
  const int64_t Qv = (n_frames - 1) * hop + N, F = n_bins;
  for_each_padded_row(x, R, L, pad_left, mode, scale, Qv, n_frames * N, rows_per_group(n_frames),
                      [&](int64_t r, int64_t rows, const T* xp) {
                        fused_analysis_rows<T, P>(xp, Qv, rows, hop, n_frames, w, edge, interior, F, zero_two_sided,
                                                  interleaved, out + r * n_frames * F * 2);
                      });
}

// Bins 0 .. P of the kV frames of a block (fr[v]: frame v's bin 0 in its row's spectrum, read
// through the element strides s_f, s_c), scaled (edge for bins 0 and P, whose imaginary parts irfft
// drops, interior otherwise), into Xr / Xi [bin][frame]; a partial block repeats its last frame.
// Vector paths for the two layouts the ops produce: kV consecutive frames of one row with s_t = 1
// (`consecutive`: the stacked layout), and bins interleaved (s_c = 1, s_f = 2: torch's complex
// [F, T] of a [T, F, 2] buffer, transposed in registers).
template <typename T, int P>
TSVQ_MULTIVERSION_AVX2 void load_spectrum(const T* const* __restrict fr, bool consecutive, int64_t s_f, int64_t s_c,
                                          T edge, T interior, T (*__restrict Xr)[kV], T (*__restrict Xi)[kV]) {
  using V = typename VecKV<T>::type;
  if (consecutive) {
    const T* sr = fr[0];
#pragma GCC unroll 64
    for (int k = 0; k <= P; ++k) {
      store_vec(Xr[k], load_vec<V>(sr + k * s_f));
      store_vec(Xi[k], load_vec<V>(sr + k * s_f + s_c));
    }
  } else if (s_c == 1 && s_f == 2) {
#pragma GCC unroll 16
    for (int f0 = 0; f0 < P; f0 += kV / 2) {
      V m[kV];
      for (int v = 0; v < kV; ++v) m[v] = load_vec<V>(fr[v] + 2 * f0);
      transpose_kv(m);
      for (int i = 0; i < kV / 2; ++i) {
        store_vec(Xr[f0 + i], m[2 * i]);
        store_vec(Xi[f0 + i], m[2 * i + 1]);
      }
    }
    for (int v = 0; v < kV; ++v) Xr[P][v] = fr[v][P * s_f];
  } else {
    for (int k = 0; k <= P; ++k)
      for (int v = 0; v < kV; ++v) {
        Xr[k][v] = fr[v][k * s_f];
        Xi[k][v] = fr[v][k * s_f + s_c];
      }
  }
  for (int v = 0; v < kV; ++v) {  // irfft drops Im X[0], Im X[N / 2]
    Xr[0][v] *= edge;
    Xr[P][v] *= edge;
    Xi[0][v] = Xi[P][v] = T(0);
  }
#pragma GCC unroll 64
  for (int k = 1; k < P; ++k)
    for (int v = 0; v < kV; ++v) {
      Xr[k][v] *= interior;
      Xi[k][v] *= interior;
    }
}

// Overlap-add of the inverse frames of a block (entry i of re / im holding samples 2 rev(i) and
// 2 rev(i) + 1 of each frame) into acc[v] (where frame v's sample 0 goes), times 2 w: eight samples
// of the kV frames per transpose, added as one vector a frame, frames in order.
template <typename T, int P>
TSVQ_MULTIVERSION_AVX2 void overlap_add_frames(const T (*__restrict re)[kV], const T (*__restrict im)[kV],
                                               const int* __restrict rev, const T* __restrict w, int nv,
                                               T* const* acc) {
  using V = typename VecKV<T>::type;
#pragma GCC unroll 16
  for (int s0 = 0; s0 < 2 * P; s0 += kV) {
    V m[kV];
    for (int i = 0; i < kV / 2; ++i) {
      m[2 * i] = load_vec<V>(re[rev[s0 / 2 + i]]);
      m[2 * i + 1] = load_vec<V>(im[rev[s0 / 2 + i]]);
    }
    transpose_kv(m);  // m[v]: samples s0 .. s0 + kV of frame v
    const V w2 = load_vec<V>(w + s0) * T(2);
    if (nv == kV) {  // a constant trip count keeps m in registers (a variable one spills it)
#pragma GCC unroll 8
      for (int v = 0; v < kV; ++v) {
        T* a = acc[v] + s0;
        store_vec(a, load_vec<V>(a) + w2 * m[v]);
      }
    } else {
      for (int v = 0; v < nv; ++v) {
        T* a = acc[v] + s0;
        store_vec(a, load_vec<V>(a) + w2 * m[v]);
      }
    }
  }
}

// The spectra of `rows` consecutive rows (sr: the first row's, element strides s_r, s_f, s_t, s_c)
// -> the overlap-add of their windowed inverse frames into acc (row i at acc + i * Q,
// Q = (T - 1) hop + N), block by block over the rows' frames in order (g = i * n_frames + t).
template <typename T, int P>
void fused_synthesis_rows(const T* __restrict sr, int64_t s_r, int64_t s_f, int64_t s_t, int64_t s_c,
                          int64_t rows, int64_t n_frames, const T* __restrict w, int64_t hop, T edge, T interior,
                          int64_t Q, T* __restrict acc) {
  const auto& tb = fft_tables<T, P>();
  alignas(64) T re[P][kV], im[P][kV], Xr[P + 1][kV], Xi[P + 1][kV];
  const int64_t G = rows * n_frames;
  BlockCursor cursor;
  for (int64_t g0 = 0; g0 < G; g0 += kV, cursor.next(n_frames)) {
    const int nv = static_cast<int>(std::min<int64_t>(kV, G - g0));
    const T* fr[kV];
    T* a[kV];
    int64_t row[kV], t[kV];
    cursor.frames(nv, n_frames, row, t);
    for (int v = 0; v < kV; ++v) {
      fr[v] = sr + row[v] * s_r + t[v] * s_t;
      a[v] = acc + row[v] * Q + t[v] * hop;
    }
    load_spectrum<T, P>(fr, s_t == 1 && cursor.in_one_row(nv, n_frames), s_f, s_c, edge, interior, Xr, Xi);
#pragma GCC unroll 64
    for (int k = 0; k < P; ++k) {
      const T wr = tb.rot_re[k], wi = -tb.rot_im[k];  // exp(+2 pi i k / N)
      for (int v = 0; v < kV; ++v) {
        const T mr = Xr[P - k][v], mi = Xi[P - k][v];
        const T er = T(0.5) * (Xr[k][v] + mr), ei = T(0.5) * (Xi[k][v] - mi);
        const T dr = T(0.5) * (Xr[k][v] - mr), di = T(0.5) * (Xi[k][v] + mi);
        const T orr = dr * wr - di * wi, oi = dr * wi + di * wr;
        re[k][v] = er - oi;  // Z = E + i O
        im[k][v] = ei + orr;
      }
    }
    soa_dif_fft<T, P>(re, im, tb.stage_re, tb.stage_im_conj);
    overlap_add_frames<T, P>(re, im, tb.rev, w, nv, a);
  }
}

// spec (element strides sr, sf, st, sc) -> y [R, length]: the semantics of
// StftDeviceKernels::fused_synthesis (stft.h).
template <typename T, int P>
void fft_synthesis_rows(const T* spec, int64_t R, const int64_t* strides, int64_t n_frames, const T* w,
                        const T* scale, int64_t hop, int64_t start, int64_t length, T edge, T interior, T* y) {
  constexpr int N = 2 * P;
  const int64_t s_r = strides[0], s_f = strides[1], s_t = strides[2], s_c = strides[3];
  const int64_t Q = (n_frames - 1) * hop + N;
  const int64_t kept = std::max<int64_t>(0, std::min(length, Q - start));
  const int64_t group = rows_per_group(n_frames);
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n_frames * N));
  at::parallel_for(0, R, grain, [&](int64_t r0, int64_t r1) {
    std::vector<T> acc(std::min(group, r1 - r0) * Q);
    for (int64_t rg = r0; rg < r1; rg += group) {
      const int64_t rows = std::min(group, r1 - rg);
      std::fill(acc.begin(), acc.begin() + rows * Q, T(0));
      fused_synthesis_rows<T, P>(spec + rg * s_r, s_r, s_f, s_t, s_c, rows, n_frames, w, hop, edge, interior, Q,
                                 acc.data());
      for (int64_t i = 0; i < rows; ++i) {
        const T* __restrict ar = acc.data() + i * Q;
        T* __restrict yr = y + (rg + i) * length;
        for (int64_t p = 0; p < kept; ++p) yr[p] = scale ? ar[p + start] * scale[p + start] : ar[p + start];
        std::fill(yr + kept, yr + length, T(0));
      }
    }
  });
}

// The fused path takes n_fft = 32 only on CPUs: against the FFT path in the same process it wins
// or ties at every benchmark shape at 32 (1.15-1.73x STFT, 1.36-3.0x ISTFT with MKL), and at 64 it
// is 0.8-1.4x at batches of 128-1024 series, not a clear win; 128 and 256 lose everywhere
// (benchmarks/RESULTS.md, docs/kernels.md).
constexpr int64_t kFusedNfftCpu = 32;

// Calls f with P = n_fft / 2 for the fused CPU path's n_fft (the kernels are written for any
// power-of-two P).
template <typename F>
void with_half_size_cpu(int64_t n_fft, F f) {
  TORCH_CHECK(n_fft == kFusedNfftCpu, "fused FFT kernels on CPUs: n_fft must be ", kFusedNfftCpu, ", got ", n_fft);
  f(std::integral_constant<int, kFusedNfftCpu / 2>{});
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

at::Tensor fft_analysis_cpu(const at::Tensor& x_in, const at::Tensor& window_in, const at::Tensor& scale_in,
                            int64_t hop, int64_t n_frames, int64_t pad_left, int64_t mode, double edge, double interior,
                            int64_t n_bins, bool zero_two_sided, bool stacked) {
  TORCH_CHECK(x_in.device().is_cpu() && x_in.dim() == 2, "fft_analysis_cpu: x must be a CPU Tensor[R, L]");
  const auto ops = framing_operands(x_in, window_in, scale_in);
  const auto &x = ops.input, &w = ops.window, &scale = ops.scale;
  const int64_t R = x.size(0), L = x.size(1), N = w.size(0);
  TORCH_CHECK(n_bins == N / 2 + 1 || n_bins == N, "fft_analysis_cpu: n_bins must be n_fft / 2 + 1 or n_fft");
  auto out = stacked ? at::empty({R, 2 * n_bins, n_frames}, x.options())
                     : at::empty({R, n_frames, n_bins, 2}, x.options());
  if (out.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fft_analysis_cpu", [&] {
      with_half_size_cpu(N, [&](auto half) {
        fft_analysis_rows<scalar_t, decltype(half)::value>(
            x.data_ptr<scalar_t>(), R, L, w.data_ptr<scalar_t>(), scale.defined() ? scale.data_ptr<scalar_t>() : nullptr,
            hop, n_frames, pad_left, mode, static_cast<scalar_t>(edge), static_cast<scalar_t>(interior), n_bins,
            zero_two_sided, !stacked, out.data_ptr<scalar_t>());
      });
    });
  }
  return stacked ? out : out.transpose(1, 2);
}

at::Tensor fft_synthesis_cpu(const at::Tensor& spec, bool interleaved, int64_t n_fft, const at::Tensor& window_in,
                             const at::Tensor& scale_in, int64_t hop, int64_t start, int64_t length, double edge,
                             double interior) {
  TORCH_CHECK(spec.device().is_cpu() && spec.dim() == (interleaved ? 4 : 3),
              "fft_synthesis_cpu: spec must be a CPU Tensor[R, F, T, 2] or Tensor[R, 2F, T]");
  const auto w = window_in.contiguous();
  const auto scale = scale_in.defined() ? scale_in.contiguous() : at::Tensor();
  const int64_t R = spec.size(0), n_frames = spec.size(2);
  const int64_t F = interleaved ? spec.size(1) : spec.size(1) / 2;
  TORCH_CHECK(w.size(0) == n_fft && F >= n_fft / 2 + 1, "fft_synthesis_cpu: spec needs n_fft / 2 + 1 bins");
  auto y = at::empty({R, length}, spec.options());
  if (y.numel() == 0) return y;
  if (n_frames == 0) return y.zero_();
  const int64_t strides[4] = {spec.stride(0), spec.stride(1), spec.stride(2),
                              interleaved ? spec.stride(3) : F * spec.stride(1)};
  AT_DISPATCH_FLOATING_TYPES(spec.scalar_type(), "fft_synthesis_cpu", [&] {
    with_half_size_cpu(n_fft, [&](auto half) {
      fft_synthesis_rows<scalar_t, decltype(half)::value>(
          spec.data_ptr<scalar_t>(), R, strides, n_frames, w.data_ptr<scalar_t>(),
          scale.defined() ? scale.data_ptr<scalar_t>() : nullptr, hop, start, length, static_cast<scalar_t>(edge),
          static_cast<scalar_t>(interior), y.data_ptr<scalar_t>());
    });
  });
  return y;
}

// No tables_cacheable: CPU window tables are cached by value in cached_table (stft.cpp).
extern const StftDeviceKernels kCpuKernels;
const StftDeviceKernels kCpuKernels{&frame_cpu,        &overlap_add_cpu,   kFusedNfftCpu, kFusedNfftCpu,
                                    &fft_analysis_cpu, &fft_synthesis_cpu, nullptr};

TORCH_LIBRARY_IMPL(tsvq, CPU, m) {
  using Ops = StftOps<kCpuKernels>;
  m.impl("stft", &Ops::stft);
  m.impl("istft", &Ops::istft);
  m.impl("_stft_backward", &Ops::stft_backward);
  m.impl("_istft_backward", &Ops::istft_backward);
  m.impl("_stft_analysis", &stft_analysis_cpu);
  m.impl("_stft_synthesis", &stft_synthesis_cpu);
}

}  // namespace tsvq
