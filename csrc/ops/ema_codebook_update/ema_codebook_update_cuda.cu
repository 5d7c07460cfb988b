// CUDA EMA codebook update: one zero-filled buffer for the batch's counts and sums, the code
// statistics kernel (code_stats_cuda_into), then the two kernels of ema_kernels.cuh: four
// kernels in all (before: two fills, the statistics and eleven ATen element-wise / reduction
// kernels), none of which synchronises with the host.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>

#include "../../common/cuda_utils.cuh"
#include "../code_stats/code_stats.h"
#include "ema_codebook_update.h"
#include "ema_kernels.cuh"

namespace tsvq {
void ema_apply_cuda(at::Tensor& cluster_size, at::Tensor& embed_sum, at::Tensor& codebook,
                    const at::Tensor& counts, const at::Tensor& sums, double decay, double eps) {
  const c10::cuda::CUDAGuard guard(codebook.device());
  const int64_t K = codebook.size(0), D = codebook.size(1);
  const auto dt = codebook.scalar_type();
  const auto c = counts.to(dt).contiguous(), s = sums.to(dt).contiguous();
  auto n = cluster_size.contiguous(), m = embed_sum.contiguous(), e = codebook.contiguous();
  auto total = at::empty({1}, codebook.options());
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(dt, "ema_apply_cuda", [&] {
    const auto dec = static_cast<scalar_t>(decay), keep_new = static_cast<scalar_t>(1.0 - decay);
    ema::cluster_size_kernel<scalar_t><<<1, ema::kThreads, 0, stream>>>(
        n.data_ptr<scalar_t>(), c.data_ptr<scalar_t>(), K, dec, keep_new, total.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    if (K * D > 0) {
      const int64_t blocks = std::min<int64_t>(ceil_div(K * D, ema::kThreads), 65535 * 8);
      ema::codebook_kernel<scalar_t><<<static_cast<unsigned>(blocks), ema::kThreads, 0, stream>>>(
          n.data_ptr<scalar_t>(), total.data_ptr<scalar_t>(), m.data_ptr<scalar_t>(), e.data_ptr<scalar_t>(),
          s.data_ptr<scalar_t>(), K, D, dec, keep_new, static_cast<scalar_t>(eps));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  write_back(cluster_size, n);
  write_back(embed_sum, m);
  write_back(codebook, e);
}

namespace {

at::Tensor ema_codebook_update_cuda(at::Tensor& cluster_size, at::Tensor& embed_sum,
                                   at::Tensor& codebook, const at::Tensor& x,
                                   const at::Tensor& indices, double decay, double eps) {
  const c10::cuda::CUDAGuard guard(x.device());
  return ema_codebook_update_impl(cluster_size, embed_sum, codebook, x, indices, decay, eps,
                                  code_stats_cuda_into, ema_apply_cuda);
}

void ema_apply_cuda_op(at::Tensor& cluster_size, at::Tensor& embed_sum, at::Tensor& codebook,
                      const at::Tensor& counts, const at::Tensor& sums, double decay, double eps) {
  ema_apply_impl(cluster_size, embed_sum, codebook, counts, sums, decay, eps, ema_apply_cuda);
}

}  // namespace

TORCH_LIBRARY_IMPL(tsvq, CUDA, m) {
  m.impl("ema_codebook_update_", &ema_codebook_update_cuda);
  m.impl("_ema_apply_", &ema_apply_cuda_op);
}

}  // namespace tsvq
