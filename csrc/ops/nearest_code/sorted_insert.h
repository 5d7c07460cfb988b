// The k-nearest list of one row, shared by the CPU kernel and the CUDA kernel (ATen-free, so the
// CUDA emulation in tests/cuda_emulation compiles it too).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define TSVQ_HOST_DEVICE __host__ __device__
#else
#define TSVQ_HOST_DEVICE
#endif

namespace tsvq {

// best[0..k) ascending with their codes in arg: insert (v, code) if v < best[k - 1], after every
// equal value, so that with codes offered in increasing order ties keep the lower code. A NaN v
// never enters.
template <typename T, typename I>
TSVQ_HOST_DEVICE inline void sorted_insert(T* best, I* arg, int64_t k, T v, I code) {
  if (!(v < best[k - 1])) return;
  int64_t pos = k - 1;
  while (pos > 0 && v < best[pos - 1]) {
    best[pos] = best[pos - 1];
    arg[pos] = arg[pos - 1];
    --pos;
  }
  best[pos] = v;
  arg[pos] = code;
}

}  // namespace tsvq
