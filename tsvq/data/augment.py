"""Batched, seeded time-series augmentations for the SSL views (NC-VQVAE, BT-VQVAE).

Every function takes ``x: Tensor[B, C, L]`` (float, any device) and a ``torch.Generator`` on any
device (or None for the global one; see :mod:`tsvq._random`), draws one set of random parameters
per series, and returns a new tensor; nothing loops over the batch in Python. Sources: Wen et al. 2020
("Time series data augmentation for deep learning: a survey") for jitter, amplitude resize,
flip, slope, window warp and slice-and-shuffle; Lee & Aune 2021 (VIbCReg) for the STFT phase
shift; the parameters of the presets are those of SPEC section 4 (Mathisen & Lokna 2024,
NC-VQVAE, and the BT-VQVAE thesis).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .. import _random
from ..ops import from_time_frequency, to_time_frequency


def _check(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise ValueError(f"x must be Tensor[B, C, L], got {getattr(x, 'shape', type(x))}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a float tensor, got {x.dtype}")


def _rand(shape, x, g):
    return _random.rand(*shape, generator=g, device=x.device, dtype=x.dtype)


def _randn(shape, x, g):
    return _random.randn(*shape, generator=g, device=x.device, dtype=x.dtype)


def jitter(x: torch.Tensor, sigma: float = 0.1, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x + N(0, sigma^2)`` independently per sample (sensor noise)."""
    _check(x)
    return x + sigma * _randn(x.shape, x, generator)


def gaussian_noise(x: torch.Tensor, sigma: float = 0.05, generator: torch.Generator | None = None) -> torch.Tensor:
    """The NC-VQVAE ``gauss`` set: additive ``N(0, sigma^2)`` noise per sample, sigma 0.05."""
    return jitter(x, sigma, generator)


def amplitude_resize(x: torch.Tensor, sigma: float = 0.2, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x * (1 + N(0, sigma^2))`` with one factor per series."""
    _check(x)
    return x * (1 + sigma * _randn((x.shape[0], 1, 1), x, generator))


def flip(x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Reverse the series in time with probability ``p`` (per series)."""
    _check(x)
    mask = _rand((x.shape[0], 1, 1), x, generator) < p
    return torch.where(mask, x.flip(-1), x)


def slope(x: torch.Tensor, max_slope: float = 0.01, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add a linear trend ``a * t`` (t in samples), ``a ~ U(-max_slope, max_slope)`` per series."""
    _check(x)
    a = (2 * _rand((x.shape[0], 1, 1), x, generator) - 1) * max_slope
    t = torch.arange(x.shape[-1], device=x.device, dtype=x.dtype)
    return x + a * t


def stft_phase_shift(x: torch.Tensor, max_shift: float = math.pi / 4, n_fft: int = 8, hop_length: int = 2,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Rotate the phase of every frequency bin by ``U(-max_shift, max_shift)`` (per series and bin,
    constant over frames), through the tsvq STFT (Hann window) and back to the input length."""
    _check(x)
    B, C, L = x.shape
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    u = to_time_frequency(x, n_fft, hop_length, window=window)  # [B, 2C, F, T]
    F = u.shape[2]
    phi = (2 * _rand((B, C, F, 1), x, generator) - 1) * max_shift
    re, im = u[:, 0::2], u[:, 1::2]
    cos, sin = torch.cos(phi), torch.sin(phi)
    rot = torch.stack([re * cos - im * sin, re * sin + im * cos], dim=2).reshape(B, 2 * C, F, -1)
    return from_time_frequency(rot, n_fft, hop_length, window=window, length=L).to(x.dtype)


def _interp(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of x [B, C, L] at fractional positions pos [B, L'] (clamped)."""
    L = x.shape[-1]
    pos = pos.clamp(0, L - 1)
    lo = pos.floor().long().clamp(max=L - 1)
    hi = (lo + 1).clamp(max=L - 1)
    frac = (pos - lo).unsqueeze(1).to(x.dtype)
    idx_lo = lo.unsqueeze(1).expand(-1, x.shape[1], -1)
    idx_hi = hi.unsqueeze(1).expand(-1, x.shape[1], -1)
    return torch.gather(x, 2, idx_lo) * (1 - frac) + torch.gather(x, 2, idx_hi) * frac


def window_warp(x: torch.Tensor, window_ratio: float = 0.4, scales: tuple[float, float] = (0.9, 2.0),
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Stretch (or squeeze) a random window of ``window_ratio * L`` samples by a factor
    ``U(*scales)`` and resample the whole warped series back to L (Le Guennec et al. 2016)."""
    _check(x)
    B, _, L = x.shape
    w = max(1, int(round(window_ratio * L)))
    start = torch.floor(_rand((B, 1), x, generator) * (L - w + 1))
    s = scales[0] + (scales[1] - scales[0]) * _rand((B, 1), x, generator)
    total = L + w * (s - 1)  # warped length
    u = torch.arange(L, device=x.device, dtype=x.dtype).unsqueeze(0) * (total - 1) / max(L - 1, 1)
    # inverse of the piecewise-linear map t -> t (t < start), start + s (t - start), ... + (s - 1) w
    src = torch.where(u < start, u, torch.where(u < start + s * w, start + (u - start) / s, u - (s - 1) * w))
    return _interp(x, src)


def slice_and_shuffle(x: torch.Tensor, n_segments: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Cut each series at ``n_segments - 1`` random points and concatenate the segments in a
    random order (the NC-VQVAE ``slice`` set)."""
    _check(x)
    B, C, L = x.shape
    if not 1 <= n_segments <= L:
        raise ValueError(f"n_segments must be in [1, L = {L}], got {n_segments}")
    # distinct cut points in 1..L-1
    keys = _rand((B, L - 1), x, generator)
    cuts = torch.sort(torch.topk(keys, n_segments - 1, dim=1).indices + 1, dim=1).values
    zero = torch.zeros(B, 1, dtype=torch.long, device=x.device)
    bounds = torch.cat([zero, cuts, torch.full_like(zero, L)], 1)
    starts, lengths = bounds[:, :-1], bounds[:, 1:] - bounds[:, :-1]
    perm = torch.argsort(_rand((B, n_segments), x, generator), dim=1)
    p_start, p_len = torch.gather(starts, 1, perm), torch.gather(lengths, 1, perm)
    ends = torch.cumsum(p_len, 1)
    o = torch.arange(L, device=x.device).unsqueeze(0).expand(B, -1).contiguous()
    k = torch.searchsorted(ends, o, right=True)
    src = torch.gather(p_start, 1, k) + o - torch.gather(ends - p_len, 1, k)
    return torch.gather(x, 2, src.unsqueeze(1).expand(-1, C, -1))


def random_crop(x: torch.Tensor, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random window of ``length`` samples per series: ``Tensor[B, C, length]``."""
    _check(x)
    B, C, L = x.shape
    if not 1 <= length <= L:
        raise ValueError(f"length must be in [1, L = {L}], got {length}")
    start = torch.floor(_rand((B, 1), x, generator) * (L - length + 1)).long()
    idx = start + torch.arange(length, device=x.device).unsqueeze(0)
    return torch.gather(x, 2, idx.unsqueeze(1).expand(-1, C, -1))


def _chain(*fns: Callable) -> Callable:
    def apply(x, generator=None):
        for fn in fns:
            x = fn(x, generator=generator)
        return x
    return apply


PRESETS: dict[str, Callable] = {
    # NC-VQVAE sets (SPEC section 4)
    "warp": _chain(lambda x, generator: window_warp(x, 0.4, (0.9, 2.0), generator),
                   lambda x, generator: amplitude_resize(x, 0.2, generator)),
    "slice": _chain(lambda x, generator: slice_and_shuffle(x, 4, generator)),
    "gauss": _chain(lambda x, generator: gaussian_noise(x, 0.05, generator)),
    # BT-VQVAE: two independently augmented views
    "bt": _chain(lambda x, generator: amplitude_resize(x, 0.1, generator),
                 lambda x, generator: flip(x, 0.5, generator),
                 lambda x, generator: slope(x, 0.01, generator),
                 lambda x, generator: stft_phase_shift(x, math.pi / 4, generator=generator),
                 lambda x, generator: jitter(x, 0.1, generator)),
}


def augment(x: torch.Tensor, preset: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the named augmentation set: ``warp``, ``slice``, ``gauss`` (NC-VQVAE) or ``bt`` (BT-VQVAE).

    Raises:
        ValueError: unknown preset (the message lists the known ones), bad x.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown augmentation preset {preset!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[preset](x, generator=generator)


@dataclass(frozen=True)
class ViewSpec:
    """The two views an SSL model trains on (``model.view_spec``; made by :func:`make_views`).

    Attributes:
        augmentation: preset of :data:`PRESETS` applied to each augmented view.
        with_original: the first view is the series itself (NC-VQVAE: original + augmented) instead
            of a second independent draw (BT-VQVAE, SimCLR, BYOL, ...: two augmented views).

    Raises:
        ValueError: unknown ``augmentation`` (the message lists the known ones).
    """

    augmentation: str
    with_original: bool = False

    def __post_init__(self):
        if self.augmentation not in PRESETS:
            raise ValueError(f"augmentation must be one of {sorted(PRESETS)}, got {self.augmentation!r}")


def make_views(x: torch.Tensor, spec: ViewSpec,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The two views of ``x: Tensor[B, C, L]`` (B >= 2) for ``spec``: ``(x, augment(x))`` when
    ``spec.with_original`` (the first view is ``x`` itself, the same object), else two independent
    draws ``(augment(x), augment(x))``, drawn in that order from ``generator``.

    Raises:
        ValueError: bad ``x`` or a batch of fewer than 2 series (the SSL losses compare series
            across the batch).
    """
    _check(x)
    if x.shape[0] < 2:
        raise ValueError(f"x: SSL views need a batch of at least 2 series, got {x.shape[0]}")
    first = x if spec.with_original else augment(x, spec.augmentation, generator)
    return first, augment(x, spec.augmentation, generator)
