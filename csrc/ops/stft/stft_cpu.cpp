// CPU framing kernels behind tsvq::stft / tsvq::istft (direct DFT path, n_fft <= 64).
//
// _stft_analysis: out[r, j, t] = sum_n basis[n, j] * scale[q] * xpad[r, q], q = t * hop + n.
//   Each row's centre padding is resolved by index arithmetic while the row is split into
//   `hop` phases (ph[n % hop][t + n / hop] == xpad[t * hop + n]), so that for a fixed n the
//   samples of consecutive frames are contiguous: the tile loop is then a small GEMM with
//   unit-stride, vectorised loads (AVX-512 / AVX2 clones picked at load time). The phase
//   buffer is a per-thread scratch of about L samples; no padded or framed copy of the input
//   is ever made.
// _stft_synthesis: y[r, p] = scale[q] * sum_t sum_j spec[r, j, t] * basis[j, q - t * hop],
//   q = p + start (zero where q is past the last frame). Frames are formed four at a time in a
//   per-thread scratch and overlap-added into the output row in the same pass.
// Rows are distributed over threads with at::parallel_for.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

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

template <typename T>
void analysis_cpu(const T* x, int64_t R, int64_t L, const T* basis_in, int64_t N, int64_t J,
                  const T* scale, int64_t hop, int64_t n_frames, int64_t pad_left, int64_t mode,
                  bool interleaved, T* out) {
  const int64_t Jp = (J + kJB - 1) / kJB * kJB;
  std::vector<T> basis(N * Jp, T(0));  // columns padded to a multiple of kJB
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < J; ++j) basis[n * Jp + j] = basis_in[n * J + j];
  const int64_t H = std::min(hop, N);  // phases actually read
  const int64_t Tp = (n_frames + kTB - 1) / kTB * kTB;
  const int64_t M = Tp + (N - 1) / hop + 1;
  const int64_t Qv = (n_frames - 1) * hop + N;  // samples covered by the frames
  const int64_t F = J / 2;
  at::parallel_for(0, R, 1, [&](int64_t r0, int64_t r1) {
    std::vector<T> ph(H * M);
    alignas(64) T acc[kJB * kTB];
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * L;
      for (int64_t rr = 0; rr < H; ++rr) {
        T* dst = ph.data() + rr * M;
        for (int64_t m = 0; m < M; ++m) {
          const int64_t q = m * hop + rr;
          T v = T(0);
          if (q < Qv) {
            const int64_t s = pad_source(q, pad_left, L, mode);
            if (s >= 0) v = scale ? xr[s] * scale[q] : xr[s];
          }
          dst[m] = v;
        }
      }
      for (int64_t t0 = 0; t0 < n_frames; t0 += kTB) {
        const int64_t nt = std::min(kTB, n_frames - t0);
        for (int64_t j0 = 0; j0 < J; j0 += kJB) {
          analysis_tile<T>(ph.data(), M, hop, N, basis.data(), Jp, j0, t0, acc);
          const int64_t nj = std::min(kJB, J - j0);
          for (int64_t jj = 0; jj < nj; ++jj) {
            const int64_t j = j0 + jj;
            const T* a = acc + jj * kTB;
            if (!interleaved) {
              T* o = out + (r * J + j) * n_frames + t0;
              for (int64_t tt = 0; tt < nt; ++tt) o[tt] = a[tt];
            } else {
              const int64_t z = j / F, f = j - z * F;
              T* o = out + ((r * F + f) * n_frames + t0) * 2 + z;
              for (int64_t tt = 0; tt < nt; ++tt) o[2 * tt] = a[tt];
            }
          }
        }
      }
    }
  });
}

// frames[k][n] += sum_j spec(j, t0 + k) * basis[j][n] for k < 4
template <typename T>
TSVQ_MULTIVERSION void synthesis_tile(const T* __restrict s0, const T* __restrict s1,
                                      const T* __restrict s2, const T* __restrict s3,
                                      int64_t spec_j_stride, const T* __restrict basis, int64_t J,
                                      int64_t N, T* __restrict frames) {
  T* __restrict f0 = frames;
  T* __restrict f1 = frames + N;
  T* __restrict f2 = frames + 2 * N;
  T* __restrict f3 = frames + 3 * N;
  for (int64_t n = 0; n < 4 * N; ++n) frames[n] = T(0);
  for (int64_t j = 0; j < J; ++j) {
    const T a0 = s0[j * spec_j_stride], a1 = s1[j * spec_j_stride];
    const T a2 = s2[j * spec_j_stride], a3 = s3[j * spec_j_stride];
    const T* __restrict b = basis + j * N;
    for (int64_t n = 0; n < N; ++n) {
      const T bn = b[n];
      f0[n] += a0 * bn;
      f1[n] += a1 * bn;
      f2[n] += a2 * bn;
      f3[n] += a3 * bn;
    }
  }
}

template <typename T>
void synthesis_cpu(const T* spec, int64_t R, int64_t J, int64_t n_frames, bool interleaved,
                   const T* basis, int64_t N, const T* scale, int64_t hop, int64_t start,
                   int64_t length, T* y) {
  const int64_t Q = (n_frames - 1) * hop + N;
  const int64_t F = J / 2;
  at::parallel_for(0, R, 1, [&](int64_t r0, int64_t r1) {
    std::vector<T> ybuf(Q);
    std::vector<T> frames(4 * N);
    for (int64_t r = r0; r < r1; ++r) {
      std::fill(ybuf.begin(), ybuf.end(), T(0));
      for (int64_t t0 = 0; t0 < n_frames; t0 += 4) {
        const T* s[4];
        int64_t js = 0;
        for (int64_t k = 0; k < 4; ++k) {
          const int64_t t = std::min(t0 + k, n_frames - 1);
          if (!interleaved) {
            s[k] = spec + r * J * n_frames + t;
            js = n_frames;
          } else {
            s[k] = spec + (r * F * n_frames + t) * 2;
            js = 0;  // handled below
          }
        }
        if (!interleaved) {
          synthesis_tile<T>(s[0], s[1], s[2], s[3], js, basis, J, N, frames.data());
        } else {
          // j = z * F + f lives at ((f * T + t) * 2 + z): real rows, then imaginary rows.
          std::fill(frames.begin(), frames.end(), T(0));
          std::vector<T>& fr = frames;
          for (int64_t z = 0; z < 2; ++z) {
            const T* b = basis + z * F * N;
            for (int64_t f = 0; f < F; ++f) {
              const int64_t off = f * n_frames * 2 + z;
              const T a0 = s[0][off], a1 = s[1][off], a2 = s[2][off], a3 = s[3][off];
              const T* bf = b + f * N;
              for (int64_t n = 0; n < N; ++n) {
                fr[n] += a0 * bf[n];
                fr[N + n] += a1 * bf[n];
                fr[2 * N + n] += a2 * bf[n];
                fr[3 * N + n] += a3 * bf[n];
              }
            }
          }
        }
        const int64_t nt = std::min<int64_t>(4, n_frames - t0);
        for (int64_t k = 0; k < nt; ++k) {
          T* dst = ybuf.data() + (t0 + k) * hop;
          const T* src = frames.data() + k * N;
          for (int64_t n = 0; n < N; ++n) dst[n] += src[n];
        }
      }
      T* yr = y + r * length;
      for (int64_t p = 0; p < length; ++p) {
        const int64_t q = p + start;
        yr[p] = q < Q ? (scale ? ybuf[q] * scale[q] : ybuf[q]) : T(0);
      }
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
  auto spec = spec_in.contiguous();
  auto basis = basis_in.contiguous();
  auto scale = contiguous_scale(scale_in);
  AT_DISPATCH_FLOATING_TYPES(spec.scalar_type(), "stft_synthesis_cpu", [&] {
    synthesis_cpu<scalar_t>(spec.data_ptr<scalar_t>(), R, J, n_frames, interleaved,
                            basis.data_ptr<scalar_t>(), N,
                            scale.defined() ? scale.data_ptr<scalar_t>() : nullptr, hop, start,
                            length, y.data_ptr<scalar_t>());
  });
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(tsvq, CPU, m) {
  m.impl("_stft_analysis", &stft_analysis_cpu);
  m.impl("_stft_synthesis", &stft_synthesis_cpu);
}

}  // namespace tsvq
