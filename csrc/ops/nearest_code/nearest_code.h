// Checks shared by the CPU and CUDA nearest-codeword kernels.
#pragma once

#include "../../common/checks.h"

namespace tsvq {

inline void check_nearest_code_inputs(const at::Tensor& x, const at::Tensor& codebook) {
  check_rank(x, 2, "x", "Tensor[N, D]");
  check_rank(codebook, 2, "codebook", "Tensor[K, D]");
  check_float(x, "x");
  check_float(codebook, "codebook");
  TORCH_CHECK_TYPE(x.scalar_type() == codebook.scalar_type(),
                   "x and codebook must have the same dtype, got ", x.scalar_type(), " and ",
                   codebook.scalar_type());
  check_same_device(x, "x", codebook, "codebook");
  TORCH_CHECK_VALUE(codebook.size(0) >= 1, "codebook must have K >= 1 codes, got shape ",
                    codebook.sizes());
  TORCH_CHECK_VALUE(codebook.size(1) == x.size(1),
                    "codebook must be Tensor[K, D] with D == x.size(1) == ", x.size(1),
                    ", got ", codebook.sizes());
}

inline void check_topk(const at::Tensor& codebook, int64_t k) {
  TORCH_CHECK_VALUE(k >= 1 && k <= codebook.size(0), "k must be in [1, K = ", codebook.size(0),
                    "] (the codebook's size), got ", k);
}

}  // namespace tsvq
