// CPU nearest-codeword search (the nearest code, or the k nearest) without an N x K buffer.
//
// The codebook is repacked once into blocks of kLanes codes laid out [D][kLanes] (codes padded
// with +inf norms), so the inner loop is a broadcast-FMA over a vector of kLanes dot products
// for kRows rows at a time: no horizontal reductions. Rows are processed in tiles of kTileRows
// (parallel over tiles with at::parallel_for) and, inside a tile, every code block is swept
// while it sits in L1. ||c||^2 - 2 x.c is minimised (ties to the lowest index: strict <), and
// dist = max(||x||^2 + min, 0), exactly the addmm + argmin reference in float32 arithmetic. The
// top-k op runs the same sweep with a sorted list of the k smallest values per row.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "nearest_code.h"
#include "sorted_insert.h"

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

// The codebook repacked into blocks of lanes<T>() codes laid out [D][lanes] (see the file comment).
template <typename T>
struct PackedCodebook {
  std::vector<T> data;    // [n_blocks][D][L]
  std::vector<T> norms;   // [n_blocks * L]: ||c||^2, +inf for the padding codes
  int64_t n_blocks = 0;
  int64_t first_nonfinite = 0;  // the first code with a non-finite norm, K when none
};

template <typename T>
PackedCodebook<T> pack_codebook(const T* cb, int64_t K, int64_t D) {
  constexpr int64_t L = lanes<T>();
  PackedCodebook<T> p;
  p.n_blocks = (K + L - 1) / L;
  p.data.assign(p.n_blocks * D * L, T(0));
  p.norms.assign(p.n_blocks * L, std::numeric_limits<T>::infinity());
  p.first_nonfinite = K;
  for (int64_t k = 0; k < K; ++k) {
    const int64_t b = k / L, j = k % L;
    T s = 0;
    for (int64_t d = 0; d < D; ++d) {
      const T v = cb[k * D + d];
      p.data[(b * D + d) * L + j] = v;
      s += v * v;
    }
    p.norms[k] = s;
    if (!std::isfinite(s) && p.first_nonfinite == K) p.first_nonfinite = k;
  }
  return p;
}

// Sweeps every code block past tiles of kTileRows rows (parallel over tiles). A Selector (one per
// worker, from make_selector()) keeps each tile row's best codes: begin(rows), then
// push(row_in_tile, first_code, norms, dots) for each block of lanes<T>() codes (in increasing index
// order; the value of code first_code + j is norms[j] - 2 dots[j] = ||c||^2 - 2 x.c), then write(row_in_tile, row, ||x_row||^2), which stores the
// row's outputs and says whether they are finite. Returns the first non-finite row, N if none.
template <typename T, typename MakeSelector>
int64_t sweep(const T* x, const PackedCodebook<T>& p, int64_t N, int64_t D, MakeSelector make_selector) {
  constexpr int64_t L = lanes<T>();
  const int64_t n_tiles = (N + kTileRows - 1) / kTileRows;
  std::vector<int64_t> bad(std::max<int64_t>(n_tiles, 1), N);
  at::parallel_for(0, n_tiles, 1, [&](int64_t t0, int64_t t1) {
    auto sel = make_selector();
    T dots[kRows * L];
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = t * kTileRows;
      const int64_t rows = std::min(kTileRows, N - r0);
      sel.begin(rows);
      for (int64_t b = 0; b < p.n_blocks; ++b) {
        const T* block = p.data.data() + b * D * L;
        const T* norms = p.norms.data() + b * L;
        for (int64_t r = 0; r < rows; r += kRows) {
          const T* xr[kRows];
          for (int64_t i = 0; i < kRows; ++i) {
            xr[i] = x + (r0 + std::min(r + i, rows - 1)) * D;  // tail rows repeat the last row
          }
          micro_kernel<T>(xr[0], xr[1], xr[2], xr[3], block, D, dots);
          const int64_t ni = std::min(kRows, rows - r);
          for (int64_t i = 0; i < ni; ++i) sel.push(r + i, b * L, norms, dots + i * L);
        }
      }
      for (int64_t r = 0; r < rows; ++r) {
        const T* xr = x + (r0 + r) * D;
        T s = 0;
        for (int64_t d = 0; d < D; ++d) s += xr[d] * xr[d];
        if (!sel.write(r, r0 + r, s)) bad[t] = std::min(bad[t], r0 + r);
      }
    }
  });
  int64_t first = N;
  for (int64_t v : bad) first = std::min(first, v);
  return first;
}

// The nearest code of each row: strict < over codes in increasing order, so ties go to the lowest index.
template <typename T>
struct ArgMin {
  int64_t* indices;
  T* dist;
  T best[kTileRows];
  int64_t arg[kTileRows];

  void begin(int64_t rows) {
    for (int64_t r = 0; r < rows; ++r) {
      best[r] = std::numeric_limits<T>::infinity();
      arg[r] = 0;
    }
  }
  void push(int64_t r, int64_t first_code, const T* norms, const T* dots) {
    T bv = best[r];
    int64_t bi = arg[r];
    for (int64_t j = 0; j < lanes<T>(); ++j) {
      const T v = norms[j] - T(2) * dots[j];
      if (v < bv) {
        bv = v;
        bi = first_code + j;
      }
    }
    best[r] = bv;
    arg[r] = bi;
  }
  bool write(int64_t r, int64_t row, T norm) {
    indices[row] = arg[r];
    dist[row] = std::max(norm + best[r], T(0));
    return std::isfinite(norm) && std::isfinite(best[r]);
  }
};

// The k nearest codes of each row, nearest first: a sorted list per row, insertion after every
// equal value (codes arrive in increasing order, so ties go to the lowest index). The padding
// codes' +inf never enter: k <= K real codes fill every list.
template <typename T>
struct TopK {
  int64_t k;
  int64_t* indices;  // [N, k]
  T* dist;           // [N, k]
  std::vector<T> best;       // [kTileRows, k]
  std::vector<int64_t> arg;  // [kTileRows, k]

  TopK(int64_t k_, int64_t* indices_, T* dist_)
      : k(k_), indices(indices_), dist(dist_), best(kTileRows * k_), arg(kTileRows * k_) {}

  void begin(int64_t rows) {
    std::fill(best.begin(), best.begin() + rows * k, std::numeric_limits<T>::infinity());
    std::fill(arg.begin(), arg.begin() + rows * k, int64_t(0));
  }
  void push(int64_t r, int64_t first_code, const T* norms, const T* dots) {
    T* bv = best.data() + r * k;
    int64_t* bi = arg.data() + r * k;
    for (int64_t j = 0; j < lanes<T>(); ++j) sorted_insert(bv, bi, k, norms[j] - T(2) * dots[j], first_code + j);
  }
  bool write(int64_t r, int64_t row, T norm) {
    const T* bv = best.data() + r * k;
    const int64_t* bi = arg.data() + r * k;
    for (int64_t i = 0; i < k; ++i) {
      indices[row * k + i] = bi[i];
      dist[row * k + i] = std::max(norm + bv[i], T(0));
    }
    return std::isfinite(norm) && std::isfinite(bv[k - 1]);
  }
};

// Checks, float32 work copies of half inputs, the kernel, the errors: shared by both ops. `run`
// gets (x, packed codebook, dist in the work dtype) and returns the first non-finite row.
template <typename Run>
void run_search(const at::Tensor& x_in, const at::Tensor& codebook_in, const at::Tensor& dist, Run run) {
  const int64_t N = x_in.size(0), K = codebook_in.size(0), D = x_in.size(1);
  if (N == 0) return;
  // Half inputs are searched in float32 (float32 accumulation), the result cast back.
  const auto work = acc_dtype(x_in.scalar_type());
  auto x = x_in.to(work).contiguous();
  auto cb = codebook_in.to(work).contiguous();
  auto dist_work = work == x_in.scalar_type() ? dist : at::empty(dist.sizes(), x.options());
  int64_t bad = N, bad_code = K;
  AT_DISPATCH_FLOATING_TYPES(work, "nearest_code_cpu", [&] {
    const auto packed = pack_codebook<scalar_t>(cb.data_ptr<scalar_t>(), K, D);
    bad_code = packed.first_nonfinite;
    if (bad_code == K) bad = run(x.data_ptr<scalar_t>(), packed, dist_work.data_ptr<scalar_t>());
  });
  TORCH_CHECK_VALUE(bad_code == K, "codebook contains NaN or inf (first at code ", bad_code, ")");
  TORCH_CHECK_VALUE(bad == N, "x contains NaN or inf (first at row ", bad,
                    "): the nearest codeword of a non-finite vector is undefined");
  if (!dist_work.is_same(dist)) dist.copy_(dist_work);
}

std::tuple<at::Tensor, at::Tensor> nearest_code_cpu(const at::Tensor& x_in,
                                                     const at::Tensor& codebook_in) {
  check_nearest_code_inputs(x_in, codebook_in);
  const int64_t N = x_in.size(0), D = x_in.size(1);
  auto indices = at::empty({N}, x_in.options().dtype(at::kLong));
  auto dist = at::empty({N}, x_in.options());
  int64_t* idx = indices.data_ptr<int64_t>();
  run_search(x_in, codebook_in, dist, [&](const auto* x, const auto& packed, auto* d) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(x)>>;
    return sweep<T>(x, packed, N, D, [&] { return ArgMin<T>{idx, d}; });
  });
  return {indices, dist};
}

std::tuple<at::Tensor, at::Tensor> nearest_code_topk_cpu(const at::Tensor& x_in, const at::Tensor& codebook_in,
                                                          int64_t k) {
  check_nearest_code_inputs(x_in, codebook_in);
  check_topk(codebook_in, k);
  const int64_t N = x_in.size(0), D = x_in.size(1);
  auto indices = at::empty({N, k}, x_in.options().dtype(at::kLong));
  auto dist = at::empty({N, k}, x_in.options());
  int64_t* idx = indices.data_ptr<int64_t>();
  run_search(x_in, codebook_in, dist, [&](const auto* x, const auto& packed, auto* d) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(x)>>;
    return sweep<T>(x, packed, N, D, [&] { return TopK<T>(k, idx, d); });
  });
  return {indices, dist};
}

}  // namespace

TORCH_LIBRARY_IMPL(tsvq, CPU, m) {
  m.impl("nearest_code", &nearest_code_cpu);
  m.impl("nearest_code_topk", &nearest_code_topk_cpu);
}

}  // namespace tsvq
