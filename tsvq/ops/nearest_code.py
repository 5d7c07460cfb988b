"""Nearest-codeword search: ``torch.ops.tsvq.nearest_code``."""
from __future__ import annotations

import torch

from .. import _extension
from . import _checks, _cuda_defaults, reference

# Rows per addmm of the library path: at most 2^24 distances (64 MiB in float32) at a time.
_GEMM_CHUNK_ELEMENTS = 1 << 24


def nearest_code(x: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index and squared L2 distance of the nearest codeword of every row of ``x``.

    ``indices[n] = argmin_k ||x[n] - codebook[k]||^2`` (ties to the lowest index) and
    ``dist[n]`` the minimum, computed as ``max(||x||^2 + ||c||^2 - 2 x.c, 0)`` without an
    N x K buffer: the CPU kernel tiles rows and codes in cache-sized blocks (OpenMP over rows);
    the CUDA kernel stages codebook tiles in shared memory and keeps a running (min, argmin)
    per row in registers. The cosine metric is this op on L2-normalised inputs. VQ-VAE encoder
    quantisation, van den Oord et al. 2017, eq. 1.

    Args:
        x: Tensor[N, D], float32/float64/float16/bfloat16. Any strides.
        codebook: Tensor[K, D], same dtype and device, K >= 1.

    Returns:
        indices: int64 Tensor[N].
        dist: Tensor[N], dtype of ``x``; squared L2 distance to the chosen code. Half inputs
            are computed with float32 accumulation, float64 in float64. Differentiable with
            respect to ``x`` and ``codebook`` (d dist / dx = 2 (x - c)); ``indices`` is not.

    Raises:
        ValueError: ``x`` not Tensor[N, D], ``codebook`` not Tensor[K, D] with matching D,
            K < 1, different devices, or (CPU) NaN/inf in ``x`` or ``codebook``.
        TypeError: non-float or mismatched dtypes.

    Note:
        On CUDA the kernel cannot raise on NaN/inf without a host synchronisation: such rows
        get index -1 and dist NaN (a VectorQuantizer's loss then becomes NaN, visibly).
    """
    _checks.check_nearest_code(x, codebook)
    if x.is_cuda and not _cuda_defaults.use_cuda_kernel("nearest_code", codebook.shape[0], codebook.shape[1]):
        return nearest_code_gemm(x, codebook)
    if _extension.has_ops(x.device):
        if x.device.type == "cpu" and not torch.compiler.is_compiling():
            _checks.check_finite_on_cpu(x, codebook)
        return torch.ops.tsvq.nearest_code(x, codebook)
    _extension.warn_if_missing(x.device)
    return reference.nearest_code(x, codebook)


def nearest_code_gemm(x: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`nearest_code` by ``addmm`` (cuBLAS / MKL) and ``argmin`` over chunks of rows: at most
    ``2^24`` distances in memory at a time, no host synchronisation (the library path on CUDA where
    the tsvq kernel is not the faster one, see ``tsvq/ops/_cuda_defaults.py``).

    Same contract as :func:`nearest_code`, except that the data is not checked: a row with NaN or
    inf gets index -1 and distance NaN (as the CUDA kernel). ``dist`` is recomputed from the chosen
    codes, so it is differentiable in ``x`` and ``codebook``.
    """
    _checks.check_nearest_code(x, codebook)
    n, k = x.shape[0], codebook.shape[0]
    if n == 0:
        return x.new_empty(0, dtype=torch.long), x.new_empty(0)
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    cf = codebook.detach().to(acc)
    cnorm = cf.pow(2).sum(1).unsqueeze(0)
    rows = max(1, _GEMM_CHUNK_ELEMENTS // k)
    parts = []
    for i in range(0, n, rows):  # ||c||^2 - 2 x.c per row; ||x||^2 does not change the argmin
        xf = x[i:i + rows].detach().to(acc)
        parts.append(torch.addmm(cnorm, xf, cf.t(), beta=1.0, alpha=-2.0).argmin(1))
    indices = torch.cat(parts)
    finite = torch.isfinite(x).all(1)
    indices = torch.where(finite, indices, -1)
    diff = x.to(acc) - codebook.to(acc)[indices.clamp_min(0)]
    dist = torch.where(finite, diff.pow(2).sum(1), float("nan"))
    return indices, dist.to(x.dtype)


if _extension.built():

    @torch.library.register_fake("tsvq::nearest_code")
    def _(x, codebook):
        n = x.shape[0]
        return x.new_empty(n, dtype=torch.long), x.new_empty(n)

    def _setup_context(ctx, inputs, output):
        x, codebook = inputs
        indices, _ = output
        ctx.mark_non_differentiable(indices)
        ctx.save_for_backward(x, codebook, indices)

    def _backward(ctx, grad_indices, grad_dist):
        x, codebook, indices = ctx.saved_tensors
        grad_x = grad_codebook = None
        if grad_dist is None:
            return None, None
        safe = indices.clamp_min(0)
        diff = (x - codebook.index_select(0, safe)) * (2 * grad_dist).unsqueeze(1)
        if ctx.needs_input_grad[0]:
            grad_x = diff
        if ctx.needs_input_grad[1]:
            grad_codebook = torch.zeros_like(codebook).index_add_(0, safe, -diff)
        return grad_x, grad_codebook

    torch.library.register_autograd("tsvq::nearest_code", _backward, setup_context=_setup_context)
