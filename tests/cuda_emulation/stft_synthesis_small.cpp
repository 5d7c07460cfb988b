// Driver: csrc/ops/stft/stft_synthesis_small.cuh run through emu.h against a frame-by-frame
// overlap-add in double. Exit status 1 on any wrong output.
#include "emu.h"
#include "../../csrc/ops/stft/stft_synthesis_small.cuh"

#include <cstdio>
#include <random>

using tsvq::small_synthesis::kThreads;

template <typename T>
int check(int64_t R, int64_t T_frames, int N, int J, int64_t hop, int64_t start, int64_t length, bool interleaved,
          bool scaled, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal;
  const int64_t Q = (T_frames - 1) * hop + N;
  const int F = J / 2;
  std::vector<T> spec(R * J * T_frames), basis(int64_t(J) * N), scale(Q);
  for (auto& v : spec) v = T(normal(gen));
  for (auto& v : basis) v = T(normal(gen));
  for (auto& v : scale) v = T(1.0 + 0.5 * normal(gen));
  std::vector<T> y(R * length, T(-7));
  launch(static_cast<unsigned>((R * length + kThreads - 1) / kThreads), kThreads, [&] {
    tsvq::small_synthesis::stft_synthesis_small_kernel<T>(spec.data(), R, J, T_frames, interleaved, basis.data(), N,
                                                          scaled ? scale.data() : nullptr, hop, start, length, y.data());
  });
  auto spec_at = [&](int64_t r, int j, int64_t t) {
    return double(interleaved ? spec[((r * F + j % F) * T_frames + t) * 2 + j / F] : spec[(r * J + j) * T_frames + t]);
  };
  int bad = 0;
  for (int64_t r = 0; r < R; ++r) {
    std::vector<double> full(Q, 0.0);  // overlap-add of every frame
    for (int64_t t = 0; t < T_frames; ++t)
      for (int n = 0; n < N; ++n) {
        double frame = 0;
        for (int j = 0; j < J; ++j) frame += spec_at(r, j, t) * double(basis[j * N + n]);
        full[t * hop + n] += frame;
      }
    for (int64_t p = 0; p < length; ++p) {
      const int64_t q = p + start;
      const double want = q < Q ? full[q] * (scaled ? double(scale[q]) : 1.0) : 0.0;
      const double tol = (sizeof(T) == 4 ? 1e-5 : 1e-12) * (1 + std::fabs(want)) * J * N;
      if (std::fabs(double(y[r * length + p]) - want) > tol && bad++ < 5)
        std::printf("  r=%ld p=%ld: got %g, want %g\n", long(r), long(p), double(y[r * length + p]), want);
    }
  }
  std::printf("%s R=%ld T=%ld N=%d J=%d hop=%ld start=%ld length=%ld interleaved=%d scaled=%d: %d wrong outputs\n",
              sizeof(T) == 4 ? "float" : "double", long(R), long(T_frames), N, J, long(hop), long(start), long(length),
              interleaved, scaled, bad);
  return bad;
}

int main() {
  int bad = 0;
  bad += check<float>(3, 76, 8, 10, 2, 4, 150, true, true, 1);      // the models' setting: istft of 150 samples
  bad += check<float>(3, 76, 8, 10, 2, 4, 150, false, true, 2);
  bad += check<double>(2, 13, 5, 6, 3, 2, 37, false, false, 3);     // odd n_fft
  bad += check<double>(2, 9, 16, 18, 4, 8, 33, true, true, 4);      // largest N
  bad += check<float>(1, 20, 9, 18, 1, 4, 30, false, true, 5);      // hop 1: nine frames per sample
  bad += check<double>(4, 1, 16, 32, 16, 0, 16, true, false, 6);    // one frame per row, two-sided
  bad += check<float>(2, 10, 8, 10, 2, 3, 40, true, true, 7);       // length past the last frame: zeros
  bad += check<double>(2, 5, 4, 7, 6, 0, 30, false, false, 8);      // hop > n_fft (gaps), odd J
  bad += check<float>(300, 16, 4, 6, 2, 2, 31, true, true, 9);      // samples of many rows in one block
  return bad ? 1 : 0;
}
