// Barlow Twins loss (Zbontar et al. 2021, eq. 1), forward and backward without a D x D matrix
// when N < D: the GEMMs are ATen's (MKL / cuBLAS), every other pass is one tsvq kernel of the
// device (BarlowTwinsPasses: barlow_twins_loss_cpu.cpp, barlow_twins_loss_cuda.cu, which register
// the private ops for CPU and CUDA; barlow_twins_kernels.cuh). This file: the schemas and the
// device-independent part.
//
// Both views are standardised by one kernel reading z1 and z2 in place (their dtype and strides):
// A = [A1 | A2] = (X - mean) * invstd, Tensor[N, 2D] in the accumulation dtype, invstd =
// 1 / sqrt(var + eps) with the biased variance of facebookresearch/barlowtwins'
// BatchNorm1d(affine=False). The unbiased variance is the same with eps' = eps (N - 1) / N and a
// scalar factor folded into the divisor m below:
//   A_unbiased = sqrt((N - 1) / N) A(eps'),  so  C = A1^T A2 / m,  m = N (biased), N^2 / (N - 1).
// L = sum_i (1 - C_ii)^2 + lambd sum_{i != j} C_ij^2 (times s = 1 / D with scale_by_dim).
// With r_i = (A1^T A2)_ii (an O(N D) column dot product, in the same kernel) and
// ||A1^T A2||_F^2 = <G1, G2>, G = A A^T (one batched GEMM over the two views):
//   L = s sum_i [1 - 2 r_i / m + (1 - lambd) r_i^2 / m^2] + s lambd <G1, G2> / m^2,
// the first sum from the standardisation kernel's partial sums, added to the second by a
// finishing kernel that writes the loss in the dtype of z1. The forward returns A, invstd, G and r
// with the loss, so the backward recomputes nothing:
//   dL/dA1 = k G2 A1 + A2 diag(w),  dL/dA2 = k G1 A2 + A1 diag(w),
//   k = 2 s lambd / m^2,  w_i = s (2 (1 - lambd) r_i / m^2 - 2 / m),
// P = [G2 A1, G1 A2] by two GEMMs, then one kernel forms g = grad (k P + A_other diag(w)) and the
// batch-standardisation backward dX = (g - mean(g) - A mean(g * A)) * invstd in the input dtype,
// written as Tensor[2, N, D] so that the gradients of z1 and z2 are contiguous.
// Per forward + backward: 2 + 1 GEMM-like calls (bmm, dot) + 2 GEMMs and three tsvq kernels.
// Cost O(N^2 D), memory O(N^2 + N D) on the Gram path (N < D). Otherwise column blocks of
// A1^T A2 are formed one at a time: O(N D^2) time, O(block D) memory, in forward and backward.
// Statistics and products are in float32 (float64 for float64 inputs), under torch.autocast too:
// the GEMMs run with the autocast keys excluded (NoAutocast below), so mixed-precision training
// does not hand them back in half precision.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include "barlow_twins_loss.h"

namespace tsvq {
namespace {

constexpr int64_t kBlockElems = int64_t(1) << 22;  // elements of one block of A1^T A2

void check_inputs(const at::Tensor& z1, const at::Tensor& z2, double lambd, double eps) {
  check_rank(z1, 2, "z1", "Tensor[N, D]");
  check_rank(z2, 2, "z2", "Tensor[N, D]");
  check_float(z1, "z1");
  check_float(z2, "z2");
  TORCH_CHECK_VALUE(z1.sizes() == z2.sizes(), "z1 and z2 must have the same shape [N, D], got ",
                    z1.sizes(), " and ", z2.sizes());
  TORCH_CHECK_TYPE(z1.scalar_type() == z2.scalar_type(), "z1 and z2 must have the same dtype, got ",
                   z1.scalar_type(), " and ", z2.scalar_type());
  check_same_device(z1, "z1", z2, "z2");
  TORCH_CHECK_VALUE(z1.size(0) >= 2, "z1 and z2 need a batch of N >= 2 rows to standardise columns, got N = ",
                    z1.size(0));
  TORCH_CHECK_VALUE(z1.size(1) >= 1, "z1 and z2 need D >= 1 columns");
  TORCH_CHECK_VALUE(lambd >= 0, "lambd must be >= 0, got ", lambd);
  TORCH_CHECK_VALUE(eps >= 0, "eps must be >= 0, got ", eps);
}

bool gram_path(int64_t N, int64_t D) { return N < D; }

int64_t block_cols(int64_t D) { return std::max<int64_t>(1, std::min<int64_t>(D, kBlockElems / D)); }

// The op's GEMMs multiply the float32 / float64 standardised views it made itself; under
// torch.autocast the dispatcher would run them in half precision and hand back tensors of another
// dtype than the passes expect. For the guard's lifetime autocast does not apply (as in
// torchvision's autocast kernels).
struct NoAutocast {
  c10::impl::ExcludeDispatchKeyGuard guard{c10::autocast_dispatch_keyset};
};

// The divisor m of C = A1^T A2 / m (see the header).
double divisor(int64_t N, bool unbiased) {
  const double n = static_cast<double>(N);
  return unbiased ? n * n / (n - 1.0) : n;
}

// -> (loss, A [N, 2D], invstd [2D], G [2, N, N] or [0], r [D]); A, invstd, G, r in the
// accumulation dtype, the loss in the dtype of z1.
}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> barlow_twins_loss_forward(
    const at::Tensor& z1, const at::Tensor& z2, double lambd, double eps, bool unbiased, bool scale_by_dim,
    const BarlowTwinsPasses& passes) {
  check_inputs(z1, z2, lambd, eps);
  const NoAutocast no_autocast;
  const int64_t N = z1.size(0), D = z1.size(1);
  const double n = static_cast<double>(N), m = divisor(N, unbiased);
  const double s = scale_by_dim ? 1.0 / static_cast<double>(D) : 1.0;
  const double eps_biased = unbiased ? eps * (n - 1.0) / n : eps;
  // per dimension: s [1 - 2 r_i / m + (1 - lambd) r_i^2 / m^2]
  const double c0 = s, c1 = -2.0 * s / m, c2 = (1.0 - lambd) * s / (m * m);
  at::Tensor a, invstd, r, partial;
  std::tie(a, invstd, r, partial) = passes.standardize(z1, z2, eps_biased, c0, c1, c2);
  auto a1 = a.narrow(1, 0, D), a2 = a.narrow(1, D, D);
  at::Tensor gram, frob;  // frob = ||A1^T A2||_F^2
  if (gram_path(N, D)) {
    auto av = a.view({N, 2, D}).transpose(0, 1);  // [2, N, D], no copy
    gram = at::bmm(av, av.transpose(1, 2));
    frob = at::dot(gram[0].view(-1), gram[1].view(-1));
  } else {
    gram = at::empty({0}, a.options());
    frob = at::zeros({}, a.options());
    const int64_t b = block_cols(D);
    for (int64_t j = 0; j < D; j += b) {
      auto cb = at::mm(a1.narrow(1, j, std::min(b, D - j)).t(), a2).view(-1);
      frob.add_(at::dot(cb, cb));
    }
  }
  const double coef = s * lambd / (m * m);
  auto loss = passes.finish(partial, frob, coef, z1.scalar_type());
  return {loss, a, invstd, gram, r};
}

// [dL/dz1, dL/dz2] as Tensor[2, N, D] in `dtype`, from the forward's saved A, invstd, G and r.
at::Tensor barlow_twins_loss_backward(const at::Tensor& grad, const at::Tensor& a, const at::Tensor& invstd,
                                      const at::Tensor& gram, const at::Tensor& r, double lambd, bool unbiased,
                                      bool scale_by_dim, at::ScalarType dtype, const BarlowTwinsPasses& passes) {
  const NoAutocast no_autocast;
  check_rank(a, 2, "a", "Tensor[N, 2D]");
  const int64_t N = a.size(0), D = a.size(1) / 2;
  TORCH_CHECK_VALUE(a.size(1) == 2 * D && r.dim() == 1 && r.size(0) == D && invstd.dim() == 1 &&
                        invstd.size(0) == 2 * D,
                    "a, invstd and r must be Tensor[N, 2D], [2D] and [D], got ", a.sizes(), ", ",
                    invstd.sizes(), " and ", r.sizes());
  TORCH_CHECK_VALUE(a.scalar_type() == acc_dtype(a.scalar_type()) && invstd.scalar_type() == a.scalar_type() &&
                        r.scalar_type() == a.scalar_type() && is_float_dtype(dtype),
                    "a, invstd and r must share one float32 / float64 dtype and dtype must be a float type");
  const double m = divisor(N, unbiased);
  const double s = scale_by_dim ? 1.0 / static_cast<double>(D) : 1.0;
  const double k = 2.0 * s * lambd / (m * m);
  const auto ac = a.contiguous();
  auto a1 = ac.narrow(1, 0, D), a2 = ac.narrow(1, D, D);
  // p[0] = G2 A1, p[1] = G1 A2 (the backward kernel scales them by k)
  auto p = gram_path(N, D) ? at::empty({2, N, D}, a.options()) : at::zeros({2, N, D}, a.options());
  if (gram_path(N, D)) {
    TORCH_CHECK_VALUE(gram.dim() == 3 && gram.size(0) == 2 && gram.size(1) == N && gram.size(2) == N,
                      "gram must be Tensor[2, N, N] when N < D, got ", gram.sizes());
    auto p1 = p[0], p2 = p[1];
    at::mm_out(p1, gram[1], a1);
    at::mm_out(p2, gram[0], a2);
  } else {
    const int64_t b = block_cols(D);
    auto p1 = p[0], p2 = p[1];
    for (int64_t j = 0; j < D; j += b) {
      const int64_t len = std::min(b, D - j);
      auto a1b = a1.narrow(1, j, len);
      auto cb = at::mm(a1b.t(), a2);  // rows j..j+len of A1^T A2, [len, D]
      p1.narrow(1, j, len).addmm_(a2, cb.t());
      p2.addmm_(a1b, cb);
    }
  }
  const double w1 = 2.0 * s * (1.0 - lambd) / (m * m), w0 = -2.0 * s / m;  // w_i = w1 r_i + w0
  const auto g = grad.to(a.options()).contiguous();  // a 0-dim CPU grad moves to the device
  return passes.standardize_backward(g, ac, invstd.contiguous(), r.contiguous(), p, k, w1, w0, dtype);
}

namespace {

at::Tensor barlow_twins_loss(const at::Tensor& z1, const at::Tensor& z2, double lambd, double eps,
                             bool unbiased, bool scale_by_dim) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("tsvq::_barlow_twins_loss_forward", "")
                       .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
                           const at::Tensor&, const at::Tensor&, double, double, bool, bool)>();
  return std::get<0>(op.call(z1, z2, lambd, eps, unbiased, scale_by_dim));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(tsvq, m) {
  // z1, z2: Tensor[N, D] -> scalar loss (dtype of z1). Differentiable through the private
  // forward, whose autograd (tsvq/ops/barlow_twins_loss.py) keeps its intermediates.
  m.def("barlow_twins_loss(Tensor z1, Tensor z2, float lambd=0.005, float eps=1e-5, "
        "bool unbiased=False, bool scale_by_dim=False) -> Tensor");
  // -> (loss, A [N, 2D], invstd [2D], gram [2, N, N] or [0], r [D]).
  m.def("_barlow_twins_loss_forward(Tensor z1, Tensor z2, float lambd, float eps, bool unbiased, "
        "bool scale_by_dim) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  // -> [dL/dz1, dL/dz2], Tensor[2, N, D] in dtype.
  m.def("_barlow_twins_loss_backward(Tensor grad, Tensor a, Tensor invstd, Tensor gram, Tensor r, "
        "float lambd, bool unbiased, bool scale_by_dim, ScalarType dtype) -> Tensor");
}

// The loss decomposes into the private forward, which carries the autograd formula.
TORCH_LIBRARY_IMPL(tsvq, CompositeImplicitAutograd, m) {
  m.impl("barlow_twins_loss", &barlow_twins_loss);
}

// The private ops are registered per dispatch key by the device files (barlow_twins_loss_cpu.cpp,
// barlow_twins_loss_cuda.cu), each binding barlow_twins_loss_forward / _backward to its passes.

}  // namespace tsvq
