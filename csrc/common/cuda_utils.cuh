// Small CUDA helpers shared by the tsvq kernels.
#pragma once

#include <c10/cuda/CUDAException.h>
#include <cstdint>

namespace tsvq {

__host__ __device__ inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace tsvq
