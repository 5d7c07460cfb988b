"""Structural similarity for 1-D series: SSIM (Wang, Bovik, Sheikh & Simoncelli 2004, eq. 13) and
multi-scale SSIM (Wang, Simoncelli & Bovik 2003, eq. 7) over sliding Gaussian windows along time.

Differentiable (used as the MS-SSIM-VAE reconstruction loss) and usable as a metric.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _gaussian_window(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    t = torch.arange(size, device=like.device, dtype=like.dtype) - (size - 1) / 2
    w = torch.exp(-(t ** 2) / (2 * sigma ** 2))
    return (w / w.sum()).view(1, 1, size)


def _check(x: torch.Tensor, y: torch.Tensor, data_range: float, win_size: int) -> None:
    if x.shape != y.shape or x.dim() != 3:
        raise ValueError(f"x and y must be Tensor[B, C, L] of the same shape, got {list(x.shape)} and {list(y.shape)}")
    if not (x.is_floating_point() and y.is_floating_point()):
        raise TypeError("x and y must be float tensors")
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
    if win_size < 1 or win_size % 2 == 0:
        raise ValueError(f"win_size must be odd and >= 1, got {win_size}")
    if x.shape[-1] < win_size:
        raise ValueError(f"series of length {x.shape[-1]} are shorter than win_size={win_size}")


def _ssim_parts(x, y, data_range, win_size, sigma):
    C = x.shape[1]
    w = _gaussian_window(win_size, sigma, x).expand(C, 1, win_size)
    filt = lambda t: F.conv1d(t, w, groups=C)  # noqa: E731 - valid windows only
    mu_x, mu_y = filt(x), filt(y)
    var_x = filt(x * x) - mu_x ** 2
    var_y = filt(y * y) - mu_y ** 2
    cov = filt(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    luminance = (2 * mu_x * mu_y + c1) / (mu_x ** 2 + mu_y ** 2 + c1)
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    return luminance, cs


def ssim_1d(x: torch.Tensor, y: torch.Tensor, data_range: float, win_size: int = 11, sigma: float = 1.5):
    """Mean SSIM per series, ``Tensor[B]`` (1 for identical series; symmetric in x and y).

    Args:
        x, y: ``Tensor[B, C, L]`` float. data_range: the dynamic range R of the data (max - min),
            giving C1 = (0.01 R)^2, C2 = (0.03 R)^2. win_size (odd, default 11) / sigma (1.5): the
            Gaussian window (valid positions only, no padding).

    Raises:
        ValueError: shape mismatch, wrong rank, data_range <= 0, even window, L < win_size.
    """
    _check(x, y, data_range, win_size)
    luminance, cs = _ssim_parts(x, y, data_range, win_size, sigma)
    return (luminance * cs).mean(dim=(1, 2))


def ms_ssim_scales(length: int, win_size: int = 11, max_scales: int = 5) -> int:
    """Number of MS-SSIM scales for series of ``length``: the largest M <= 5 with
    ``length // 2^(M-1) >= win_size`` (at least 1)."""
    m = 1
    while m < max_scales and length // (2 ** m) >= win_size:
        m += 1
    return m


def ms_ssim_1d(x: torch.Tensor, y: torch.Tensor, data_range: float, win_size: int = 11, sigma: float = 1.5,
               weights: tuple[float, ...] = MS_SSIM_WEIGHTS):
    """Multi-scale SSIM per series, ``Tensor[B]``: ``l_M^{w_M} * prod_j cs_j^{w_j}`` over scales
    obtained by average pooling by 2 (Wang, Simoncelli & Bovik 2003, eq. 7; default weights
    0.0448, 0.2856, 0.3001, 0.2363, 0.1333).

    Series too short for five scales (``L // 16 < win_size``) use the first M scales that fit
    (:func:`ms_ssim_scales`) with their weights renormalised to sum to 1. Negative contrast-
    structure terms are clamped to a small positive value before the fractional powers (as in
    common implementations), so the result stays real and differentiable.

    Raises:
        ValueError: as :func:`ssim_1d`.
    """
    _check(x, y, data_range, win_size)
    m = ms_ssim_scales(x.shape[-1], win_size, len(weights))
    w = torch.tensor(weights[:m], dtype=x.dtype, device=x.device)
    w = w / w.sum()
    out = torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
    for j in range(m):
        luminance, cs = _ssim_parts(x, y, data_range, win_size, sigma)
        cs_mean = cs.mean(dim=(1, 2)).clamp_min(1e-6)
        if j == m - 1:
            out = out * ((luminance * cs).mean(dim=(1, 2)).clamp_min(1e-6)) ** w[j]
        else:
            out = out * cs_mean ** w[j]
            x, y = F.avg_pool1d(x, 2), F.avg_pool1d(y, 2)
    return out
