// Driver: csrc/ops/barlow_twins_loss/barlow_twins_kernels.cuh (the standardisation, finishing and
// backward kernels of the Barlow Twins op) run through emu.h against a direct evaluation in
// double: D not a multiple of the 32-column strip, N below and above the 8 row groups, inputs in
// row-major and column-major strides, both accumulation types. Exit status 1 on any wrong output.
#include "emu.h"
#include "../../csrc/ops/barlow_twins_loss/barlow_twins_kernels.cuh"

#include <cstdio>
#include <random>

using namespace tsvq::bt;

template <typename T>
int check(int64_t N, int64_t D, bool column_major, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal;
  std::vector<T> z1(N * D), z2(N * D), p(2 * N * D);
  // z[n, d] at n * sn + d * sd
  const int64_t sn = column_major ? 1 : D, sd = column_major ? N : 1;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) {
      const double x = normal(gen) * (1 + d % 3) + d % 5;  // columns with their own mean and scale
      z1[n * sn + d * sd] = T(x);
      z2[n * sn + d * sd] = T(0.7 * x + 0.5 * normal(gen));
    }
  for (auto& v : p) v = T(normal(gen));
  const double eps = 1e-5, c0 = 0.3, c1 = -0.2, c2 = 0.05, coef = 0.7, k = 0.01, w1 = 0.4, w0 = -0.3, g0 = 1.5;
  const double tol = sizeof(T) == 4 ? 2e-4 : 1e-10;

  // direct evaluation
  std::vector<double> A(N * 2 * D), is(2 * D), r(D, 0.0), dz(2 * N * D);
  double per_dim = 0;
  for (int v = 0; v < 2; ++v)
    for (int64_t d = 0; d < D; ++d) {
      const auto& z = v ? z2 : z1;
      double m = 0, q = 0;
      for (int64_t n = 0; n < N; ++n) m += double(z[n * sn + d * sd]);
      m /= N;
      for (int64_t n = 0; n < N; ++n) q += (double(z[n * sn + d * sd]) - m) * (double(z[n * sn + d * sd]) - m);
      is[v * D + d] = 1 / std::sqrt(q / N + eps);
      for (int64_t n = 0; n < N; ++n) A[n * 2 * D + v * D + d] = (double(z[n * sn + d * sd]) - m) * is[v * D + d];
    }
  for (int64_t d = 0; d < D; ++d) {
    for (int64_t n = 0; n < N; ++n) r[d] += A[n * 2 * D + d] * A[n * 2 * D + D + d];
    per_dim += c0 + c1 * r[d] + c2 * r[d] * r[d];
  }
  for (int v = 0; v < 2; ++v)
    for (int64_t d = 0; d < D; ++d) {
      std::vector<double> g(N);
      double mg = 0, mga = 0;
      for (int64_t n = 0; n < N; ++n) {
        g[n] = g0 * (k * double(p[v * N * D + n * D + d]) + A[n * 2 * D + (1 - v) * D + d] * (w1 * r[d] + w0));
        mg += g[n] / N;
        mga += g[n] * A[n * 2 * D + v * D + d] / N;
      }
      for (int64_t n = 0; n < N; ++n)
        dz[v * N * D + n * D + d] = is[v * D + d] * (g[n] - mg - A[n * 2 * D + v * D + d] * mga);
    }
  const double frob = 2.5, loss = per_dim + coef * frob;

  // kernels
  const unsigned blocks = static_cast<unsigned>((D + kCols - 1) / kCols);
  std::vector<T> a(N * 2 * D, T(-7)), inv(2 * D, T(-7)), rr(D, T(-7)), partial(blocks, T(-7)), dzk(2 * N * D, T(-7));
  launch(blocks, kThreads, [&] {
    standardize_kernel<T, T>(z1.data(), z2.data(), N, D, sn, sd, sn, sd, T(eps), T(c0), T(c1), T(c2), a.data(),
                             inv.data(), rr.data(), partial.data());
  });
  const T frob_t = T(frob), g_t = T(g0);
  T loss_k = T(-7);
  launch(1, kFinishThreads, [&] { finish_kernel<T, T>(partial.data(), blocks, &frob_t, T(coef), &loss_k); });
  // the backward from the direct A, invstd, r (so that its check does not depend on the forward's)
  std::vector<T> At(A.begin(), A.end()), ist(is.begin(), is.end()), rt(r.begin(), r.end());
  launch(blocks, kThreads, [&] {
    standardize_backward_kernel<T, T>(&g_t, At.data(), ist.data(), rt.data(), p.data(), N, D, T(k), T(w1), T(w0),
                                      dzk.data());
  });

  int bad = 0;
  auto cmp = [&](const char* what, int64_t i, double got, double want, double scale) {
    if (!(std::fabs(got - want) <= tol * scale) && bad++ < 5)
      std::printf("  %s[%ld]: %.10g, want %.10g\n", what, long(i), got, want);
  };
  for (int64_t i = 0; i < N * 2 * D; ++i) cmp("a", i, a[i], A[i], 1 + std::fabs(A[i]));
  for (int64_t i = 0; i < 2 * D; ++i) cmp("invstd", i, inv[i], is[i], std::fabs(is[i]));
  for (int64_t i = 0; i < D; ++i) cmp("r", i, rr[i], r[i], N);
  cmp("loss", 0, loss_k, loss, 1 + std::fabs(loss) + D);
  double dz_scale = 0;
  for (double v : dz) dz_scale = std::max(dz_scale, std::fabs(v));
  for (int64_t i = 0; i < 2 * N * D; ++i) cmp("dz", i, dzk[i], dz[i], dz_scale * N);
  std::printf("%s N=%ld D=%ld %s: %d wrong outputs\n", sizeof(T) == 4 ? "float" : "double", long(N), long(D),
              column_major ? "column-major" : "row-major", bad);
  return bad;
}

int main() {
  int bad = 0;
  const int64_t shapes[][2] = {{2, 5}, {7, 40}, {37, 70}, {300, 7}, {64, 33}, {9, 64}};
  unsigned seed = 1;
  for (const auto& s : shapes)
    for (bool cm : {false, true}) {
      bad += check<float>(s[0], s[1], cm, seed++);
      bad += check<double>(s[0], s[1], cm, seed++);
    }
  return bad ? 1 : 0;
}
