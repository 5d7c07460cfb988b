// Declarations shared by the Barlow Twins loss op (barlow_twins_loss.cpp) and its device kernels
// (barlow_twins_loss_cpu.cpp, barlow_twins_loss_cuda.cu): the passes around the GEMMs, each one
// kernel. Notation of barlow_twins_loss.cpp; semantics of the CUDA versions in
// barlow_twins_kernels.cuh, which the CPU versions share.
#pragma once

#include <tuple>

#include "../../common/checks.h"

namespace tsvq {

// z1, z2 [N, D] (any float dtype and strides) -> A [N, 2D], invstd [2D], r [D] (accumulation
// dtype) and the per-dimension part of the loss, sum_j c0 + c1 r_j + c2 r_j^2, as partial sums
// Tensor[P] (P >= 1) to be added in order by bt_finish. eps is added to the biased variance.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> bt_standardize_cpu(const at::Tensor& z1,
                                                                              const at::Tensor& z2, double eps,
                                                                              double c0, double c1, double c2);
// loss = sum(partial) + coef * frob (frob: a one-element tensor), Tensor[] in dtype.
at::Tensor bt_finish_cpu(const at::Tensor& partial, const at::Tensor& frob, double coef, at::ScalarType dtype);
// dz [2, N, D] in dtype (dL/dz1, dL/dz2): g = grad (k P[v] + A_other w), w = w1 r + w0, then the standardisation
// backward; grad is a one-element tensor, P Tensor[2, N, D] (G2 A1, G1 A2), all in the
// accumulation dtype.
at::Tensor bt_standardize_backward_cpu(const at::Tensor& grad, const at::Tensor& a, const at::Tensor& invstd,
                                       const at::Tensor& r, const at::Tensor& p, double k, double w1, double w0,
                                       at::ScalarType dtype);

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> bt_standardize_cuda(const at::Tensor& z1,
                                                                               const at::Tensor& z2, double eps,
                                                                               double c0, double c1, double c2);
at::Tensor bt_finish_cuda(const at::Tensor& partial, const at::Tensor& frob, double coef, at::ScalarType dtype);
at::Tensor bt_standardize_backward_cuda(const at::Tensor& grad, const at::Tensor& a, const at::Tensor& invstd,
                                        const at::Tensor& r, const at::Tensor& p, double k, double w1, double w0,
                                        at::ScalarType dtype);

}  // namespace tsvq
