"""Nearest-codeword search: ``torch.ops.tsvq.nearest_code``."""
from __future__ import annotations

import math

import torch

from .. import _extension
from . import _checks, reference


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
    if _extension.has_ops(x.device):
        if x.device.type == "cpu" and not torch.compiler.is_compiling():
            _check_finite_on_cpu(x, codebook)
        return torch.ops.tsvq.nearest_code(x, codebook)
    _extension.warn_if_missing(x.device)
    return reference.nearest_code(x, codebook)


def _check_finite_on_cpu(x: torch.Tensor, codebook: torch.Tensor) -> None:
    """The CPU kernel's NaN/inf errors, raised here first (same words). On the GPU machine of the
    first GPU session (torch 2.11, extension built with that image's GCC) an error raised inside a
    tsvq C++ kernel ended the process with a segmentation fault instead of reaching Python
    (benchmarks/check_cpp_errors.py); a diverging model's NaN is the one such error the public API
    can reach, so it is caught before the kernel.

    One vectorised reduction per tensor: a sum is finite only if every element is (NaN and inf
    propagate through it), so the usual all-finite case costs one read of ``x`` (~1/25 of the
    search at K = 32, D = 64), where ``isfinite(x).all(1)`` costs more than the search itself on
    CPUs (four elementwise passes with temporaries and a row reduction). Only a non-finite sum (a
    bad element, or an overflowing sum of finite ones) takes the elementwise pass, which finds the
    first bad row for the message."""
    for name, t, what in (("codebook", codebook, "code"), ("x", x, "row")):
        if math.isfinite(t.sum().item()):
            continue
        bad = ~torch.isfinite(t).all(1)
        if bool(bad.any()):
            suffix = "" if name == "codebook" else ": the nearest codeword of a non-finite vector is undefined"
            raise ValueError(f"{name} contains NaN or inf (first at {what} {int(bad.nonzero()[0, 0])}){suffix}")


if _extension.built():

    @torch.library.register_fake("tsvq::nearest_code")
    @torch.library.register_fake("tsvq::_nearest_code_tiled")
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
