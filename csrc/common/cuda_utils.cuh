// Small CUDA helpers shared by the tsvq kernels.
#pragma once

#include <c10/cuda/CUDAException.h>
#include <cstdint>

namespace tsvq {

__host__ __device__ inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Lexicographic (value, index) minimum: smaller value wins, ties go to the lower index.
template <typename T>
__device__ inline void argmin_combine(T& v, int64_t& i, T ov, int64_t oi) {
  if (ov < v || (ov == v && oi < i)) {
    v = ov;
    i = oi;
  }
}

}  // namespace tsvq
