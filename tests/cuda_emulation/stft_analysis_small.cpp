// Driver: csrc/ops/stft/stft_analysis_small.cuh run through emu.h against a direct evaluation in
// double with its own padding (not pad_source). Exit status 1 on any wrong output.
#include "emu.h"
#include "padding.h"
#include "../../csrc/ops/stft/stft_analysis_small.cuh"

#include <cstdio>
#include <random>

using tsvq::small_analysis::kThreads;

template <typename T>
int check(int64_t R, int64_t L, int N, int J, int64_t hop, bool center, int mode, bool interleaved, bool scaled,
          unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal;
  const int64_t pad = center ? N / 2 : 0;
  const int64_t T_frames = 1 + (L + 2 * pad - N) / hop;
  std::vector<T> x(R * L), basis(int64_t(N) * J), scale((T_frames - 1) * hop + N);
  for (auto& v : x) v = T(normal(gen));
  for (auto& v : basis) v = T(normal(gen));
  for (auto& v : scale) v = T(1.0 + 0.5 * normal(gen));
  std::vector<T> out(R * J * T_frames, T(-7));
  const unsigned blocks = static_cast<unsigned>((R * T_frames + kThreads - 1) / kThreads);
  launch(blocks, kThreads, [&] {
    auto kernel = N <= 8 ? tsvq::small_analysis::stft_analysis_small_kernel<T, 8>
                         : tsvq::small_analysis::stft_analysis_small_kernel<T, tsvq::small_analysis::kMaxN>;
    kernel(x.data(), R, L, basis.data(), N, J, scaled ? scale.data() : nullptr, hop, T_frames, pad, mode, interleaved,
           out.data());
  });
  int bad = 0;
  const int F = J / 2;
  for (int64_t r = 0; r < R; ++r) {
    std::vector<double> xr(x.begin() + r * L, x.begin() + (r + 1) * L);
    for (int64_t t = 0; t < T_frames; ++t)
      for (int j = 0; j < J; ++j) {
        double want = 0;
        for (int n = 0; n < N; ++n)
          want += double(basis[n * J + j]) * padded(xr, t * hop + n, pad, mode) * (scaled ? double(scale[t * hop + n]) : 1.0);
        const int64_t at = interleaved ? ((r * F + j % F) * T_frames + t) * 2 + j / F : (r * J + j) * T_frames + t;
        const double tol = (sizeof(T) == 4 ? 1e-5 : 1e-12) * (1 + std::fabs(want)) * N;
        if (std::fabs(double(out[at]) - want) > tol && bad++ < 5)
          std::printf("  r=%ld t=%ld j=%d: got %g, want %g\n", long(r), long(t), j, double(out[at]), want);
      }
  }
  std::printf("%s R=%ld L=%ld N=%d J=%d hop=%ld center=%d mode=%d interleaved=%d scaled=%d: %d wrong outputs\n",
              sizeof(T) == 4 ? "float" : "double", long(R), long(L), N, J, long(hop), center, mode, interleaved, scaled, bad);
  return bad;
}

int main() {
  int bad = 0;
  bad += check<float>(3, 150, 8, 10, 2, true, 1, true, false, 1);     // the models' setting (onesided, stacked)
  bad += check<float>(3, 150, 8, 10, 2, true, 1, false, false, 2);
  bad += check<double>(2, 37, 5, 6, 3, true, 0, false, true, 3);      // odd n_fft, constant padding, scaled
  bad += check<double>(2, 33, 16, 18, 4, true, 2, true, false, 4);    // largest N, replicate
  bad += check<float>(1, 20, 9, 18, 1, true, 3, false, true, 5);      // circular, two-sided J = 2 N, hop 1
  bad += check<double>(4, 16, 16, 32, 16, false, 0, true, false, 6);  // no centre padding, one frame per row
  bad += check<float>(5, 3, 1, 2, 1, false, 0, false, false, 7);      // n_fft 1
  bad += check<float>(300, 31, 4, 6, 2, true, 1, true, true, 8);      // frames of many rows in one block
  return bad ? 1 : 0;
}
