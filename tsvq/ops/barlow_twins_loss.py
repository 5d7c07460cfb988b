"""Barlow Twins loss: ``torch.ops.tsvq.barlow_twins_loss``."""
from __future__ import annotations

import torch

from .. import _extension
from . import _checks, reference


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

    Forward and backward are fused; when N < D the exact Gram formulation
    ``sum_ij C_ij^2 = <Z1 Z1^T, Z2 Z2^T> / N^2`` is used, so cost is O(N^2 D) and memory
    O(N^2 + N D), never D x D. Otherwise C is formed one block of rows at a time.

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
    if _extension.has_ops():
        return torch.ops.tsvq.barlow_twins_loss(z1, z2, float(lambd), float(eps), bool(unbiased), bool(scale_by_dim))
    _extension.warn_if_missing()
    return reference.barlow_twins_loss(z1, z2, lambd, eps, unbiased, scale_by_dim)


if _extension.built():

    @torch.library.register_fake("tsvq::barlow_twins_loss")
    def _(z1, z2, lambd=0.005, eps=1e-5, unbiased=False, scale_by_dim=False):
        return z1.new_empty(())

    @torch.library.register_fake("tsvq::_barlow_twins_loss_backward")
    def _(grad, z1, z2, lambd, eps, unbiased, scale_by_dim):
        return torch.empty_like(z1), torch.empty_like(z2)

    def _setup_context(ctx, inputs, output):
        z1, z2, *rest = inputs
        ctx.save_for_backward(z1, z2)
        ctx.args = tuple(rest)

    def _backward(ctx, grad):
        z1, z2 = ctx.saved_tensors
        dz1, dz2 = torch.ops.tsvq._barlow_twins_loss_backward(grad, z1, z2, *ctx.args)
        return dz1, dz2, None, None, None, None

    torch.library.register_autograd("tsvq::barlow_twins_loss", _backward, setup_context=_setup_context)
