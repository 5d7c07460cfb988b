// CUDA nearest-codeword searches without an N x K buffer: the launchers of nearest_code_4x4.cuh
// (the nearest code; 64 rows a block, a 4 x 4 register tile a thread, every dtype) and of
// nearest_code_topk.cuh (the k nearest, k <= topk::kMaxK). Which the public ops send here by
// default: tsvq/ops/_cuda_defaults.py.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <limits>

#include "../../common/cuda_utils.cuh"
#include "nearest_code.h"
#include "nearest_code_4x4.cuh"
#include "nearest_code_topk.cuh"

namespace tsvq {
namespace {

// The launch: checks, outputs, contiguous operands, ||c||^2.
struct Launch {
  at::Tensor x, cb, cnorm, indices, dist;
  int64_t N, K, D;
  unsigned blocks;
};

// out_shape: the outputs' shape ({N} or {N, k}).
Launch prepare(const at::Tensor& x_in, const at::Tensor& codebook_in, int64_t rows_per_block,
               at::IntArrayRef out_shape) {
  TORCH_CHECK_VALUE(x_in.is_cuda(), "x must be a CUDA tensor here, got ", x_in.device());
  Launch l;
  l.N = x_in.size(0), l.K = codebook_in.size(0), l.D = x_in.size(1);
  l.indices = at::empty(out_shape, x_in.options().dtype(at::kLong));
  l.dist = at::empty(out_shape, x_in.options());
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
  check_nearest_code_inputs(x_in, codebook_in);
  auto l = prepare(x_in, codebook_in, tile4::kBM, {x_in.size(0)});
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

std::tuple<at::Tensor, at::Tensor> nearest_code_topk_cuda(const at::Tensor& x_in, const at::Tensor& codebook_in,
                                                           int64_t k) {
  check_nearest_code_inputs(x_in, codebook_in);
  check_topk(codebook_in, k);
  TORCH_CHECK_VALUE(k <= topk::kMaxK, "k must be <= ", topk::kMaxK,
                    " for the CUDA kernel (tsvq.ops.nearest_code_topk takes the library path above), got ", k);
  auto l = prepare(x_in, codebook_in, tile4::kBM, {x_in.size(0), k});
  const c10::cuda::CUDAGuard guard(x_in.device());
  if (l.N == 0) return {l.indices, l.dist};
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, l.x.scalar_type(), "nearest_code_topk_cuda", [&] {
    using acc_t = typename acc<scalar_t>::type;
    topk::nearest_code_topk_kernel<scalar_t, acc_t><<<l.blocks, tile4::kThreads, 0, stream>>>(
        l.x.data_ptr<scalar_t>(), l.cb.data_ptr<scalar_t>(), l.cnorm.data_ptr<acc_t>(), l.N, l.K, l.D,
        static_cast<int>(k), l.indices.data_ptr<int64_t>(), l.dist.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {l.indices, l.dist};
}

}  // namespace

TORCH_LIBRARY_IMPL(tsvq, CUDA, m) {
  m.impl("nearest_code", &nearest_code_cuda);
  m.impl("nearest_code_topk", &nearest_code_topk_cuda);
}

}  // namespace tsvq
