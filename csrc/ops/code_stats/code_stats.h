// Checks and declarations shared by the code-statistics kernels and the EMA update.
#pragma once

#include <tuple>

#include "../../common/checks.h"

namespace tsvq {

inline void check_code_stats_inputs(const at::Tensor& x, const at::Tensor& indices, int64_t K) {
  check_rank(x, 2, "x", "Tensor[N, D]");
  check_float(x, "x");
  TORCH_CHECK_TYPE(indices.scalar_type() == at::kLong, "indices must be int64, got ",
                   indices.scalar_type());
  TORCH_CHECK_VALUE(indices.dim() == 1 && indices.size(0) == x.size(0),
                    "indices must be int64[N] with N == x.size(0) == ", x.size(0), ", got shape ",
                    indices.sizes());
  check_same_device(x, "x", indices, "indices");
  TORCH_CHECK_VALUE(K >= 1, "K (codebook size) must be >= 1, got ", K);
}

// Device kernels (code_stats_cpu.cpp / code_stats_cuda.cu), also used by ema_codebook_update_.
std::tuple<at::Tensor, at::Tensor> code_stats_cpu(const at::Tensor& x, const at::Tensor& indices,
                                                  int64_t K);
std::tuple<at::Tensor, at::Tensor> code_stats_cuda(const at::Tensor& x, const at::Tensor& indices,
                                                   int64_t K);
// The same into zeroed, contiguous counts[K] and sums[K, D] of x's accumulation dtype (inputs
// already checked; CUDA: device guard set): the EMA update's statistics, one buffer for both.
void code_stats_cpu_into(const at::Tensor& x, const at::Tensor& indices, int64_t K,
                         at::Tensor& counts, at::Tensor& sums);
void code_stats_cuda_into(const at::Tensor& x, const at::Tensor& indices, int64_t K,
                          at::Tensor& counts, at::Tensor& sums);

}  // namespace tsvq
