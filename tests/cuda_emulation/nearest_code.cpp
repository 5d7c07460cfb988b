// Driver: the CUDA nearest-codeword kernel, csrc/ops/nearest_code/nearest_code_4x4.cuh (float32
// and float64), run through emu.h against a brute-force search in double. Exit status 1 (with the first failures
// printed) on any wrong row.
#include "emu.h"
#include "../../csrc/ops/nearest_code/nearest_code_4x4.cuh"

#include <cstdio>
#include <limits>
#include <random>
#include <type_traits>

// Random x [N, D] and codebook [K, D]. dup_codes: codes K/2.. repeat codes 0.., and every row of
// x is one of the first codes (the lower twin must win). nan_row: row 3 holds a NaN (index -1,
// dist NaN expected).
template <typename T>
int check(int64_t N, int K, int64_t D, unsigned seed, bool dup_codes = false, bool nan_row = false) {
  std::mt19937 gen(seed);
  std::normal_distribution<T> normal;
  std::vector<T> x(N * D), cb(int64_t(K) * D), cnorm(K);
  for (auto& v : x) v = normal(gen);
  for (auto& v : cb) v = normal(gen);
  if (dup_codes) {
    for (int k = K / 2; k < K; ++k)
      for (int64_t d = 0; d < D; ++d) cb[k * D + d] = cb[(k - K / 2) * D + d];
    for (int64_t r = 0; r < N; ++r)
      for (int64_t d = 0; d < D; ++d) x[r * D + d] = cb[((r * 7) % (K / 2)) * D + d];
  }
  if (nan_row && N > 3) x[3 * D] = std::numeric_limits<T>::quiet_NaN();
  for (int k = 0; k < K; ++k) {
    T s = 0;
    for (int64_t d = 0; d < D; ++d) s += cb[k * D + d] * cb[k * D + d];
    cnorm[k] = s;
  }
  std::vector<int64_t> idx(N, -7);
  std::vector<T> dist(N, T(-7));
  launch(static_cast<unsigned>((N + tsvq::tile4::kBM - 1) / tsvq::tile4::kBM), tsvq::tile4::kThreads, [&] {
    tsvq::tile4::nearest_code_kernel<T, T>(x.data(), cb.data(), cnorm.data(), N, K, D, idx.data(), dist.data());
  });
  auto sq = [&](int64_t r, int64_t k) {
    double s = 0;
    for (int64_t d = 0; d < D; ++d) {
      const double t = double(x[r * D + d]) - cb[k * D + d];
      s += t * t;
    }
    return s;
  };
  int bad = 0, near_ties = 0;
  auto fail = [&](const char* what, int64_t r) {
    if (bad++ < 5) std::printf("  row %ld: %s (index %ld, dist %g)\n", long(r), what, long(idx[r]), double(dist[r]));
  };
  for (int64_t r = 0; r < N; ++r) {
    bool finite = true;
    for (int64_t d = 0; d < D; ++d) finite = finite && std::isfinite(x[r * D + d]);
    if (!finite) {
      if (idx[r] != -1 || !std::isnan(dist[r])) fail("non-finite row not flagged", r);
      continue;
    }
    if (idx[r] < 0 || idx[r] >= K) {
      fail("index out of range", r);
      continue;
    }
    double best = std::numeric_limits<double>::infinity();
    int64_t best_k = -1;
    for (int k = 0; k < K; ++k)
      if (const double s = sq(r, k); s < best) best = s, best_k = k;
    const double tol = (sizeof(T) == 4 ? 1e-4 : 1e-10) * (1 + best + D);
    if (sq(r, idx[r]) - best > tol) fail("not the nearest code", r);
    if (std::fabs(dist[r] - best) > tol) fail("wrong distance", r);
    if (dup_codes && idx[r] >= K / 2) fail("a duplicate code chosen over its lower twin", r);
    near_ties += idx[r] != best_k;
  }
  std::printf("%s %s N=%ld K=%d D=%ld%s%s: %d wrong rows, %d other codes on near-ties\n",
              "4x4", sizeof(T) == 4 ? "float" : "double", long(N), K, long(D),
              dup_codes ? " duplicates" : "", nan_row ? " NaN row" : "", bad, near_ties);
  return bad;
}

int main() {
  int bad = 0;
  {
    bad += check<float>(1, 1, 1, 1);                    // smallest
    bad += check<float>(5, 3, 1, 2);                    // D < one staged slice
    bad += check<float>(9, 7, 3, 3);
    bad += check<float>(130, 129, 9, 4);                // just past one row block and one code tile
    bad += check<float>(300, 1025, 8, 5);               // many code tiles, the last with one code
    bad += check<float>(257, 200, 64, 6, false, true);  // NaN row
    bad += check<float>(128, 256, 17, 7, true);         // ties across code tiles
    bad += check<float>(200, 37, 40, 8);
  }
  bad += check<double>(65, 65, 17, 9);            // float64: one past a row block, a code tile, a slice
  bad += check<double>(100, 130, 33, 10, true);   // ties across code tiles
  bad += check<double>(70, 20, 5, 11, false, true);
  return bad ? 1 : 0;
}
