// CPU per-code counts and sums. Deterministic: the columns of x are split into blocks of kCols,
// each block owned by one thread that walks the rows in order, so every sum is accumulated in
// the same order whatever the thread count. Out-of-range indices raise (naming the row).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "code_stats.h"

namespace tsvq {
namespace {

constexpr int64_t kCols = 16;

template <typename scalar_t, typename acc_t>
void code_stats_kernel(const scalar_t* x, const int64_t* idx, int64_t N, int64_t D, acc_t* counts,
                       acc_t* sums) {
  for (int64_t n = 0; n < N; ++n) counts[idx[n]] += acc_t(1);
  const int64_t n_col_blocks = (D + kCols - 1) / kCols;
  at::parallel_for(0, n_col_blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t c0 = b * kCols, c1 = std::min(D, c0 + kCols);
      for (int64_t n = 0; n < N; ++n) {
        acc_t* s = sums + idx[n] * D;
        const scalar_t* xr = x + n * D;
        for (int64_t c = c0; c < c1; ++c) s[c] += static_cast<acc_t>(xr[c]);
      }
    }
  });
}

}  // namespace

void code_stats_cpu_into(const at::Tensor& x_in, const at::Tensor& indices_in, int64_t K,
                         at::Tensor& counts, at::Tensor& sums) {
  const int64_t N = x_in.size(0), D = x_in.size(1);
  if (N == 0) return;
  auto x = x_in.contiguous();
  auto indices = indices_in.contiguous();
  const int64_t* idx = indices.data_ptr<int64_t>();
  for (int64_t n = 0; n < N; ++n) {
    TORCH_CHECK_INDEX(idx[n] >= 0 && idx[n] < K, "indices[", n, "] = ", idx[n],
                      " is out of range for a codebook of K = ", K, " codes");
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "code_stats_cpu", [&] {
    using acc_t = typename acc<scalar_t>::type;
    code_stats_kernel<scalar_t, acc_t>(x.data_ptr<scalar_t>(), idx, N, D,
                                       counts.data_ptr<acc_t>(), sums.data_ptr<acc_t>());
  });
}

std::tuple<at::Tensor, at::Tensor> code_stats_cpu(const at::Tensor& x, const at::Tensor& indices,
                                                  int64_t K) {
  check_code_stats_inputs(x, indices, K);
  const auto acc_type = acc_dtype(x.scalar_type());
  auto counts = at::zeros({K}, x.options().dtype(acc_type));
  auto sums = at::zeros({K, x.size(1)}, x.options().dtype(acc_type));
  code_stats_cpu_into(x, indices, K, counts, sums);
  return {counts, sums};
}

TORCH_LIBRARY_IMPL(tsvq, CPU, m) { m.impl("code_stats", &code_stats_cpu); }

}  // namespace tsvq
