// Driver: csrc/ops/stft/stft_fft_small.cuh (the fused warp-FFT STFT / ISTFT kernels for
// power-of-two n_fft in [2, 64]) run through emu.h against a direct DFT in double with its own
// padding (not pad_source): every n_fft, both dtypes and index types, every pad mode, scaled and
// weighted bins, one- and two-sided outputs in both layouts, spectra read through three stride
// patterns, hop 1 to hop > n_fft, trimming and zeros past the frames, grids smaller than the work.
// Exit status 1 on any wrong output.
#include "emu.h"
#include "padding.h"
#include "../../csrc/ops/stft/stft_fft_small.cuh"

#include <cstdio>
#include <random>

namespace wf = tsvq::warpfft;

constexpr double kPi = 3.14159265358979323846;

template <typename T, int P, typename Index>
int check_analysis(int64_t R, int64_t L, int64_t hop, int64_t pad, int mode, bool scaled, int two_sided,
                   bool interleaved, double edge, double interior, unsigned grid_cap, unsigned seed) {
  constexpr int N = 2 * P, G = 32 / P;
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal;
  const int64_t n_frames = 1 + (L + 2 * pad - N) / hop;
  const int64_t F = two_sided == wf::kOneSided ? P + 1 : N;
  const int64_t Qv = (n_frames - 1) * hop + N;
  std::vector<T> x(R * L), w(N), scale(Qv);
  for (auto& v : x) v = T(normal(gen));
  for (auto& v : w) v = T(normal(gen));
  for (auto& v : scale) v = T(1.0 + 0.5 * normal(gen));
  std::vector<T> out(R * n_frames * F * 2, T(-7));
  const int64_t groups = (R * n_frames + wf::kWarps * G - 1) / (wf::kWarps * G);
  const unsigned grid = static_cast<unsigned>(groups < grid_cap ? groups : grid_cap);
  launch(grid, wf::kThreads, [&] {
    wf::analysis_kernel<T, P, Index>(x.data(), Index(R), Index(L), w.data(), scaled ? scale.data() : nullptr,
                                     Index(hop), Index(n_frames), Index(pad), mode, T(edge), T(interior), two_sided,
                                     interleaved, out.data());
  });
  int bad = 0;
  double worst = 0;
  for (int64_t r = 0; r < R; ++r) {
    std::vector<double> xr(x.begin() + r * L, x.begin() + (r + 1) * L);
    for (int64_t t = 0; t < n_frames; ++t) {
      std::vector<double> fr(N);
      double mag = 0;
      for (int n = 0; n < N; ++n) {
        const int64_t q = t * hop + n;
        fr[n] = double(w[n]) * padded(xr, q, pad, mode) * (scaled ? double(scale[q]) : 1.0);
        mag += std::fabs(fr[n]);
      }
      for (int64_t f = 0; f < F; ++f) {
        const int64_t k = f <= P ? f : N - f;  // bins past N / 2: conjugate mirror (or zero)
        double re = 0, im = 0;
        for (int n = 0; n < N; ++n) {
          re += fr[n] * std::cos(2 * kPi * k * n / N);
          im -= fr[n] * std::sin(2 * kPi * k * n / N);
        }
        const double c = (k == 0 || k == P) ? edge : interior;
        re *= c;
        im *= f <= P ? c : -c;
        if (f > P && two_sided == wf::kZero) re = im = 0;
        const int64_t i_re = interleaved ? ((r * n_frames + t) * F + f) * 2 : (r * 2 * F + f) * n_frames + t;
        const int64_t i_im = interleaved ? i_re + 1 : i_re + F * n_frames;
        const double tol = (sizeof(T) == 4 ? 2e-6 : 1e-14) * (1 + mag * std::fabs(c));
        for (int z = 0; z < 2; ++z) {
          const double want = z ? im : re, got = double(out[z ? i_im : i_re]);
          worst = std::max(worst, std::fabs(got - want) / (1 + mag * std::fabs(c)));
          if (!(std::fabs(got - want) <= tol) && bad++ < 5)
            std::printf("  r=%ld t=%ld f=%ld %s: got %g, want %g\n", long(r), long(t), long(f), z ? "im" : "re",
                        got, want);
        }
      }
    }
  }
  std::printf("analysis %s/%s N=%d R=%ld L=%ld hop=%ld pad=%ld mode=%d scaled=%d two_sided=%d interleaved=%d "
              "grid=%u: %d wrong outputs (worst relative error %.2g)\n",
              sizeof(T) == 4 ? "float" : "double", sizeof(Index) == 4 ? "u32" : "i64", N, long(R), long(L),
              long(hop), long(pad), mode, scaled, two_sided, interleaved, grid, bad, worst);
  return bad;
}

// Spectrum layouts read by the synthesis kernel (element strides of [R, F, T] and re/im).
enum Layout { kInterleavedContiguous, kInterleavedFramesMajor, kStacked };

template <typename T, int P, typename Index>
int check_synthesis(int64_t R, int64_t n_frames, int64_t F, int64_t hop, int64_t start, int64_t length, bool scaled,
                    Layout layout, double edge, double interior, unsigned seed) {
  constexpr int N = 2 * P;
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal;
  const int64_t Q = (n_frames - 1) * hop + N;
  wf::SpecStrides<Index> st{};
  if (layout == kInterleavedContiguous) st = {Index(F * n_frames * 2), Index(n_frames * 2), Index(2), Index(1)};
  if (layout == kInterleavedFramesMajor) st = {Index(F * n_frames * 2), Index(2), Index(F * 2), Index(1)};
  if (layout == kStacked) st = {Index(2 * F * n_frames), Index(n_frames), Index(1), Index(F * n_frames)};
  std::vector<T> spec(R * F * n_frames * 2), w(N), scale(Q);
  for (auto& v : spec) v = T(normal(gen));
  for (auto& v : w) v = T(normal(gen));
  for (auto& v : scale) v = T(1.0 + 0.5 * normal(gen));
  std::vector<T> y(R * length, T(-7));
  const auto tile = wf::synthesis_tile(N, hop, n_frames, wf::kSynthesisSmemBytes / sizeof(T));
  const int64_t n_tiles = (n_frames + tile.frames - 1) / tile.frames;
  launch(static_cast<unsigned>(R * n_tiles), wf::kThreads, [&] {
    wf::synthesis_kernel<T, P, Index>(spec.data(), st, Index(n_frames), w.data(), scaled ? scale.data() : nullptr,
                                      Index(hop), Index(start), Index(length), T(edge), T(interior),
                                      Index(tile.frames), Index(tile.halo), Index(n_tiles), y.data());
  });
  int bad = 0;
  double worst = 0;
  for (int64_t r = 0; r < R; ++r) {
    std::vector<double> full(Q, 0.0), mag(Q, 0.0);
    for (int64_t t = 0; t < n_frames; ++t) {
      for (int n = 0; n < N; ++n) {
        double v = 0, m = 0;
        for (int k = 0; k <= P; ++k) {
          const int64_t o = r * st.r + k * st.f + t * st.t;
          const double re = double(spec[o]), im = (k == 0 || k == P) ? 0.0 : double(spec[o + st.c]);
          const double c = (k == 0 || k == P) ? edge : 2 * interior;
          v += c * (re * std::cos(2 * kPi * k * n / N) - im * std::sin(2 * kPi * k * n / N));
          m += std::fabs(c) * (std::fabs(re) + std::fabs(im));
        }
        full[t * hop + n] += double(w[n]) * v;
        mag[t * hop + n] += std::fabs(double(w[n])) * m;
      }
    }
    for (int64_t p = 0; p < length; ++p) {
      const int64_t q = p + start;
      const double s = scaled && q < Q ? double(scale[q]) : 1.0;
      const double want = q < Q ? full[q] * s : 0.0, got = double(y[r * length + p]);
      const double m = q < Q ? mag[q] * std::fabs(s) : 0.0;
      const double tol = (sizeof(T) == 4 ? 2e-6 : 1e-14) * (1 + m);
      worst = std::max(worst, std::fabs(got - want) / (1 + m));
      if (!(std::fabs(got - want) <= tol) && bad++ < 5)
        std::printf("  r=%ld p=%ld: got %g, want %g\n", long(r), long(p), got, want);
    }
  }
  std::printf("synthesis %s/%s N=%d R=%ld T=%ld F=%ld hop=%ld start=%ld length=%ld scaled=%d layout=%d tile=%ld+%ld: "
              "%d wrong outputs (worst relative error %.2g)\n",
              sizeof(T) == 4 ? "float" : "double", sizeof(Index) == 4 ? "u32" : "i64", N, long(R), long(n_frames),
              long(F), long(hop), long(start), long(length), scaled, int(layout), long(tile.frames), long(tile.halo),
              bad, worst);
  return bad;
}

// The STFT of every n_fft with centre reflect padding, hop n_fft / 4 (or 1), both layouts.
template <int P>
int analysis_cases(unsigned seed) {
  constexpr int N = 2 * P;
  const int64_t hop = N >= 4 ? N / 4 : 1;
  int bad = 0;
  bad += check_analysis<float, P, uint32_t>(3, 3 * N + 5, hop, N / 2, 1, false, wf::kOneSided, true, 1, 1, 1 << 20,
                                            seed);
  bad += check_analysis<double, P, int64_t>(2, 2 * N + 1, hop, N / 2, 1, false, wf::kOneSided, false, 0.5, 0.5, 2,
                                            seed + 1);
  return bad;
}

template <int P>
int synthesis_cases(unsigned seed) {
  constexpr int N = 2 * P;
  const int64_t hop = N >= 4 ? N / 4 : 1;
  const int64_t T = 9;
  const int64_t Q = (T - 1) * hop + N;
  int bad = 0;
  // istft: envelope as scale, centre trimming, 1 / N weights
  bad += check_synthesis<float, P, uint32_t>(3, T, P + 1, hop, N / 2, Q - N, true, kInterleavedFramesMajor,
                                             1.0 / N, 1.0 / N, seed);
  bad += check_synthesis<double, P, int64_t>(2, T, P + 1, hop, N / 2, Q - N, true, kStacked, 1.0 / N, 1.0 / N,
                                             seed + 1);
  return bad;
}

int main() {
  int bad = 0;
  bad += analysis_cases<1>(10) + analysis_cases<2>(20) + analysis_cases<4>(30) + analysis_cases<8>(40) +
         analysis_cases<16>(50) + analysis_cases<32>(60);
  bad += synthesis_cases<1>(70) + synthesis_cases<2>(80) + synthesis_cases<4>(90) + synthesis_cases<8>(100) +
         synthesis_cases<16>(110) + synthesis_cases<32>(120);
  // analysis: every pad mode, the istft backward (envelope scale, constant padding by start, frames
  // past the series, bins weighted 1 / N and 2 / N, two-sided zeros), the mirrored two-sided STFT,
  // hop > n_fft, hop 1, a grid-stride loop over many passes
  bad += check_analysis<float, 4, uint32_t>(5, 40, 2, 4, 0, false, wf::kOneSided, false, 1, 1, 3, 200);   // constant
  bad += check_analysis<double, 8, uint32_t>(2, 37, 4, 8, 2, false, wf::kMirror, true, 0.25, 0.25, 1, 201);  // replicate
  bad += check_analysis<float, 16, int64_t>(2, 50, 8, 16, 3, false, wf::kMirror, false, 1, 1, 2, 202);    // circular
  bad += check_analysis<double, 32, uint32_t>(3, 29, 16, 32, 0, true, wf::kZero, true, 1.0 / 64, 2.0 / 64, 1, 203);
  bad += check_analysis<float, 32, uint32_t>(2, 100, 16, 32, 0, true, wf::kOneSided, false, 1.0 / 64, 2.0 / 64, 1,
                                             204);
  bad += check_analysis<float, 4, int64_t>(3, 100, 20, 0, 1, false, wf::kOneSided, true, 1, 1, 2, 205);  // hop > N
  bad += check_analysis<double, 16, uint32_t>(2, 40, 1, 16, 1, false, wf::kOneSided, false, 1, 1, 3, 206);  // hop 1
  bad += check_analysis<float, 2, uint32_t>(40, 33, 1, 2, 1, false, wf::kOneSided, true, 1, 1, 2, 207);  // many passes
  // synthesis: the stft backward (no scale, weights 1 and 1/2, start 0, the padded length), hop >
  // n_fft (gaps), hop 1 (64 frames a sample, tile of one frame in double), length past the frames
  // (zeros), length short of them, two-sided spectra (bins past N / 2 ignored), rows of several tiles
  bad += check_synthesis<float, 4, uint32_t>(2, 33, 5, 2, 0, 72, false, kStacked, 1, 0.5, 300);
  bad += check_synthesis<double, 8, int64_t>(2, 6, 9, 20, 0, 116, false, kInterleavedContiguous, 0.25, 0.125, 301);
  bad += check_synthesis<double, 32, uint32_t>(1, 70, 33, 1, 32, 69, true, kInterleavedFramesMajor, 1.0 / 8,
                                               1.0 / 8, 302);
  bad += check_synthesis<float, 16, uint32_t>(2, 9, 17, 8, 16, 150, true, kStacked, 1.0 / 32, 1.0 / 32, 303);
  bad += check_synthesis<float, 16, int64_t>(2, 9, 17, 8, 16, 40, true, kInterleavedContiguous, 1.0 / 32, 1.0 / 32,
                                             304);
  bad += check_synthesis<double, 4, uint32_t>(2, 9, 8, 2, 4, 16, true, kInterleavedFramesMajor, 1.0 / 8, 1.0 / 8,
                                              305);  // F = n_fft
  bad += check_synthesis<float, 4, uint32_t>(2, 300, 5, 2, 4, 598, true, kStacked, 1.0 / 8, 1.0 / 8, 306);  // 3 tiles
  bad += check_synthesis<float, 32, uint32_t>(2, 200, 33, 16, 32, 3200, true, kInterleavedFramesMajor, 1.0 / 64,
                                              1.0 / 64, 307);  // 2 tiles of 125 + 3 halo
  return bad ? 1 : 0;
}
