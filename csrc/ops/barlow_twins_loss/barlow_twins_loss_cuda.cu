// CUDA passes of the Barlow Twins loss around its cuBLAS GEMMs (BarlowTwinsPasses in
// barlow_twins_loss.h; kernels in barlow_twins_kernels.cuh), and the private ops' CUDA registration: per step one standardisation kernel, one finishing kernel
// and, in the backward, one kernel for the gradient and the standardisation backward, where the
// ATen composite ran a concatenation, batch norm (2-3 kernels), about six elementwise and reduction
// kernels and batch-norm backward. No host synchronisation: the incoming gradient is read on the device.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <limits>

#include "../../common/cuda_utils.cuh"
#include "barlow_twins_kernels.cuh"
#include "barlow_twins_loss.h"

namespace tsvq {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> standardize_cuda(const at::Tensor& z1,
                                                                               const at::Tensor& z2, double eps,
                                                                               double c0, double c1, double c2) {
  const c10::cuda::CUDAGuard guard(z1.device());
  const int64_t N = z1.size(0), D = z1.size(1), blocks = ceil_div(D, bt::kCols);
  TORCH_CHECK(blocks <= std::numeric_limits<int32_t>::max(), "barlow_twins_loss: D too large: ", D);
  const auto opts = z1.options().dtype(acc_dtype(z1.scalar_type()));
  auto a = at::empty({N, 2 * D}, opts), invstd = at::empty({2 * D}, opts), r = at::empty({D}, opts);
  auto partial = at::empty({blocks}, opts);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, z1.scalar_type(), "bt_standardize_cuda", [&] {
    using acc_t = typename acc<scalar_t>::type;
    bt::standardize_kernel<scalar_t, acc_t><<<static_cast<unsigned>(blocks), bt::kThreads, 0, stream>>>(
        z1.data_ptr<scalar_t>(), z2.data_ptr<scalar_t>(), N, D, z1.stride(0), z1.stride(1), z2.stride(0),
        z2.stride(1), static_cast<acc_t>(eps), static_cast<acc_t>(c0), static_cast<acc_t>(c1),
        static_cast<acc_t>(c2), a.data_ptr<acc_t>(), invstd.data_ptr<acc_t>(), r.data_ptr<acc_t>(),
        partial.data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {a, invstd, r, partial};
}

at::Tensor finish_cuda(const at::Tensor& partial, const at::Tensor& frob, double coef, at::ScalarType dtype) {
  const c10::cuda::CUDAGuard guard(partial.device());
  auto loss = at::empty({}, partial.options().dtype(dtype));
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(partial.scalar_type(), "bt_finish_cuda", [&] {
    using acc_t = scalar_t;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "bt_finish_cuda", [&] {
      bt::finish_kernel<acc_t, scalar_t><<<1, bt::kFinishThreads, 0, stream>>>(
          partial.data_ptr<acc_t>(), partial.numel(), frob.data_ptr<acc_t>(), static_cast<acc_t>(coef),
          loss.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return loss;
}

at::Tensor standardize_backward_cuda(const at::Tensor& grad, const at::Tensor& a, const at::Tensor& invstd,
                                        const at::Tensor& r, const at::Tensor& p, double k, double w1, double w0,
                                        at::ScalarType dtype) {
  const c10::cuda::CUDAGuard guard(a.device());
  const int64_t N = a.size(0), D = a.size(1) / 2, blocks = ceil_div(D, bt::kCols);
  TORCH_CHECK(blocks <= std::numeric_limits<int32_t>::max(), "barlow_twins_loss: D too large: ", D);
  auto dz = at::empty({2, N, D}, a.options().dtype(dtype));
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "bt_standardize_backward_cuda", [&] {
    using acc_t = scalar_t;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "bt_standardize_backward_cuda", [&] {
      bt::standardize_backward_kernel<acc_t, scalar_t><<<static_cast<unsigned>(blocks), bt::kThreads, 0, stream>>>(
          grad.data_ptr<acc_t>(), a.data_ptr<acc_t>(), invstd.data_ptr<acc_t>(), r.data_ptr<acc_t>(),
          p.data_ptr<acc_t>(), N, D, static_cast<acc_t>(k), static_cast<acc_t>(w1), static_cast<acc_t>(w0),
          dz.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return dz;
}

const BarlowTwinsPasses kCudaPasses{&standardize_cuda, &finish_cuda, &standardize_backward_cuda};

}  // namespace

TORCH_LIBRARY_IMPL(tsvq, CUDA, m) {
  m.impl("_barlow_twins_loss_forward", &barlow_twins_loss_forward_on<kCudaPasses>);
  m.impl("_barlow_twins_loss_backward", &barlow_twins_loss_backward_on<kCudaPasses>);
}

}  // namespace tsvq
