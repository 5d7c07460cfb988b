// Driver: the CUDA k-nearest-codes kernel, csrc/ops/nearest_code/nearest_code_topk.cuh (float32
// and float64), run through emu.h against a brute-force sort in double. Exit status 1 (with the
// first failures printed) on any wrong row.
#include "emu.h"
#include "../../csrc/ops/nearest_code/nearest_code_topk.cuh"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <numeric>
#include <random>

// Random x [N, D] and codebook [K, D]. dup_codes: codes K/2.. repeat codes 0.. (a twin pair must
// come out lower index first). nan_row: row 3 holds a NaN (indices -1, dist NaN expected).
template <typename T>
int check(int64_t N, int K, int64_t D, int k, unsigned seed, bool dup_codes = false, bool nan_row = false) {
  std::mt19937 gen(seed);
  std::normal_distribution<T> normal;
  std::vector<T> x(N * D), cb(int64_t(K) * D), cnorm(K);
  for (auto& v : x) v = normal(gen);
  for (auto& v : cb) v = normal(gen);
  if (dup_codes)
    for (int c = K / 2; c < K; ++c)
      for (int64_t d = 0; d < D; ++d) cb[c * D + d] = cb[(c - K / 2) * D + d];
  if (nan_row && N > 3) x[3 * D] = std::numeric_limits<T>::quiet_NaN();
  for (int c = 0; c < K; ++c) {
    T s = 0;
    for (int64_t d = 0; d < D; ++d) s += cb[c * D + d] * cb[c * D + d];
    cnorm[c] = s;
  }
  std::vector<int64_t> idx(N * k, -7);
  std::vector<T> dist(N * k, T(-7));
  launch(static_cast<unsigned>((N + tsvq::tile4::kBM - 1) / tsvq::tile4::kBM), tsvq::tile4::kThreads, [&] {
    tsvq::topk::nearest_code_topk_kernel<T, T>(x.data(), cb.data(), cnorm.data(), N, K, D, k, idx.data(),
                                               dist.data());
  });
  int bad = 0;
  auto fail = [&](const char* what, int64_t r, int i) {
    if (bad++ < 5)
      std::printf("  row %ld rank %d: %s (index %ld, dist %g)\n", long(r), i, what, long(idx[r * k + i]),
                  double(dist[r * k + i]));
  };
  std::vector<double> true_d(K);
  std::vector<int> order(K);
  for (int64_t r = 0; r < N; ++r) {
    if (nan_row && r == 3) {
      for (int i = 0; i < k; ++i)
        if (idx[r * k + i] != -1 || !std::isnan(dist[r * k + i])) fail("non-finite row not flagged", r, i);
      continue;
    }
    for (int c = 0; c < K; ++c) {
      double s = 0;
      for (int64_t d = 0; d < D; ++d) s += (double(x[r * D + d]) - cb[c * D + d]) * (double(x[r * D + d]) - cb[c * D + d]);
      true_d[c] = s;
    }
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return true_d[a] < true_d[b]; });
    const double tol = (sizeof(T) == 4 ? 1e-4 : 1e-10) * (1 + true_d[order[K - 1]] + D);
    for (int i = 0; i < k; ++i) {
      const int64_t c = idx[r * k + i];
      if (c < 0 || c >= K) {
        fail("index out of range", r, i);
        continue;
      }
      if (std::fabs(true_d[c] - true_d[order[i]]) > tol) fail("not the i-th nearest code", r, i);
      if (std::fabs(dist[r * k + i] - true_d[order[i]]) > tol) fail("wrong distance", r, i);
      for (int j = 0; j < i; ++j)
        if (idx[r * k + j] == c) fail("a code listed twice", r, i);
      // a twin pair (equal distances): the lower index first
      for (int j = i + 1; dup_codes && c >= K / 2 && j < k; ++j)
        if (idx[r * k + j] == c - K / 2) fail("twins out of order", r, i);
    }
  }
  std::printf("topk %s N=%ld K=%d D=%ld k=%d%s%s: %d wrong rows\n", sizeof(T) == 4 ? "float" : "double", long(N), K,
              long(D), k, dup_codes ? " duplicates" : "", nan_row ? " NaN row" : "", bad);
  return bad;
}

int main() {
  int bad = 0;
  bad += check<float>(1, 1, 1, 1, 1);                  // smallest
  bad += check<float>(5, 3, 1, 3, 2);                  // k = K
  bad += check<float>(130, 129, 9, 4, 3);              // one past a row block and a code tile
  bad += check<float>(70, 200, 64, 8, 4, false, true); // NaN row
  bad += check<float>(64, 256, 17, 16, 5, true);       // twins across code tiles
  bad += check<float>(65, 70, 5, tsvq::topk::kMaxK, 6);
  bad += check<double>(65, 65, 17, 5, 7);
  bad += check<double>(100, 130, 33, 6, 8, true);
  return bad ? 1 : 0;
}
