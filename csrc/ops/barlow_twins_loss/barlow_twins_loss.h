// Declarations shared by the Barlow Twins loss op (barlow_twins_loss.cpp: schemas and the
// device-independent part, the GEMMs) and its device files (barlow_twins_loss_cpu.cpp,
// barlow_twins_loss_cuda.cu), each of which registers the private ops for its dispatch key with its
// own passes. Notation of barlow_twins_loss.cpp; semantics of the passes in barlow_twins_kernels.cuh,
// which the CPU versions share.
#pragma once

#include <tuple>

#include "../../common/checks.h"

namespace tsvq {

// The passes around the GEMMs, one kernel each, for one device.
struct BarlowTwinsPasses {
  // z1, z2 [N, D] (any float dtype and strides) -> A [N, 2D], invstd [2D], r [D] (accumulation
  // dtype) and the per-dimension part of the loss, sum_j c0 + c1 r_j + c2 r_j^2, as partial sums
  // Tensor[P] (P >= 1) to be added in order by finish. eps is added to the biased variance.
  std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> (*standardize)(const at::Tensor& z1,
                                                                             const at::Tensor& z2, double eps,
                                                                             double c0, double c1, double c2);
  // loss = sum(partial) + coef * frob (frob: a one-element tensor), Tensor[] in dtype.
  at::Tensor (*finish)(const at::Tensor& partial, const at::Tensor& frob, double coef, at::ScalarType dtype);
  // dz [2, N, D] in dtype (dL/dz1, dL/dz2): g = grad (k P[v] + A_other w), w = w1 r + w0, then the
  // standardisation backward; grad is a one-element tensor, P Tensor[2, N, D] (G2 A1, G1 A2), all
  // in the accumulation dtype and contiguous.
  at::Tensor (*standardize_backward)(const at::Tensor& grad, const at::Tensor& a, const at::Tensor& invstd,
                                     const at::Tensor& r, const at::Tensor& p, double k, double w1, double w0,
                                     at::ScalarType dtype);
};

// The private ops' implementations (schemas in barlow_twins_loss.cpp) on the given passes.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> barlow_twins_loss_forward(
    const at::Tensor& z1, const at::Tensor& z2, double lambd, double eps, bool unbiased, bool scale_by_dim,
    const BarlowTwinsPasses& passes);
at::Tensor barlow_twins_loss_backward(const at::Tensor& grad, const at::Tensor& a, const at::Tensor& invstd,
                                      const at::Tensor& gram, const at::Tensor& r, double lambd, bool unbiased,
                                      bool scale_by_dim, at::ScalarType dtype, const BarlowTwinsPasses& passes);

// The same bound to one device's passes, as its TORCH_LIBRARY_IMPL registers them.
template <const BarlowTwinsPasses& passes>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> barlow_twins_loss_forward_on(
    const at::Tensor& z1, const at::Tensor& z2, double lambd, double eps, bool unbiased, bool scale_by_dim) {
  return barlow_twins_loss_forward(z1, z2, lambd, eps, unbiased, scale_by_dim, passes);
}

template <const BarlowTwinsPasses& passes>
at::Tensor barlow_twins_loss_backward_on(const at::Tensor& grad, const at::Tensor& a, const at::Tensor& invstd,
                                         const at::Tensor& gram, const at::Tensor& r, double lambd, bool unbiased,
                                         bool scale_by_dim, at::ScalarType dtype) {
  return barlow_twins_loss_backward(grad, a, invstd, gram, r, lambd, unbiased, scale_by_dim, dtype, passes);
}

}  // namespace tsvq
