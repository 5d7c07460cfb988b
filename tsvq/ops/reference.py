"""Pure-PyTorch reference of every tsvq op.

These are the test oracle, the fallback when ``tsvq._C`` is missing, and the benchmark
baseline. They are written for clarity, not memory: ``nearest_code`` materialises the N x K
distance matrix, ``code_stats`` uses ``index_add_``.
"""
from __future__ import annotations

import torch

from . import _checks


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_data(ok: torch.Tensor, error: type[Exception], message: str) -> None:
    """Raise ``error(message)`` when the 0-d bool tensor ``ok`` is False (a check on the data, so a
    host synchronisation). Under torch.compile, where a data-dependent branch cannot be traced
    with fullgraph=True, the check becomes an in-graph assertion (RuntimeError with the same
    message when the compiled graph runs) instead of being dropped."""
    if torch.compiler.is_compiling():
        torch._assert_async(ok, message)
    elif not bool(ok):
        raise error(message)


def nearest_code(x: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared-L2 nearest codeword: ``argmin_k ||x_n - c_k||^2`` via addmm + argmin.

    Args:
        x: Tensor[N, D], float.
        codebook: Tensor[K, D], same dtype and device.

    Returns:
        (indices int64[N], dist Tensor[N] in x's dtype). Ties go to the lowest index.

    Raises:
        ValueError: shapes, devices, K < 1, or NaN/inf in x or codebook (checked on the data,
            so this reference synchronises with the device).
        TypeError: non-float dtypes or mismatched dtypes.
    """
    _checks.check_nearest_code(x, codebook)
    n = x.shape[0]
    if n == 0:
        return x.new_empty(0, dtype=torch.long), x.new_empty(0)
    acc = _acc_dtype(x.dtype)
    xf, cf = x.to(acc), codebook.to(acc)
    xnorm = xf.pow(2).sum(1)
    _check_data(torch.isfinite(cf).all(), ValueError, "codebook contains NaN or inf")
    _check_data(torch.isfinite(xnorm).all(), ValueError,
                "x contains NaN or inf: the nearest codeword of a non-finite vector is undefined")
    # ||c||^2 - 2 x.c, minimised over k; ||x||^2 added afterwards (does not change the argmin).
    partial = torch.addmm(cf.pow(2).sum(1).unsqueeze(0), xf, cf.t(), beta=1.0, alpha=-2.0)
    best, indices = partial.min(dim=1)
    dist = (xnorm + best).clamp_min(0)
    return indices, dist.to(x.dtype)


def nearest_code_topk(x: torch.Tensor, codebook: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest codewords of every row, nearest first, via addmm + a stable sort (ties to
    the lower index): (indices int64[N, k], dist Tensor[N, k] squared L2 in x's dtype).

    Raises:
        ValueError: as :func:`nearest_code`, or k outside [1, K].
        TypeError: as :func:`nearest_code`, or a k that is not an int.
    """
    _checks.check_nearest_code_topk(x, codebook, k)
    if x.shape[0] == 0:
        return x.new_empty(0, k, dtype=torch.long), x.new_empty(0, k)
    acc = _acc_dtype(x.dtype)
    xf, cf = x.to(acc), codebook.to(acc)
    xnorm = xf.pow(2).sum(1, keepdim=True)
    _check_data(torch.isfinite(cf).all(), ValueError, "codebook contains NaN or inf")
    _check_data(torch.isfinite(xnorm).all(), ValueError,
                "x contains NaN or inf: the nearest codeword of a non-finite vector is undefined")
    partial = torch.addmm(cf.pow(2).sum(1).unsqueeze(0), xf, cf.t(), beta=1.0, alpha=-2.0)
    best, indices = partial.sort(dim=1, stable=True)
    return indices[:, :k].contiguous(), (xnorm + best[:, :k]).clamp_min(0).to(x.dtype)


def nearest_code_topk_cdist(x: torch.Tensor, codebook: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.cdist`` + ``topk`` baseline (what research code does for beam search). Benchmarks only."""
    d = torch.cdist(x.unsqueeze(0), codebook.unsqueeze(0)).squeeze(0)
    best, indices = d.topk(k, dim=1, largest=False)
    return indices, best.pow(2)


def nearest_code_cdist(x: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.cdist`` + ``argmin`` baseline (what most research code does). Benchmarks only."""
    d = torch.cdist(x.unsqueeze(0), codebook.unsqueeze(0)).squeeze(0)
    best, indices = d.min(dim=1)
    return indices, best.pow(2)


def code_stats(x: torch.Tensor, indices: torch.Tensor, K: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-code counts ``Tensor[K]`` and sums ``Tensor[K, D]`` (float64 for float64 x, else float32).

    Raises:
        IndexError: an index outside ``[0, K)`` (checked on the data).
    """
    _checks.check_code_stats(x, indices, K)
    acc = _acc_dtype(x.dtype)
    if indices.numel():
        _check_data((indices.min() >= 0) & (indices.max() < K), IndexError,
                    f"indices out of range for a codebook of K = {K} codes")
    counts = torch.zeros(K, dtype=acc, device=x.device)
    counts.index_add_(0, indices, torch.ones_like(indices, dtype=acc))
    sums = torch.zeros(K, x.shape[1], dtype=acc, device=x.device)
    sums.index_add_(0, indices, x.to(acc))
    return counts, sums


def ema_apply_(cluster_size, embed_sum, codebook, counts, sums, decay: float, eps: float) -> None:
    """The O(K D) part of the EMA update from (possibly all-reduced) statistics, in place.

    van den Oord et al. 2017, appendix A.1 (eqs. 6-8), with Laplace-smoothed cluster sizes.
    """
    K = codebook.shape[0]
    cluster_size.mul_(decay).add_(counts.to(cluster_size.dtype), alpha=1.0 - decay)
    embed_sum.mul_(decay).add_(sums.to(embed_sum.dtype), alpha=1.0 - decay)
    total = cluster_size.sum()
    smoothed = (cluster_size + eps) / (total + K * eps) * total
    codebook.copy_(embed_sum / smoothed.unsqueeze(1))


def ema_codebook_update_(cluster_size, embed_sum, codebook, x, indices, decay: float, eps: float):
    """EMA codebook update in place; returns the batch's counts ``Tensor[K]``. See
    :func:`tsvq.ops.ema_codebook_update_`."""
    _checks.check_ema_state(cluster_size, embed_sum, codebook, x, indices, decay, eps)
    counts, sums = code_stats(x, indices, codebook.shape[0])
    ema_apply_(cluster_size, embed_sum, codebook, counts, sums, float(decay), float(eps))
    return counts


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 0.005, eps: float = 1e-5,
                      unbiased: bool = False, scale_by_dim: bool = False) -> torch.Tensor:
    """Barlow Twins loss with the explicit D x D cross-correlation matrix (Zbontar et al. 2021,
    eq. 1; facebookresearch/barlowtwins semantics: columns standardised like
    ``BatchNorm1d(affine=False)``). See :func:`tsvq.ops.barlow_twins_loss`."""
    _checks.check_barlow_twins(z1, z2, lambd, eps)
    n, d = z1.shape
    acc = _acc_dtype(z1.dtype)

    def standardise(z):
        z = z.to(acc)
        return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=unbiased) + eps)

    c = standardise(z1).t() @ standardise(z2) / n
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    loss = on_diag + lambd * off_diag
    return (loss / d if scale_by_dim else loss).to(z1.dtype)


def stft(x: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor, center: bool = True,
         pad_mode: str = "reflect", normalized: bool = False, onesided: bool = True) -> torch.Tensor:
    """``torch.stft(..., return_complex=True)`` over every channel of ``x: Tensor[B, C, L]``.

    ``window`` is already padded to ``n_fft``. Returns complex ``Tensor[B, C, F, T]``.
    """
    B, C, L = x.shape
    z = torch.stft(x.reshape(B * C, L), n_fft, hop_length, n_fft, window, center, pad_mode,
                   normalized, onesided, return_complex=True)
    return z.reshape(B, C, *z.shape[-2:])


def istft(spec: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor, center: bool = True,
          normalized: bool = False, onesided: bool = True, length: int | None = None) -> torch.Tensor:
    """``torch.istft`` over every channel of complex ``spec: Tensor[B, C, F, T]`` -> ``[B, C, L]``.

    Note that torch.istft reads the window envelope back to the host (NOLA check).
    """
    B, C, F, T = spec.shape
    y = torch.istft(spec.reshape(B * C, F, T), n_fft, hop_length, n_fft, window, center, normalized,
                    onesided, length, return_complex=False)
    return y.reshape(B, C, y.shape[-1])


def to_time_frequency(x: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor,
                      center: bool = True, pad_mode: str = "reflect", normalized: bool = False,
                      onesided: bool = True) -> torch.Tensor:
    """TimeVQVAE layout: ``Tensor[B, C, L]`` -> real ``Tensor[B, 2C, F, T]`` (2c real, 2c+1 imag)."""
    z = torch.view_as_real(stft(x, n_fft, hop_length, window, center, pad_mode, normalized, onesided))
    B, C, F, T, _ = z.shape
    return z.permute(0, 1, 4, 2, 3).reshape(B, 2 * C, F, T)


def from_time_frequency(u: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor,
                        center: bool = True, normalized: bool = False, onesided: bool = True,
                        length: int | None = None) -> torch.Tensor:
    """Inverse of :func:`to_time_frequency`: real ``Tensor[B, 2C, F, T]`` -> ``Tensor[B, C, L]``."""
    B, C2, F, T = u.shape
    z = torch.view_as_complex(u.reshape(B, C2 // 2, 2, F, T).permute(0, 1, 3, 4, 2).contiguous())
    return istft(z, n_fft, hop_length, window, center, normalized, onesided, length)
