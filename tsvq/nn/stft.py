"""``STFT`` / ``ISTFT`` modules: the tsvq transforms with the window held as a buffer."""
from __future__ import annotations

import torch
from torch import nn

from ..ops.stft import PAD_MODES, from_time_frequency, istft, stft, to_time_frequency


def make_window(window: str | torch.Tensor | None, win_length: int) -> torch.Tensor:
    """``"hann"`` (periodic, as ``torch.hann_window``), ``None`` (rectangular) or a given Tensor[win_length]."""
    if window is None:
        return torch.ones(win_length)
    if isinstance(window, str):
        if window == "hann":
            return torch.hann_window(win_length)
        raise ValueError(f"window must be 'hann', None (rectangular) or a Tensor[win_length], got {window!r}")
    if not isinstance(window, torch.Tensor) or window.shape != (win_length,):
        raise ValueError(f"window must be a Tensor[win_length = {win_length}], got {window!r}")
    return window.detach().clone()


class _Transform(nn.Module):
    def __init__(self, n_fft: int, hop_length: int | None, win_length: int | None, window, center: bool,
                 normalized: bool, onesided: bool, stacked: bool):
        super().__init__()
        if not isinstance(n_fft, int) or n_fft < 1:
            raise ValueError(f"n_fft must be an int >= 1, got {n_fft!r}")
        self.n_fft = n_fft
        self.hop_length = n_fft // 4 if hop_length is None else hop_length
        if self.hop_length < 1:
            raise ValueError(f"hop_length must be >= 1 (the default n_fft // 4 is 0 for n_fft = {n_fft})")
        self.win_length = n_fft if win_length is None else win_length
        if not 1 <= self.win_length <= n_fft:
            raise ValueError(f"win_length must be in [1, n_fft = {n_fft}], got {self.win_length}")
        self.center, self.normalized, self.onesided, self.stacked = center, normalized, onesided, stacked
        self.register_buffer("window", make_window(window, self.win_length), persistent=False)

    @property
    def n_freqs(self) -> int:
        """F, the number of frequency bins."""
        return self.n_fft // 2 + 1 if self.onesided else self.n_fft

    def n_frames(self, length: int) -> int:
        """T, the number of frames of a series of ``length`` samples."""
        pad = self.n_fft // 2 if self.center else 0
        return 1 + (length + 2 * pad - self.n_fft) // self.hop_length

    def extra_repr(self) -> str:
        return (f"n_fft={self.n_fft}, hop_length={self.hop_length}, win_length={self.win_length}, "
                f"center={self.center}, normalized={self.normalized}, onesided={self.onesided}, stacked={self.stacked}")


class STFT(_Transform):
    """Batched multichannel STFT, ``Tensor[B, C, L]`` -> complex ``Tensor[B, C, F, T]``.

    With ``stacked=True`` the output is real ``Tensor[B, 2C, F, T]`` (channel 2c real, 2c+1
    imaginary: the TimeVQVAE layout). Semantics of :func:`tsvq.ops.stft` (``torch.stft``); the
    window (``"hann"`` periodic by default, ``None`` for rectangular, or a Tensor[win_length]) is
    a non-persistent buffer, so it follows ``.to(device)`` and is rebuilt from the constructor
    arguments on load.

    Args:
        n_fft, hop_length (default n_fft // 4), win_length (default n_fft), window, center
        (default True), pad_mode (default "reflect"), normalized, onesided (default True), stacked.

    Raises:
        ValueError: as :func:`tsvq.ops.stft`, at construction for the parameters.
    """

    def __init__(self, n_fft: int, hop_length: int | None = None, win_length: int | None = None,
                 window: str | torch.Tensor | None = "hann", center: bool = True, pad_mode: str = "reflect",
                 normalized: bool = False, onesided: bool = True, stacked: bool = False):
        super().__init__(n_fft, hop_length, win_length, window, center, normalized, onesided, stacked)
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        self.pad_mode = pad_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn = to_time_frequency if self.stacked else stft
        return fn(x, self.n_fft, self.hop_length, self.win_length, self.window, self.center, self.pad_mode,
                  self.normalized, self.onesided)


class ISTFT(_Transform):
    """Inverse of :class:`STFT`: complex ``Tensor[B, C, F, T]`` (or real ``[B, 2C, F, T]`` when
    ``stacked``) -> ``Tensor[B, C, length]``. Semantics of :func:`tsvq.ops.istft`
    (``torch.istft``), without a host synchronisation: NOLA is checked once per window on the host.

    ``forward(spec, length=None)``: pass ``length`` to restore the exact input length (odd lengths).
    """

    def __init__(self, n_fft: int, hop_length: int | None = None, win_length: int | None = None,
                 window: str | torch.Tensor | None = "hann", center: bool = True, normalized: bool = False,
                 onesided: bool = True, stacked: bool = False):
        super().__init__(n_fft, hop_length, win_length, window, center, normalized, onesided, stacked)

    def forward(self, spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
        fn = from_time_frequency if self.stacked else istft
        return fn(spec, self.n_fft, self.hop_length, self.win_length, self.window, self.center, self.normalized,
                  self.onesided, length)
