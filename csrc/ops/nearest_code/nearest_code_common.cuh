// Device helpers of the nearest-codeword kernel (nearest_code_4x4.cuh): the (min, argmin)
// combination and reduction, and the row epilogue.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

namespace tsvq {

// Lexicographic (value, index) minimum: smaller value wins, ties go to the lower index.
template <typename T>
__device__ inline void argmin_combine(T& v, int64_t& i, T ov, int64_t oi) {
  if (ov < v || (ov == v && oi < i)) {
    v = ov;
    i = oi;
  }
}

// (value, index) minimum over the 16 lanes of a half-warp that share a row; every lane ends
// with the result.
template <typename T>
__device__ inline void half_warp_argmin(T& v, int64_t& i) {
#pragma unroll
  for (int off = 8; off > 0; off >>= 1) {
    const T ov = __shfl_xor_sync(0xffffffffu, v, off, 16);
    const int64_t oi = __shfl_xor_sync(0xffffffffu, i, off, 16);
    argmin_combine(v, i, ov, oi);
  }
}

// Row r's outputs from min_k ||c_k||^2 - 2 x.c_k (`best`, at code `arg`): ||x_r||^2 summed in
// acc_t, dist = max(||x_r||^2 + best, 0); index -1 and dist NaN when either is not finite.
template <typename scalar_t, typename acc_t>
__device__ inline void write_nearest(const scalar_t* __restrict__ x, int64_t r, int64_t D, acc_t best,
                                     int64_t arg, int64_t* __restrict__ indices, scalar_t* __restrict__ dist) {
  acc_t s = 0;
  for (int64_t d = 0; d < D; ++d) {
    const acc_t v = static_cast<acc_t>(x[r * D + d]);
    s = fma(v, v, s);
  }
  const bool ok = isfinite(s) && isfinite(best);
  indices[r] = ok ? arg : int64_t(-1);
  const acc_t dv = s + best;
  dist[r] = static_cast<scalar_t>(ok ? (dv > acc_t(0) ? dv : acc_t(0)) : std::numeric_limits<acc_t>::quiet_NaN());
}

}  // namespace tsvq
