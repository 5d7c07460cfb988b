// CUDA per-code counts and sums, one pass over x, no one-hot matrix (kernels in
// code_stats_kernels.cuh).
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
#include "code_stats_kernels.cuh"

namespace tsvq {

void code_stats_cuda_into(const at::Tensor& x_in, const at::Tensor& indices_in, int64_t K,
                          at::Tensor& counts, at::Tensor& sums) {
  const int64_t N = x_in.size(0), D = x_in.size(1);
  if (N == 0 || D == 0) return;
  auto x = x_in.contiguous();
  auto indices = indices_in.contiguous();
  auto stream = c10::cuda::getCurrentCUDAStream();
  const bool deterministic = at::globalContext().deterministicAlgorithms();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "code_stats_cuda", [&] {
    using acc_t = typename acc<scalar_t>::type;
    if (!deterministic) {
      const int threads = 256;
      const int64_t blocks = std::min<int64_t>(ceil_div(N * D, threads), 65535 * 8);
      stats::code_stats_atomic_kernel<scalar_t, acc_t><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(
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
      stats::code_stats_segment_kernel<scalar_t, acc_t><<<static_cast<unsigned>(K), 128, 0, stream>>>(
          x.data_ptr<scalar_t>(), order.data_ptr<int64_t>(), offsets.data_ptr<int64_t>(), D,
          counts.data_ptr<acc_t>(), sums.data_ptr<acc_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
}

std::tuple<at::Tensor, at::Tensor> code_stats_cuda(const at::Tensor& x, const at::Tensor& indices,
                                                   int64_t K) {
  check_code_stats_inputs(x, indices, K);
  const c10::cuda::CUDAGuard guard(x.device());
  const auto acc_type = acc_dtype(x.scalar_type());
  auto counts = at::zeros({K}, x.options().dtype(acc_type));
  auto sums = at::zeros({K, x.size(1)}, x.options().dtype(acc_type));
  code_stats_cuda_into(x, indices, K, counts, sums);
  return {counts, sums};
}

TORCH_LIBRARY_IMPL(tsvq, CUDA, m) { m.impl("code_stats", &code_stats_cuda); }

}  // namespace tsvq
