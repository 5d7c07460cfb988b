// CUDA per-code counts and sums, one pass over x, no one-hot matrix.
//
// Default: one thread per element of x, atomicAdd into counts/sums. Float atomics make the
// summation order (and so the last bits) vary between runs. Under
// torch.use_deterministic_algorithms(True) the rows are instead sorted by code (stable sort on
// the device) and one block per code sums its segment in row order: bitwise reproducible.
// Rows whose index is outside [0, K) (e.g. -1 from nearest_code on a non-finite row) are
// skipped; the kernel cannot raise without a host synchronisation.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../../common/cuda_utils.cuh"
#include "code_stats.h"

namespace tsvq {
namespace {

template <typename scalar_t, typename acc_t>
__global__ void code_stats_atomic_kernel(const scalar_t* __restrict__ x,
                                         const int64_t* __restrict__ idx, int64_t N, int64_t D,
                                         int64_t K, acc_t* __restrict__ counts,
                                         acc_t* __restrict__ sums) {
  const int64_t total = N * D;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = e / D, d = e % D;
    const int64_t k = idx[n];
    if (k < 0 || k >= K) continue;
    atomicAdd(sums + k * D + d, static_cast<acc_t>(x[e]));
    if (d == 0) atomicAdd(counts + k, acc_t(1));
  }
}

// One block per code; threads over D; rows of the code's segment visited in sorted order.
template <typename scalar_t, typename acc_t>
__global__ void code_stats_segment_kernel(const scalar_t* __restrict__ x,
                                          const int64_t* __restrict__ order,
                                          const int64_t* __restrict__ offsets, int64_t D,
                                          acc_t* __restrict__ counts, acc_t* __restrict__ sums) {
  const int64_t k = blockIdx.x;
  const int64_t begin = offsets[k], end = offsets[k + 1];
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    acc_t s = 0;
    for (int64_t j = begin; j < end; ++j) s += static_cast<acc_t>(x[order[j] * D + d]);
    sums[k * D + d] = s;
  }
  if (threadIdx.x == 0) counts[k] = static_cast<acc_t>(end - begin);
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> code_stats_cuda(const at::Tensor& x_in,
                                                   const at::Tensor& indices_in, int64_t K) {
  check_code_stats_inputs(x_in, indices_in, K);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const int64_t N = x_in.size(0), D = x_in.size(1);
  const auto acc_type = acc_dtype(x_in.scalar_type());
  auto counts = at::zeros({K}, x_in.options().dtype(acc_type));
  auto sums = at::zeros({K, D}, x_in.options().dtype(acc_type));
  if (N == 0 || D == 0) return {counts, sums};
  auto x = x_in.contiguous();
  auto indices = indices_in.contiguous();
  auto stream = c10::cuda::getCurrentCUDAStream();
  const bool deterministic = at::globalContext().deterministicAlgorithms();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "code_stats_cuda", [&] {
    using acc_t = typename acc<scalar_t>::type;
    if (!deterministic) {
      const int threads = 256;
      const int64_t blocks = std::min<int64_t>(ceil_div(N * D, threads), 65535 * 8);
      code_stats_atomic_kernel<scalar_t, acc_t><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(
          x.data_ptr<scalar_t>(), indices.data_ptr<int64_t>(), N, D, K, counts.data_ptr<acc_t>(),
          sums.data_ptr<acc_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    } else {
      // Out-of-range codes sort outside [offsets[0], offsets[K]) and are never visited.
      auto sorted = at::sort(indices, /*stable=*/true, /*dim=*/0, /*descending=*/false);
      auto keys = std::get<0>(sorted);
      auto order = std::get<1>(sorted).contiguous();
      auto bounds = at::arange(K + 1, indices.options());
      auto offsets = at::searchsorted(keys, bounds).contiguous();
      TORCH_CHECK(K <= std::numeric_limits<int32_t>::max(), "K too large: ", K);
      code_stats_segment_kernel<scalar_t, acc_t><<<static_cast<unsigned>(K), 128, 0, stream>>>(
          x.data_ptr<scalar_t>(), order.data_ptr<int64_t>(), offsets.data_ptr<int64_t>(), D,
          counts.data_ptr<acc_t>(), sums.data_ptr<acc_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return {counts, sums};
}

TORCH_LIBRARY_IMPL(tsvq, CUDA, m) { m.impl("code_stats", &code_stats_cuda); }

}  // namespace tsvq
