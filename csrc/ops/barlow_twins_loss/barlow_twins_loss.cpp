// Barlow Twins loss (Zbontar et al. 2021, eq. 1), forward and backward without a D x D matrix
// when N < D.
//
// A = columns of z standardised over the batch, s = sqrt(var + eps) (biased var by default, as
// facebookresearch/barlowtwins' BatchNorm1d(affine=False)); C = A1^T A2 / N;
// L = sum_i (1 - C_ii)^2 + lambd sum_{i != j} C_ij^2  (divided by D with scale_by_dim).
// With c_i = C_ii (an O(N D) column dot product) and ||C||_F^2 = <G1, G2> / N^2, G = A A^T:
//   L = sum_i (1 - c_i)^2 - lambd sum_i c_i^2 + lambd ||C||_F^2.
// dL/dA1 = (2 lambd / N^2) G2 A1 + A2 diag(w) / N with w_i = -2 (1 - c_i) - 2 lambd c_i, and
// symmetrically for A2; then the batch-standardisation backward
//   dz = (dA - mean(dA) - A mean(dA * A) * N / (N - unbiased)) / s.
// Cost O(N^2 D) and memory O(N^2 + N D) on the Gram path (N < D); otherwise column blocks of C
// (Cb = A1[:, blk]^T A2 / N) are formed one at a time: O(N D^2) time, O(block D) memory.
// The GEMMs are ATen's (MKL/cuBLAS) on whatever device the inputs live on; statistics are
// accumulated in float32 (float64 for float64 inputs).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../../common/checks.h"

namespace tsvq {
namespace {

constexpr int64_t kBlockElems = int64_t(1) << 22;  // elements of one C column block

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

struct Standardised {
  at::Tensor a;        // [N, D], acc dtype
  at::Tensor inv_std;  // [D]
};

Standardised standardise(const at::Tensor& z, double eps, bool unbiased) {
  auto x = z.to(acc_dtype(z.scalar_type()));
  auto mean = x.mean(0, /*keepdim=*/true);
  auto centred = x - mean;
  auto var = centred.pow(2).sum(0) / static_cast<double>(x.size(0) - (unbiased ? 1 : 0));
  auto inv_std = (var + eps).rsqrt();
  return {centred * inv_std, inv_std};
}

bool gram_path(int64_t N, int64_t D) { return N < D; }

int64_t block_cols(int64_t D) { return std::max<int64_t>(1, std::min<int64_t>(D, kBlockElems / D)); }

at::Tensor barlow_twins_loss(const at::Tensor& z1, const at::Tensor& z2, double lambd, double eps,
                             bool unbiased, bool scale_by_dim) {
  check_inputs(z1, z2, lambd, eps);
  const int64_t N = z1.size(0), D = z1.size(1);
  auto s1 = standardise(z1, eps, unbiased);
  auto s2 = standardise(z2, eps, unbiased);
  const double n = static_cast<double>(N);
  auto c = (s1.a * s2.a).sum(0) / n;  // diagonal of C, [D]
  at::Tensor frob;                    // ||C||_F^2
  if (gram_path(N, D)) {
    auto g1 = at::mm(s1.a, s1.a.t());
    auto g2 = at::mm(s2.a, s2.a.t());
    frob = (g1 * g2).sum() / (n * n);
  } else {
    frob = at::zeros({}, c.options());
    const int64_t b = block_cols(D);
    for (int64_t j = 0; j < D; j += b) {
      auto cb = at::mm(s1.a.narrow(1, j, std::min(b, D - j)).t(), s2.a) / n;
      frob = frob + cb.pow(2).sum();
    }
  }
  auto loss = (1.0 - c).pow(2).sum() - lambd * c.pow(2).sum() + lambd * frob;
  if (scale_by_dim) loss = loss / static_cast<double>(D);
  return loss.to(z1.scalar_type());
}

at::Tensor standardise_backward(const at::Tensor& da, const Standardised& s, bool unbiased) {
  const double n = static_cast<double>(da.size(0));
  const double k = n / (n - (unbiased ? 1.0 : 0.0));
  auto proj = (da * s.a).mean(0, true) * k;
  return (da - da.mean(0, true) - s.a * proj) * s.inv_std;
}

std::tuple<at::Tensor, at::Tensor> barlow_twins_loss_backward(const at::Tensor& grad,
                                                              const at::Tensor& z1,
                                                              const at::Tensor& z2, double lambd,
                                                              double eps, bool unbiased,
                                                              bool scale_by_dim) {
  check_inputs(z1, z2, lambd, eps);
  const int64_t N = z1.size(0), D = z1.size(1);
  auto s1 = standardise(z1, eps, unbiased);
  auto s2 = standardise(z2, eps, unbiased);
  const double n = static_cast<double>(N);
  auto g = grad.to(s1.a.scalar_type());
  if (scale_by_dim) g = g / static_cast<double>(D);
  auto c = (s1.a * s2.a).sum(0) / n;
  auto w = (-2.0 * (1.0 - c) - 2.0 * lambd * c) / n;  // [D]
  at::Tensor da1, da2;
  if (gram_path(N, D)) {
    auto g1 = at::mm(s1.a, s1.a.t());
    auto g2 = at::mm(s2.a, s2.a.t());
    const double k = 2.0 * lambd / (n * n);
    da1 = at::mm(g2, s1.a) * k + s2.a * w;
    da2 = at::mm(g1, s2.a) * k + s1.a * w;
  } else {
    da1 = at::empty_like(s1.a);
    da2 = s1.a * w;
    const int64_t b = block_cols(D);
    for (int64_t j = 0; j < D; j += b) {
      const int64_t len = std::min(b, D - j);
      auto a1b = s1.a.narrow(1, j, len);
      auto dcb = at::mm(a1b.t(), s2.a) * (2.0 * lambd / n);  // dL/dC for these rows of C, [len, D]
      // dA1[:, blk] = A2 dCb^T / N ; dA2 += A1[:, blk] dCb / N
      da1.narrow(1, j, len).copy_(at::mm(s2.a, dcb.t()) / n + s2.a.narrow(1, j, len) * w.narrow(0, j, len));
      da2.add_(at::mm(a1b, dcb) / n);
    }
  }
  auto dz1 = standardise_backward(da1 * g, s1, unbiased).to(z1.scalar_type());
  auto dz2 = standardise_backward(da2 * g, s2, unbiased).to(z2.scalar_type());
  return {dz1, dz2};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(tsvq, m) {
  // z1, z2: Tensor[N, D] -> scalar loss (dtype of z1).
  m.def("barlow_twins_loss(Tensor z1, Tensor z2, float lambd=0.005, float eps=1e-5, "
        "bool unbiased=False, bool scale_by_dim=False) -> Tensor");
  m.def("_barlow_twins_loss_backward(Tensor grad, Tensor z1, Tensor z2, float lambd, float eps, "
        "bool unbiased, bool scale_by_dim) -> (Tensor, Tensor)");
}

// GEMM-bound composites: one implementation serves CPU and CUDA through ATen's GEMMs.
TORCH_LIBRARY_IMPL(tsvq, CompositeExplicitAutograd, m) {
  m.impl("barlow_twins_loss", &barlow_twins_loss);
  m.impl("_barlow_twins_loss_backward", &barlow_twins_loss_backward);
}

}  // namespace tsvq
