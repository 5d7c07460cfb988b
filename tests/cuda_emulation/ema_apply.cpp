// Driver: csrc/ops/ema_codebook_update/ema_kernels.cuh (the O(K D) part of the EMA codebook
// update) run through emu.h against a direct evaluation in long double of
//   n' = decay n + (1 - decay) c,  m' = decay m + (1 - decay) s,
//   e' = m' / ((n' + eps) / (sum n' + K eps) sum n'),
// with K below, at and above the block's 256 threads, D = 1 and D past a grid-stride pass (grid
// smaller than K D), decay 0 and 1, both dtypes. Exit status 1 on any wrong output.
#include "emu.h"
#include "../../csrc/ops/ema_codebook_update/ema_kernels.cuh"

#include <cstdio>
#include <random>

template <typename T>
int check(int64_t K, int64_t D, double decay, unsigned grid, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> uni(0.0, 3.0);
  std::normal_distribution<double> normal;
  std::vector<T> n(K), c(K), m(K * D), s(K * D), e(K * D, T(-7));
  for (int64_t k = 0; k < K; ++k) {
    n[k] = T(uni(gen));
    c[k] = T(int(uni(gen) * 2));
    for (int64_t d = 0; d < D; ++d) {
      m[k * D + d] = T(normal(gen) * double(n[k]));
      s[k * D + d] = T(normal(gen) * double(c[k]));
    }
  }
  const double eps = 1e-5;
  std::vector<long double> want_n(K), want_m(K * D), want_e(K * D);
  long double total = 0;
  for (int64_t k = 0; k < K; ++k) {
    want_n[k] = decay * (long double)n[k] + (1 - decay) * (long double)c[k];
    total += want_n[k];
  }
  for (int64_t k = 0; k < K; ++k)
    for (int64_t d = 0; d < D; ++d) {
      want_m[k * D + d] = decay * (long double)m[k * D + d] + (1 - decay) * (long double)s[k * D + d];
      want_e[k * D + d] = want_m[k * D + d] / ((want_n[k] + eps) / (total + K * eps) * total);
    }

  T tot = T(-1);
  const T dec = T(decay), keep = T(1.0 - decay);
  launch(1, tsvq::ema::kThreads, [&] {
    tsvq::ema::cluster_size_kernel<T>(n.data(), c.data(), K, dec, keep, &tot);
  });
  launch(grid, tsvq::ema::kThreads, [&] {
    tsvq::ema::codebook_kernel<T>(n.data(), &tot, m.data(), e.data(), s.data(), K, D, dec, keep, T(eps));
  });

  const double tol = sizeof(T) == 4 ? 2e-6 : 1e-14;
  int bad = 0;
  auto near = [&](long double want, T got) {
    return std::fabs(double(got) - double(want)) <= tol * (1 + std::fabs(double(want)));
  };
  if (!near(total, tot) && bad++ < 5) std::printf("  total %.17g, want %.17Lg\n", double(tot), total);
  for (int64_t k = 0; k < K; ++k) {
    if (!near(want_n[k], n[k]) && bad++ < 5)
      std::printf("  n[%ld] %.17g, want %.17Lg\n", long(k), double(n[k]), want_n[k]);
    for (int64_t d = 0; d < D; ++d) {
      const int64_t i = k * D + d;
      if (!near(want_m[i], m[i]) && bad++ < 5)
        std::printf("  m[%ld, %ld] %.17g, want %.17Lg\n", long(k), long(d), double(m[i]), want_m[i]);
      // e = m / smoothed: relative error of a quotient of two rounded values
      if (!near(want_e[i], e[i]) && bad++ < 5)
        std::printf("  e[%ld, %ld] %.17g, want %.17Lg\n", long(k), long(d), double(e[i]), want_e[i]);
    }
  }
  std::printf("%s K=%ld D=%ld decay=%g grid=%u: %d wrong outputs\n", sizeof(T) == 4 ? "float" : "double", long(K),
              long(D), decay, grid, bad);
  return bad;
}

int main() {
  int bad = 0;
  bad += check<float>(1, 1, 0.9, 1, 1);        // one code
  bad += check<double>(256, 3, 0.8, 2, 2);     // K = the block's threads
  bad += check<float>(1000, 7, 0.99, 3, 3);    // K past the block: threads stride; grid strides
  bad += check<double>(37, 130, 0.0, 4, 4);    // decay 0: the batch alone
  bad += check<double>(5, 2, 1.0, 1, 5);       // decay 1: the state alone
  return bad ? 1 : 0;
}
