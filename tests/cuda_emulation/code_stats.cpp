// Driver: csrc/ops/code_stats/code_stats_kernels.cuh (per-code counts and sums) run through
// emu.h against a direct count and sum in double: the atomic kernel with grids smaller than x
// (grid-stride loop), the deterministic segment kernel bitwise against row-order sums, both with
// indices outside [0, K) that must be skipped. Exit status 1 on any wrong count or sum.
#include "emu.h"
#include "../../csrc/ops/code_stats/code_stats_kernels.cuh"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <random>

template <typename T>
int check(int64_t N, int64_t D, int64_t K, unsigned grid, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<T> normal;
  std::uniform_int_distribution<int64_t> code(-1, K);  // -1 and K: out of range, skipped
  std::vector<T> x(N * D);
  std::vector<int64_t> idx(N);
  for (auto& v : x) v = normal(gen);
  for (auto& v : idx) v = code(gen);
  // direct count and sum (double), and the row-order sum in T that the segment kernel must match
  std::vector<double> want_c(K, 0.0), want_s(K * D, 0.0);
  std::vector<T> rowsum(K * D, T(0));
  for (int64_t n = 0; n < N; ++n) {
    if (idx[n] < 0 || idx[n] >= K) continue;
    want_c[idx[n]] += 1;
    for (int64_t d = 0; d < D; ++d) {
      want_s[idx[n] * D + d] += double(x[n * D + d]);
      rowsum[idx[n] * D + d] += x[n * D + d];
    }
  }
  int bad = 0;
  auto compare = [&](const char* kernel, const std::vector<T>& c, const std::vector<T>& s, bool bitwise) {
    for (int64_t k = 0; k < K; ++k) {
      if (double(c[k]) != want_c[k] && bad++ < 5)
        std::printf("  %s code %ld: count %g, want %g\n", kernel, long(k), double(c[k]), want_c[k]);
      for (int64_t d = 0; d < D; ++d) {
        const double got = double(s[k * D + d]);
        const bool ok = bitwise ? s[k * D + d] == rowsum[k * D + d]
                                : std::fabs(got - want_s[k * D + d]) <= (sizeof(T) == 4 ? 1e-4 : 1e-12) * (1 + want_c[k]);
        if (!ok && bad++ < 5)
          std::printf("  %s code %ld d %ld: sum %.17g, want %.17g\n", kernel, long(k), long(d), got, want_s[k * D + d]);
      }
    }
  };
  {  // atomic kernel
    std::vector<T> c(K, T(0)), s(K * D, T(0));
    launch(grid, 256, [&] {
      tsvq::stats::code_stats_atomic_kernel<T, T>(x.data(), idx.data(), N, D, K, c.data(), s.data());
    });
    compare("atomic", c, s, false);
  }
  {  // segment kernel: rows stably sorted by code, offsets = searchsorted(keys, 0..K) as the launcher does
    std::vector<int64_t> order(N);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return idx[a] < idx[b]; });
    std::vector<int64_t> keys(N), offsets(K + 1);
    for (int64_t j = 0; j < N; ++j) keys[j] = idx[order[j]];
    for (int64_t k = 0; k <= K; ++k) offsets[k] = std::lower_bound(keys.begin(), keys.end(), k) - keys.begin();
    std::vector<T> c(K, T(-7)), s(K * D, T(-7));
    launch(static_cast<unsigned>(K), 128, [&] {
      tsvq::stats::code_stats_segment_kernel<T, T>(x.data(), order.data(), offsets.data(), D, c.data(), s.data());
    });
    compare("segment", c, s, true);
  }
  std::printf("%s N=%ld D=%ld K=%ld grid=%u: %d wrong outputs\n", sizeof(T) == 4 ? "float" : "double", long(N),
              long(D), long(K), grid, bad);
  return bad;
}

int main() {
  int bad = 0;
  bad += check<float>(500, 3, 7, 1, 1);      // one block strides over all 1500 elements
  bad += check<double>(300, 130, 5, 3, 2);   // D past the segment kernel's 128 threads
  bad += check<float>(64, 16, 40, 64, 3);    // more codes than rows: empty codes
  bad += check<double>(1, 1, 1, 1, 4);
  return bad ? 1 : 0;
}
