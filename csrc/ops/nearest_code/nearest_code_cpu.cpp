// CPU nearest-codeword search: squared-L2 argmin without an N x K buffer.
//
// The codebook is repacked once into blocks of kLanes codes laid out [D][kLanes] (codes padded
// with +inf norms), so the inner loop is a broadcast-FMA over a vector of kLanes dot products
// for kRows rows at a time: no horizontal reductions. Rows are processed in tiles of kTileRows
// (parallel over tiles with at::parallel_for) and, inside a tile, every code block is swept
// while it sits in L1. ||c||^2 - 2 x.c is minimised (ties to the lowest index: strict <), and
// dist = max(||x||^2 + min, 0), exactly the addmm + argmin reference in float32 arithmetic.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <vector>

#include "nearest_code.h"

namespace tsvq {
namespace {

constexpr int64_t kRows = 4;        // rows per micro-kernel call
constexpr int64_t kTileRows = 64;   // rows per parallel work item

template <typename T>
constexpr int64_t lanes() {
  return 64 / sizeof(T);  // one 512-bit vector: 16 floats or 8 doubles
}

// Micro-kernel: dot[r][j] = sum_d x[r][d] * cb[d][j] for kRows rows and lanes<T>() codes.
// target_clones compiles it for AVX-512, AVX2+FMA and baseline x86-64 and picks at load time.
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(_M_X64))
#define TSVQ_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TSVQ_MULTIVERSION
#endif

template <typename T>
TSVQ_MULTIVERSION void micro_kernel(const T* __restrict x0, const T* __restrict x1,
                                    const T* __restrict x2, const T* __restrict x3,
                                    const T* __restrict block, int64_t D, T* __restrict out) {
  constexpr int64_t L = lanes<T>();
  T a0[L] = {}, a1[L] = {}, a2[L] = {}, a3[L] = {};
  for (int64_t d = 0; d < D; ++d) {
    const T* c = block + d * L;
    const T v0 = x0[d], v1 = x1[d], v2 = x2[d], v3 = x3[d];
#pragma omp simd
    for (int64_t j = 0; j < L; ++j) {
      a0[j] += v0 * c[j];
      a1[j] += v1 * c[j];
      a2[j] += v2 * c[j];
      a3[j] += v3 * c[j];
    }
  }
  for (int64_t j = 0; j < L; ++j) {
    out[j] = a0[j];
    out[L + j] = a1[j];
    out[2 * L + j] = a2[j];
    out[3 * L + j] = a3[j];
  }
}

template <typename T>
void nearest_code_kernel(const T* x, const T* cb, int64_t N, int64_t K, int64_t D,
                         int64_t* indices, T* dist, int64_t* first_nonfinite,
                         int64_t* first_nonfinite_code) {
  constexpr int64_t L = lanes<T>();
  const int64_t n_blocks = (K + L - 1) / L;
  const T inf = std::numeric_limits<T>::infinity();
  // Repack: packed[b][d][j] = cb[b*L + j][d]; norms of padding codes are +inf.
  std::vector<T> packed(n_blocks * D * L, T(0));
  std::vector<T> cnorm(n_blocks * L, inf);
  for (int64_t k = 0; k < K; ++k) {
    const int64_t b = k / L, j = k % L;
    T s = 0;
    for (int64_t d = 0; d < D; ++d) {
      const T v = cb[k * D + d];
      packed[(b * D + d) * L + j] = v;
      s += v * v;
    }
    cnorm[k] = s;
    if (!std::isfinite(s) && *first_nonfinite_code == K) *first_nonfinite_code = k;
  }
  if (*first_nonfinite_code != K) return;
  const int64_t n_tiles = (N + kTileRows - 1) / kTileRows;
  std::vector<int64_t> bad(std::max<int64_t>(n_tiles, 1), N);
  at::parallel_for(0, n_tiles, 1, [&](int64_t t0, int64_t t1) {
    T best[kTileRows];
    int64_t arg[kTileRows];
    T dots[kRows * L];
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = t * kTileRows;
      const int64_t rows = std::min(kTileRows, N - r0);
      for (int64_t r = 0; r < rows; ++r) {
        best[r] = inf;
        arg[r] = 0;
      }
      for (int64_t b = 0; b < n_blocks; ++b) {
        const T* block = packed.data() + b * D * L;
        const T* norms = cnorm.data() + b * L;
        for (int64_t r = 0; r < rows; r += kRows) {
          const T* xr[kRows];
          for (int64_t i = 0; i < kRows; ++i) {
            xr[i] = x + (r0 + std::min(r + i, rows - 1)) * D;  // tail rows repeat the last row
          }
          micro_kernel<T>(xr[0], xr[1], xr[2], xr[3], block, D, dots);
          const int64_t ni = std::min(kRows, rows - r);
          for (int64_t i = 0; i < ni; ++i) {
            T bv = best[r + i];
            int64_t bi = arg[r + i];
            for (int64_t j = 0; j < L; ++j) {
              const T v = norms[j] - T(2) * dots[i * L + j];
              if (v < bv) {
                bv = v;
                bi = b * L + j;
              }
            }
            best[r + i] = bv;
            arg[r + i] = bi;
          }
        }
      }
      for (int64_t r = 0; r < rows; ++r) {
        const T* xr = x + (r0 + r) * D;
        T s = 0;
        for (int64_t d = 0; d < D; ++d) s += xr[d] * xr[d];
        if (!std::isfinite(s) || !std::isfinite(best[r])) {
          bad[t] = std::min(bad[t], r0 + r);
        }
        indices[r0 + r] = arg[r];
        dist[r0 + r] = std::max(s + best[r], T(0));
      }
    }
  });
  *first_nonfinite = N;
  for (int64_t v : bad) *first_nonfinite = std::min(*first_nonfinite, v);
}

std::tuple<at::Tensor, at::Tensor> nearest_code_cpu(const at::Tensor& x_in,
                                                     const at::Tensor& codebook_in) {
  check_nearest_code_inputs(x_in, codebook_in);
  const int64_t N = x_in.size(0), K = codebook_in.size(0), D = x_in.size(1);
  auto indices = at::empty({N}, x_in.options().dtype(at::kLong));
  auto dist = at::empty({N}, x_in.options());
  if (N == 0) return {indices, dist};
  // Half inputs are searched in float32 (float32 accumulation), the result cast back.
  const auto work = acc_dtype(x_in.scalar_type());
  auto x = x_in.to(work).contiguous();
  auto cb = codebook_in.to(work).contiguous();
  auto dist_work = work == x_in.scalar_type() ? dist : at::empty({N}, x.options());
  int64_t bad = N, bad_code = K;
  AT_DISPATCH_FLOATING_TYPES(work, "nearest_code_cpu", [&] {
    nearest_code_kernel<scalar_t>(x.data_ptr<scalar_t>(), cb.data_ptr<scalar_t>(), N, K, D,
                                  indices.data_ptr<int64_t>(), dist_work.data_ptr<scalar_t>(),
                                  &bad, &bad_code);
  });
  TORCH_CHECK_VALUE(bad_code == K, "codebook contains NaN or inf (first at code ", bad_code, ")");
  TORCH_CHECK_VALUE(bad == N, "x contains NaN or inf (first at row ", bad,
                    "): the nearest codeword of a non-finite vector is undefined");
  if (!dist_work.is_same(dist)) dist.copy_(dist_work);
  return {indices, dist};
}

}  // namespace

TORCH_LIBRARY_IMPL(tsvq, CPU, m) { m.impl("nearest_code", &nearest_code_cpu); }

}  // namespace tsvq
