// Input checks shared by the tsvq kernels. Every message names the argument and what was
// expected ("codebook must be Tensor[K, D] with D == x.size(1), got [32, 16]"), never a crash
// inside a kernel. TORCH_CHECK_TYPE raises TypeError, TORCH_CHECK_VALUE ValueError.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

namespace tsvq {

inline bool is_float_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

inline void check_float(const at::Tensor& t, const char* name) {
  TORCH_CHECK_TYPE(is_float_dtype(t.scalar_type()), name,
                   " must be float32, float64, float16 or bfloat16, got ", t.scalar_type());
}

inline void check_rank(const at::Tensor& t, int64_t rank, const char* name, const char* shape) {
  TORCH_CHECK_VALUE(t.dim() == rank, name, " must be ", shape, ", got shape ", t.sizes());
}

inline void check_same_device(const at::Tensor& a, const char* an, const at::Tensor& b,
                              const char* bn) {
  TORCH_CHECK_VALUE(a.device() == b.device(), an, " and ", bn,
                    " must be on the same device, got ", a.device(), " and ", b.device());
}

// Float type used to accumulate a dot product or a sum: double for double, float otherwise.
template <typename T>
struct acc {
  using type = float;
};
template <>
struct acc<double> {
  using type = double;
};

inline at::ScalarType acc_dtype(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

}  // namespace tsvq
