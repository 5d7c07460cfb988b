// CUDA nearest-codeword search: squared-L2 argmin without an N x K buffer. The launcher of
// nearest_code_4x4.cuh (64 rows a block, a 4 x 4 register tile a thread, every dtype). Which K x D
// the public op sends here by default: tsvq/ops/_cuda_defaults.py.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <limits>

#include "../../common/cuda_utils.cuh"
#include "nearest_code.h"
#include "nearest_code_4x4.cuh"

namespace tsvq {
namespace {

// The launch: checks, outputs, contiguous operands, ||c||^2.
struct Launch {
  at::Tensor x, cb, cnorm, indices, dist;
  int64_t N, K, D;
  unsigned blocks;
};

Launch prepare(const at::Tensor& x_in, const at::Tensor& codebook_in, int64_t rows_per_block) {
  check_nearest_code_inputs(x_in, codebook_in);
  TORCH_CHECK_VALUE(x_in.is_cuda(), "x must be a CUDA tensor here, got ", x_in.device());
  Launch l;
  l.N = x_in.size(0), l.K = codebook_in.size(0), l.D = x_in.size(1);
  l.indices = at::empty({l.N}, x_in.options().dtype(at::kLong));
  l.dist = at::empty({l.N}, x_in.options());
  const int64_t blocks = ceil_div(l.N, rows_per_block);
  TORCH_CHECK_VALUE(blocks <= std::numeric_limits<int32_t>::max(), "x has too many rows: ", l.N);
  l.blocks = static_cast<unsigned>(blocks);
  if (l.N == 0) return l;
  l.x = x_in.contiguous();
  l.cb = codebook_in.contiguous();
  l.cnorm = l.cb.to(acc_dtype(l.cb.scalar_type())).pow(2).sum(1);
  return l;
}

std::tuple<at::Tensor, at::Tensor> nearest_code_cuda(const at::Tensor& x_in,
                                                      const at::Tensor& codebook_in) {
  auto l = prepare(x_in, codebook_in, tile4::kBM);
  const c10::cuda::CUDAGuard guard(x_in.device());
  if (l.N == 0) return {l.indices, l.dist};
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, l.x.scalar_type(), "nearest_code_cuda", [&] {
    using acc_t = typename acc<scalar_t>::type;
    tile4::nearest_code_kernel<scalar_t, acc_t><<<l.blocks, tile4::kThreads, 0, stream>>>(
        l.x.data_ptr<scalar_t>(), l.cb.data_ptr<scalar_t>(), l.cnorm.data_ptr<acc_t>(), l.N, l.K, l.D,
        l.indices.data_ptr<int64_t>(), l.dist.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {l.indices, l.dist};
}

}  // namespace

TORCH_LIBRARY_IMPL(tsvq, CUDA, m) {
  m.impl("nearest_code", &nearest_code_cuda);
}

}  // namespace tsvq
