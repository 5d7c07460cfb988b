"""Barlow Twins loss: ``torch.ops.tsvq.barlow_twins_loss``."""
from __future__ import annotations

import torch

from .. import _extension
from . import _checks, _cuda_defaults, reference


def barlow_twins_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    lambd: float = 0.005,
    eps: float = 1e-5,
    unbiased: bool = False,
    scale_by_dim: bool = False,
) -> torch.Tensor:
    """Barlow Twins redundancy-reduction loss (Zbontar et al. 2021, eq. 1).

    Each column of ``z1`` and ``z2`` is standardised over the batch
    (``(z - mean) / sqrt(var + eps)``, as ``BatchNorm1d(affine=False)`` in
    facebookresearch/barlowtwins), ``C = z1^T z2 / N`` is the D x D cross-correlation matrix,
    and ``L = sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2``, divided by D when
    ``scale_by_dim`` (the NC-VQVAE setting: lambd 0.005, loss / 4096).

    Forward and backward are fused: the GEMMs are ATen's (MKL / cuBLAS) and every other pass is
    one tsvq kernel (CPU and CUDA): the forward standardises both views in place (their dtype
    and strides), with the diagonal of C and the per-dimension loss terms in the same pass, and
    a second kernel adds the GEMM term and writes the loss; the backward's one kernel forms the
    gradient of the standardised views and runs the standardisation backward. When N < D the
    exact Gram formulation ``sum_ij C_ij^2 = <Z1 Z1^T, Z2 Z2^T> / N^2`` (one batched GEMM) is
    used, so cost is O(N^2 D) and memory O(N^2 + N D), never D x D. Otherwise C is formed one
    block of rows at a time. The backward reuses the forward's standardised views and Gram
    matrices (``csrc/ops/barlow_twins_loss/barlow_twins_loss.cpp`` gives the algebra). CPU and
    CUDA only.

    Args:
        z1, z2: Tensor[N, D], same dtype (float32/float64/float16/bfloat16) and device; N >= 2.
            Statistics are accumulated in float32 (float64 for float64).
        lambd: weight of the off-diagonal (redundancy) term, default 0.005.
        eps: added to the variance, default 1e-5.
        unbiased: standardise with the unbiased (N - 1) variance instead of the biased one.
        scale_by_dim: divide the loss by D.

    Returns:
        Scalar Tensor[] in the dtype of ``z1``; differentiable with respect to both inputs.

    Raises:
        ValueError: shapes differ, rank != 2, N < 2, D < 1, devices differ, lambd or eps < 0.
        TypeError: non-float or mismatched dtypes.
    """
    _checks.check_barlow_twins(z1, z2, lambd, eps)
    if _extension.has_ops(z1.device) and (not z1.is_cuda or _cuda_defaults.use_cuda_kernel("barlow_twins_loss")):
        return torch.ops.tsvq.barlow_twins_loss(z1, z2, float(lambd), float(eps), bool(unbiased), bool(scale_by_dim))
    _extension.warn_if_missing(z1.device)
    return reference.barlow_twins_loss(z1, z2, lambd, eps, unbiased, scale_by_dim)


if _extension.built():

    @torch.library.register_fake("tsvq::_barlow_twins_loss_forward")
    def _(z1, z2, lambd, eps, unbiased, scale_by_dim):
        n, d = z1.shape
        acc = torch.float64 if z1.dtype == torch.float64 else torch.float32
        gram = z1.new_empty((2, n, n) if n < d else (0,), dtype=acc)
        return (z1.new_empty(()), z1.new_empty((n, 2 * d), dtype=acc), z1.new_empty((2 * d,), dtype=acc), gram,
                z1.new_empty((d,), dtype=acc))

    @torch.library.register_fake("tsvq::_barlow_twins_loss_backward")
    def _(grad, a, invstd, gram, r, lambd, unbiased, scale_by_dim, dtype):
        n, d2 = a.shape
        return a.new_empty((2, n, d2 // 2), dtype=dtype)

    def _setup_context(ctx, inputs, output):
        _, a, invstd, gram, r = output
        ctx.mark_non_differentiable(a, invstd, gram, r)
        ctx.set_materialize_grads(False)  # no zero gradients for the four intermediates
        ctx.save_for_backward(a, invstd, gram, r)
        ctx.args = (inputs[2], inputs[4], inputs[5], inputs[0].dtype)  # lambd, unbiased, scale_by_dim, dtype

    def _backward(ctx, grad, *_):
        if grad is None:
            return None, None, None, None, None, None
        lambd, unbiased, scale_by_dim, dtype = ctx.args
        dz = torch.ops.tsvq._barlow_twins_loss_backward(grad, *ctx.saved_tensors, lambd, unbiased, scale_by_dim, dtype)
        return dz[0], dz[1], None, None, None, None

    torch.library.register_autograd("tsvq::_barlow_twins_loss_forward", _backward, setup_context=_setup_context)
