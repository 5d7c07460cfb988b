"""Nearest-codeword searches: ``torch.ops.tsvq.nearest_code`` and ``torch.ops.tsvq.nearest_code_topk``."""
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


# The largest k of the CUDA top-k kernel (csrc/ops/nearest_code/nearest_code_topk.cuh, kMaxK).
_CUDA_TOPK_MAX_K = 64


def nearest_code_topk(x: torch.Tensor, codebook: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices and squared L2 distances of the ``k`` nearest codewords of every row of ``x``,
    nearest first (the candidates of a beam search over residual codebooks, as
    ``vector_quantize_pytorch``'s ``topk``).

    ``indices[n, i]`` is the code of rank i (ties to the lower index) and ``dist[n, i] =
    max(||x_n||^2 + ||c||^2 - 2 x_n.c, 0)`` its distance, without an N x K buffer: the CPU kernel
    runs :func:`nearest_code`'s cache-blocked sweep keeping a sorted list of k per row (OpenMP over
    rows); the CUDA kernel (k <= 64) runs its tiled GEMM and merges each 64-code tile into a list
    per row. ``k = 1`` gives :func:`nearest_code` with a trailing dimension.

    Args:
        x: Tensor[N, D], float32/float64/float16/bfloat16. Any strides.
        codebook: Tensor[K, D], same dtype and device, K >= 1.
        k: number of codes per row, 1 <= k <= K.

    Returns:
        indices: int64 Tensor[N, k].
        dist: Tensor[N, k], dtype of ``x`` (half inputs with float32 accumulation).
            Differentiable with respect to ``x`` and ``codebook`` (d dist[n, i] / dx_n = 2 (x_n - c));
            ``indices`` is not.

    Raises:
        ValueError: as :func:`nearest_code`, or k outside [1, K].
        TypeError: as :func:`nearest_code`, or a k that is not an int.

    Note:
        On CUDA, NaN/inf rows get indices -1 and dist NaN, as :func:`nearest_code`. The library
        path there (chunked ``addmm`` + ``topk``: the default until a GPU benchmark measures the
        kernel, and for k > 64) orders tied codes as ``torch.topk`` does.
    """
    _checks.check_nearest_code_topk(x, codebook, k)
    if x.is_cuda and (k > _CUDA_TOPK_MAX_K or not _cuda_defaults.use_cuda_kernel("nearest_code_topk")):
        return nearest_code_topk_gemm(x, codebook, k)
    if _extension.has_ops(x.device):
        if x.device.type == "cpu" and not torch.compiler.is_compiling():
            _checks.check_finite_on_cpu(x, codebook)
        return torch.ops.tsvq.nearest_code_topk(x, codebook, k)
    _extension.warn_if_missing(x.device)
    return reference.nearest_code_topk(x, codebook, k)


def nearest_code_topk_gemm(x: torch.Tensor, codebook: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`nearest_code_topk` by ``addmm`` and ``topk`` over chunks of rows (at most ``2^24``
    distances in memory at a time, no host synchronisation): the library path on CUDA. Same
    contract as :func:`nearest_code_topk`, except that the data is not checked (a NaN/inf row gets
    indices -1 and distances NaN) and ties are ordered as ``torch.topk`` orders them."""
    _checks.check_nearest_code_topk(x, codebook, k)
    n, K = x.shape[0], codebook.shape[0]
    if n == 0:
        return x.new_empty(0, k, dtype=torch.long), x.new_empty(0, k)
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    cf = codebook.detach().to(acc)
    cnorm = cf.pow(2).sum(1).unsqueeze(0)
    rows = max(1, _GEMM_CHUNK_ELEMENTS // K)
    parts = [torch.addmm(cnorm, x[i:i + rows].detach().to(acc), cf.t(), beta=1.0, alpha=-2.0)
             .topk(k, dim=1, largest=False).indices for i in range(0, n, rows)]
    finite = torch.isfinite(x).all(1, keepdim=True)
    indices = torch.where(finite, torch.cat(parts), -1)
    dist = _topk_dist(x.to(acc), codebook.to(acc), indices)
    return indices, torch.where(finite, dist, float("nan")).to(x.dtype)


def _topk_dist(x: torch.Tensor, codebook: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """||x_n - c_{indices[n, i]}||^2 as Tensor[N, k] (-1 read as code 0), differentiable."""
    n, k = indices.shape
    chosen = codebook.index_select(0, indices.clamp_min(0).reshape(-1)).view(n, k, -1)
    return (x.unsqueeze(1) - chosen).pow(2).sum(-1)


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

    @torch.library.register_fake("tsvq::nearest_code_topk")
    def _(x, codebook, k):
        n = x.shape[0]
        return x.new_empty(n, k, dtype=torch.long), x.new_empty(n, k)

    def _setup_context_topk(ctx, inputs, output):
        x, codebook, _ = inputs
        indices, _ = output
        ctx.mark_non_differentiable(indices)
        ctx.save_for_backward(x, codebook, indices)

    def _backward_topk(ctx, grad_indices, grad_dist):
        x, codebook, indices = ctx.saved_tensors
        if grad_dist is None:
            return None, None, None
        n, k = indices.shape
        safe = indices.clamp_min(0).reshape(-1)
        # d dist[n, i] = 2 (x_n - c_i) . (dx_n - dc_i), weighted by grad_dist[n, i]
        diff = (x.unsqueeze(1) - codebook.index_select(0, safe).view(n, k, -1)) * (2 * grad_dist).unsqueeze(2)
        grad_x = diff.sum(1) if ctx.needs_input_grad[0] else None
        grad_codebook = None
        if ctx.needs_input_grad[1]:
            grad_codebook = torch.zeros_like(codebook).index_add_(0, safe, -diff.reshape(n * k, -1))
        return grad_x, grad_codebook, None

    torch.library.register_autograd("tsvq::nearest_code_topk", _backward_topk, setup_context=_setup_context_topk)
