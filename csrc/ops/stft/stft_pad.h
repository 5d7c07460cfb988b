// The centre-padding map of the STFT kernels, free of ATen so that kernel headers (and their CPU
// emulation, tests/cuda_emulation/) can include it.
//
// Padded coordinates: q in [0, L + 2 * pad_left) indexes the (virtual) centre-padded series;
// pad_source maps q to the source sample, or -1 for a zero. No padded copy is ever made.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define TSVQ_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define TSVQ_HOST_DEVICE inline
#endif

namespace tsvq {

// torch.nn.functional.pad modes accepted by torch.stft.
enum PadMode : int64_t { kPadConstant = 0, kPadReflect = 1, kPadReplicate = 2, kPadCircular = 3 };

TSVQ_HOST_DEVICE int64_t pad_source(int64_t q, int64_t pad_left, int64_t L, int64_t mode) {
  int64_t s = q - pad_left;
  if (s >= 0 && s < L) return s;
  switch (mode) {
    case kPadReflect:  // requires pad < L, checked by the caller
      return s < 0 ? -s : 2 * (L - 1) - s;
    case kPadReplicate:
      return s < 0 ? 0 : L - 1;
    case kPadCircular: {  // requires pad <= L
      s %= L;
      return s < 0 ? s + L : s;
    }
    default:
      return -1;
  }
}

}  // namespace tsvq
