"""Short-time Fourier transform and its inverse: ``torch.ops.tsvq.stft`` / ``istft``.

Same semantics and numerics as ``torch.stft(..., return_complex=True)`` / ``torch.istft``
(defaults included: ``hop_length = n_fft // 4``, ``win_length = n_fft``, rectangular window
when none is given, a shorter window zero-padded to ``n_fft`` on both sides), applied to every
channel of a batch ``Tensor[B, C, L]``. Differences, all deliberate:

* the inverse never synchronises with the device: the NOLA condition (a non-vanishing window
  envelope, pytorch issue 94718) is checked here on the host from the window alone, once per
  window, instead of from the data;
* gradients are the exact adjoints (the STFT backward is the overlap-add of the windowed inverse
  DFT *without* envelope normalisation, not an ISTFT); the window receives no gradient;
* float16/bfloat16 inputs are computed in float32 and returned as float32 (complex64).

For ``n_fft <= 16`` on CPUs (pocketfft wins above) the kernels evaluate the DFT directly, fused
with the centre padding (by index arithmetic), windowing, normalisation and, in the inverse, the
overlap-add and envelope division; at ``n_fft = 32`` it runs the fused FFT path below on blocks
of 8 frames (framing, real FFT and output layout in one pass, or inverse FFT and overlap-add);
above that the op uses ``torch.fft`` internally, around one-pass framing (centre padding by index
arithmetic, window) and overlap-add (window, envelope division, trimming) loops. On GPUs a power-of-two ``n_fft <= 64`` runs one fused kernel per op:
framing, real FFT (in registers, across the lanes of a warp) and output layout; or inverse FFT,
overlap-add and envelope division (csrc/ops/stft/stft_fft_small.cuh); other n_fft take the
``torch.fft`` path with one framing and one overlap-add kernel (the CUDA direct-DFT kernels were
slower than torch's cuFFT path and are not dispatched; docs/kernels.md). The window
tables (DFT bases, inverse envelope) are cached per window: by value on CPUs, on GPUs by tensor
and version counter (an in-place change rebuilds them; a write through ``.data`` is not seen, as
for autograd's saved tensors).
"""
from __future__ import annotations

import functools
import math
import weakref

import numpy as np
import torch
import torch.nn.functional as F

from .. import _extension
from . import _checks, _cuda_defaults, reference

PAD_MODES = ("constant", "reflect", "replicate", "circular")
_NOLA_EPS = 1e-11  # torch.istft's threshold on the window envelope
_REAL_DTYPE = {torch.complex32: torch.float16, torch.complex64: torch.float32, torch.complex128: torch.float64}


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


_ONES: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}


def _ones(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The default rectangular window, built once per (length, dtype, device) and never written to.

    Built outside inference mode (so autograd may save it later); not cached while tracing or
    under a tensor subclass mode (a fake or functional tensor must not outlive its trace), nor
    while a CUDA graph is being captured (its fill would only run when the graph replays). On CUDA
    the stream that built it is synchronised once before it is cached, so that any stream may
    read it afterwards.
    """
    if torch.compiler.is_compiling():
        return torch.ones(n, dtype=dtype, device=device)
    key = (n, dtype, device)
    window = _ONES.get(key)
    if window is None:
        with torch.inference_mode(False):
            window = torch.ones(n, dtype=dtype, device=device)
        if type(window) is not torch.Tensor or len(_ONES) >= 64:
            return window
        if window.device.type == "cuda":
            if torch.cuda.is_current_stream_capturing():
                return window
            torch.cuda.current_stream(window.device).synchronize()
        _ONES[key] = window
    return window


def _resolve(n_fft, hop_length, win_length, window, dtype, device, ref_name: str):
    """Validate the transform parameters and return (hop_length, window padded to n_fft, window as given)."""
    if not isinstance(n_fft, int) or isinstance(n_fft, bool) or n_fft < 1:
        raise ValueError(f"n_fft must be an int >= 1, got {n_fft!r}")
    if hop_length is None:
        hop_length = n_fft // 4
        if hop_length < 1:
            raise ValueError(f"hop_length defaults to n_fft // 4 = 0 for n_fft = {n_fft}; pass hop_length >= 1")
    if not isinstance(hop_length, int) or isinstance(hop_length, bool) or hop_length < 1:
        raise ValueError(f"hop_length must be an int >= 1, got {hop_length!r}")
    if win_length is None:
        win_length = n_fft
    if not isinstance(win_length, int) or not 1 <= win_length <= n_fft:
        raise ValueError(f"win_length must be an int in [1, n_fft = {n_fft}], got {win_length!r}")
    if window is None:
        given = _ones(win_length, dtype, device)
    else:
        _checks.check_float(window, "window")
        if window.dim() != 1 or window.shape[0] != win_length:
            raise ValueError(f"window must be Tensor[win_length] with win_length = {win_length}, "
                             f"got shape {list(window.shape)}")
        if window.device != device:
            raise ValueError(f"window and {ref_name} must be on the same device, got {window.device} and {device}")
        if window.requires_grad:
            raise ValueError("window: gradients with respect to the window are not supported; pass window.detach()")
        given = window
    w = given if given.dtype == dtype else given.to(dtype)
    if win_length < n_fft:
        left = (n_fft - win_length) // 2
        w = F.pad(w, (left, n_fft - win_length - left))
    return hop_length, w, given


def _check_series(x: torch.Tensor, n_fft: int, center: bool, pad_mode: str) -> None:
    _checks.check_float(x, "x")
    _checks.check_rank(x, 3, "x", "Tensor[B, C, L]")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"x: empty batch, expected B >= 1 and C >= 1, got shape {list(x.shape)}")
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    L = x.shape[2]
    pad = n_fft // 2 if center else 0
    if pad and pad_mode == "reflect" and L <= pad:
        raise ValueError(f"x is too short: center=True with reflect padding pads n_fft // 2 = {pad} samples "
                         f"on each side and needs L > {pad}, got L = {L}")
    if pad and pad_mode == "circular" and L < pad:
        raise ValueError(f"x is too short for circular padding: needs L >= n_fft // 2 = {pad}, got L = {L}")
    if L + 2 * pad < n_fft:
        raise ValueError(f"x is shorter than n_fft: L{' + 2 * (n_fft // 2)' if center else ''} = {L + 2 * pad} "
                         f"< n_fft = {n_fft}")


# id(window) -> (weak reference, version counter, float64 host copy). Keyed by id, not by the
# tensor: a tensor key would be compared with ``==`` on a hash hit, which is elementwise.
_HOST_WINDOWS: dict[int, tuple[weakref.ref, int, np.ndarray]] = {}


def _cached_host_copy(window: torch.Tensor) -> np.ndarray:
    """A float64 host copy of ``window``, made once per tensor and again after an in-place change
    (its version counter moved); the entry goes when the tensor is freed. Inference tensors have
    no version counter and are copied on every call."""
    if window.is_inference():
        return window.detach().double().cpu().numpy().copy()
    key = id(window)
    entry = _HOST_WINDOWS.get(key)
    if entry is not None and entry[0]() is window and entry[1] == window._version:
        return entry[2]

    def forget(ref: weakref.ref, key: int = key) -> None:
        if _HOST_WINDOWS.get(key, (None,))[0] is ref:
            del _HOST_WINDOWS[key]

    entry = (weakref.ref(window, forget), window._version, window.detach().double().cpu().numpy().copy())
    _HOST_WINDOWS[key] = entry
    return entry[2]


def _host_window(window: torch.Tensor) -> np.ndarray:
    """The window's values on the host: free on the CPU, one device-to-host copy per window (and
    per in-place change) elsewhere."""
    if window.device.type == "cpu":
        return window.detach().double().numpy()
    return _cached_host_copy(window)


@functools.lru_cache(maxsize=256)
def _envelope_min(window: bytes | None, n_fft: int, hop: int, win_length: int, n_frames: int, center: bool,
                  length: int | None) -> tuple[float, int]:
    """Smallest |envelope| over the output samples and its position in the output, from the
    window's float64 bytes (None: rectangular); cached, so a repeated call costs a lookup."""
    full = np.zeros(n_fft)
    left = (n_fft - win_length) // 2
    full[left:left + win_length] = 1.0 if window is None else np.frombuffer(window, dtype=np.float64)
    Q = n_fft + hop * (n_frames - 1)
    env = np.zeros(Q)
    idx = (np.arange(n_frames)[:, None] * hop + np.arange(n_fft)[None, :]).ravel()
    np.add.at(env, idx, np.tile(full * full, n_frames))
    start = n_fft // 2 if center else 0
    end = start + length if length is not None else (Q - n_fft // 2 if center else Q)
    seg = env[start:min(end, Q)]
    if seg.size == 0:
        return math.inf, -1
    i = int(np.argmin(np.abs(seg)))
    return float(abs(seg[i])), i


def check_nola(window: torch.Tensor | None, n_fft: int, hop_length: int, win_length: int, n_frames: int,
               center: bool, length: int | None) -> None:
    """Raise if the window envelope ``sum_t w^2[q - t hop]`` vanishes inside the output (NOLA).

    Computed on the host from the window alone (one copy per window, cached), never from data.
    """
    if torch.compiler.is_compiling():
        return
    key = None if window is None else _host_window(window).tobytes()
    lowest, at = _envelope_min(key, n_fft, hop_length, win_length, n_frames, center, length)
    if lowest < _NOLA_EPS:
        raise ValueError(
            f"window, hop_length: the window envelope sum_t w^2[q - t * hop_length] is {lowest:.3g} at sample "
            f"{at} of the output, so the inverse is undefined there (NOLA violated). Use a hop_length "
            f"<= win_length with a window that does not vanish where frames overlap (n_fft = {n_fft}, "
            f"hop_length = {hop_length}, win_length = {win_length}, center = {center}).")


def _use_ops(device: torch.device) -> bool:
    if device.type == "cuda" and not _cuda_defaults.use_cuda_kernel("stft"):
        return False  # torch.stft / torch.istft (cuFFT): faster than this op's CUDA paths as measured
    if _extension.has_ops(device):
        return True
    _extension.warn_if_missing(device)
    return False


def _stft_impl(x, n_fft, hop_length, win_length, window, center, pad_mode, normalized, onesided, stacked):
    _checks.check_tensor(x, "x")
    _check_series(x, n_fft if isinstance(n_fft, int) else 1, center, pad_mode)
    dtype = _compute_dtype(x.dtype)
    hop_length, w, _ = _resolve(n_fft, hop_length, win_length, window, dtype, x.device, "x")
    if x.dtype != dtype:
        x = x.to(dtype)
    if _use_ops(x.device):
        out = torch.ops.tsvq.stft(x, n_fft, hop_length, w, bool(center), pad_mode, bool(normalized),
                                  bool(onesided), bool(stacked))
        return out if stacked else torch.view_as_complex(out)
    if stacked:
        return reference.to_time_frequency(x, n_fft, hop_length, w, center, pad_mode, normalized, onesided)
    return reference.stft(x, n_fft, hop_length, w, center, pad_mode, normalized, onesided)


def _istft_impl(spec, n_fft, hop_length, win_length, window, center, normalized, onesided, length, stacked):
    _checks.check_tensor(spec, "spec")
    if stacked:
        _checks.check_float(spec, "spec")
        _checks.check_rank(spec, 4, "spec", "real Tensor[B, 2C, F, T]")
        if spec.shape[1] % 2:
            raise ValueError(f"spec must have an even number of channels 2C (real, imaginary), got {list(spec.shape)}")
    else:
        if not spec.is_complex():
            raise TypeError(f"spec must be a complex Tensor[B, C, F, T], got {spec.dtype} "
                            "(use from_time_frequency for real/imaginary channels)")
        _checks.check_rank(spec, 4, "spec", "complex Tensor[B, C, F, T]")
    B, _, n_freqs, n_frames = spec.shape
    if B == 0 or spec.shape[1] == 0:
        raise ValueError(f"spec: empty batch, got shape {list(spec.shape)}")
    dtype = _compute_dtype(_REAL_DTYPE.get(spec.dtype, spec.dtype))
    hop_length, w, given = _resolve(n_fft, hop_length, win_length, window, dtype, spec.device, "spec")
    expect = n_fft // 2 + 1 if onesided else n_fft
    if n_freqs != expect:
        raise ValueError(f"spec must have F = {expect} frequency bins for n_fft = {n_fft}, onesided = {onesided}, "
                         f"got F = {n_freqs}")
    if n_frames < 1:
        raise ValueError("spec must have T >= 1 frames")
    if length is not None and (not isinstance(length, int) or length < 0):
        raise ValueError(f"length must be None or an int >= 0, got {length!r}")
    win_length = given.shape[0]
    if hop_length > win_length:
        raise ValueError(f"hop_length must be <= win_length for the inverse (as torch.istft), got hop_length = "
                         f"{hop_length} > win_length = {win_length}: frames leave gaps (NOLA violated)")
    check_nola(None if window is None else given, n_fft, hop_length, win_length, n_frames, center, length)
    if stacked:
        spec = spec.to(dtype)
    else:
        spec = spec.to(torch.complex128 if dtype == torch.float64 else torch.complex64).resolve_conj()
    if _use_ops(spec.device):
        inp = spec if stacked else torch.view_as_real(spec)
        return torch.ops.tsvq.istft(inp, n_fft, hop_length, w, bool(center), bool(normalized), bool(onesided),
                                    -1 if length is None else int(length), bool(stacked))
    if stacked:
        return reference.from_time_frequency(spec, n_fft, hop_length, w, center, normalized, onesided, length)
    return reference.istft(spec, n_fft, hop_length, w, center, normalized, onesided, length)


def stft(x: torch.Tensor, n_fft: int, hop_length: int | None = None, win_length: int | None = None,
         window: torch.Tensor | None = None, center: bool = True, pad_mode: str = "reflect",
         normalized: bool = False, onesided: bool = True) -> torch.Tensor:
    """Short-time Fourier transform of every channel, as ``torch.stft(..., return_complex=True)``.

    ``X[b, c, f, t] = s * sum_n w[n] xpad[b, c, t * hop_length + n] exp(-2 pi i f n / n_fft)`` with
    ``xpad`` the series padded by ``n_fft // 2`` on both sides (``pad_mode``) when ``center`` and
    ``s = n_fft ** -0.5`` when ``normalized`` (1 otherwise).

    Args:
        x: Tensor[B, C, L], float32/float64 (float16/bfloat16 are computed in float32).
        n_fft: DFT size (>= 1). ``n_fft <= 16`` on CPUs uses the direct-DFT kernels, 32 the fused
            FFT kernels, as does a power of two ``<= 64`` on GPUs.
        hop_length: samples between frames, default ``n_fft // 4``.
        win_length: window length (<= n_fft), default ``n_fft``; the window is zero-padded to
            ``n_fft``, centred.
        window: Tensor[win_length] on x's device, default rectangular (ones). Gets no gradient.
        center: pad ``n_fft // 2`` samples on both sides so frame t is centred at ``t * hop_length``.
        pad_mode: "reflect" (default), "constant", "replicate" or "circular".
        normalized: multiply by ``n_fft ** -0.5``.
        onesided: return the ``n_fft // 2 + 1`` non-negative frequencies only.

    Returns:
        complex Tensor[B, C, F, T] (complex64, complex128 for float64), ``F = n_fft // 2 + 1``
        (``n_fft`` when not onesided), ``T = 1 + (L + 2 * pad - n_fft) // hop_length``.
        Differentiable with respect to ``x`` (exact adjoint).

    Raises:
        ValueError: rank != 3, empty batch, n_fft/hop_length/win_length out of range, window of
            the wrong shape or device, series too short for the padding or for n_fft, unknown
            pad_mode.
        TypeError: non-float input.
    """
    return _stft_impl(x, n_fft, hop_length, win_length, window, center, pad_mode, normalized, onesided, False)


def istft(spec: torch.Tensor, n_fft: int, hop_length: int | None = None, win_length: int | None = None,
          window: torch.Tensor | None = None, center: bool = True, normalized: bool = False,
          onesided: bool = True, length: int | None = None) -> torch.Tensor:
    """Inverse STFT by weighted overlap-add, as ``torch.istft`` (Griffin & Lim 1984, eq. 6).

    Each frame is inverted (irfft of the first ``n_fft // 2 + 1`` bins, as torch.istft does, so
    the imaginary parts of the DC and Nyquist bins are ignored), multiplied by the window,
    overlap-added, divided by the envelope ``sum_t w^2[q - t * hop_length]``, trimmed by
    ``n_fft // 2`` on both sides when ``center``, and cut or zero-padded to ``length``.

    Args:
        spec: complex Tensor[B, C, F, T] (complex64/complex128; complex32 computed as complex64).
        n_fft, hop_length, win_length, window, center, normalized, onesided: as in :func:`stft`.
        length: output length; default the natural length ``(T - 1) * hop_length`` (+ ``n_fft``
            when not centred). Odd lengths are restored exactly when passed.

    Returns:
        Tensor[B, C, length], float32 (float64 for complex128), differentiable with respect to
        ``spec`` (exact adjoint).

    Raises:
        ValueError: rank, empty batch, F inconsistent with n_fft/onesided, parameters out of
            range, and a window envelope that vanishes inside the output (NOLA; checked on the
            host from the window, never from the data).
        TypeError: a real ``spec``.
    """
    return _istft_impl(spec, n_fft, hop_length, win_length, window, center, normalized, onesided, length, False)


def to_time_frequency(x: torch.Tensor, n_fft: int = 8, hop_length: int | None = None,
                      win_length: int | None = None, window: torch.Tensor | None = None, center: bool = True,
                      pad_mode: str = "reflect", normalized: bool = False, onesided: bool = True) -> torch.Tensor:
    """STFT with real and imaginary parts as channels: ``Tensor[B, C, L]`` -> ``Tensor[B, 2C, F, T]``.

    Channel ``2c`` holds the real part and ``2c + 1`` the imaginary part of channel ``c`` (the
    TimeVQVAE layout, Lee et al. 2023, sec. 3.1), written by the kernel directly in that layout.
    Arguments, errors and gradients as :func:`stft` (default n_fft = 8: the TimeVQVAE setting,
    with ``hop_length=2``, Hann window, passed explicitly by the models).
    """
    return _stft_impl(x, n_fft, hop_length, win_length, window, center, pad_mode, normalized, onesided, True)


def from_time_frequency(u: torch.Tensor, n_fft: int = 8, hop_length: int | None = None,
                        win_length: int | None = None, window: torch.Tensor | None = None, center: bool = True,
                        normalized: bool = False, onesided: bool = True, length: int | None = None) -> torch.Tensor:
    """Inverse of :func:`to_time_frequency`: real ``Tensor[B, 2C, F, T]`` -> ``Tensor[B, C, length]``.

    Arguments, errors and gradients as :func:`istft`; pass ``length`` to restore odd lengths.
    """
    return _istft_impl(u, n_fft, hop_length, win_length, window, center, normalized, onesided, length, True)


if _extension.built():

    def _frames(L, n_fft, hop, center):
        pad = n_fft // 2 if center else 0
        return 1 + (L + 2 * pad - n_fft) // hop

    def _interleaved_out(like, B, C, Fq, T):
        # Every path returns [B, C, F, T, 2] as the transposed view of a frames-major
        # [B, C, T, F, 2] buffer, as torch.stft does.
        return like.new_empty((B, C, T, Fq, 2)).transpose(2, 3)

    @torch.library.register_fake("tsvq::stft")
    def _(x, n_fft, hop_length, window, center, pad_mode, normalized, onesided, stacked):
        B, C, L = x.shape
        Fq = n_fft // 2 + 1 if onesided else n_fft
        T = _frames(L, n_fft, hop_length, center)
        return x.new_empty((B, 2 * C, Fq, T)) if stacked else _interleaved_out(x, B, C, Fq, T)

    @torch.library.register_fake("tsvq::istft")
    def _(spec, n_fft, hop_length, window, center, normalized, onesided, length, stacked):
        B, C = (spec.shape[0], spec.shape[1] // 2) if stacked else (spec.shape[0], spec.shape[1])
        T = spec.shape[3]
        if length < 0:
            Q = n_fft + hop_length * (T - 1)
            length = Q - 2 * (n_fft // 2) if center else Q
        return spec.new_empty((B, C, length))

    @torch.library.register_fake("tsvq::_stft_backward")
    def _(grad, length, n_fft, hop_length, window, center, pad_mode, normalized, onesided, stacked):
        B, C = (grad.shape[0], grad.shape[1] // 2) if stacked else (grad.shape[0], grad.shape[1])
        return grad.new_empty((B, C, length))

    @torch.library.register_fake("tsvq::_istft_backward")
    def _(grad, n_freqs, n_frames, n_fft, hop_length, window, center, normalized, onesided, stacked):
        B, C = grad.shape[0], grad.shape[1]
        if stacked:
            return grad.new_empty((B, 2 * C, n_freqs, n_frames))
        return _interleaved_out(grad, B, C, n_freqs, n_frames)

    @torch.library.register_fake("tsvq::_stft_analysis")
    def _(x, basis, scale, hop_length, n_frames, pad_left, pad_mode, interleaved):
        R, J = x.shape[0], basis.shape[1]
        if interleaved:
            return x.new_empty((R, n_frames, J // 2, 2)).transpose(1, 2)
        return x.new_empty((R, J, n_frames))

    @torch.library.register_fake("tsvq::_stft_synthesis")
    def _(spec, basis, scale, hop_length, start, length, interleaved):
        return spec.new_empty((spec.shape[0], length))

    def _stft_setup(ctx, inputs, output):
        x, n_fft, hop, window, center, pad_mode, normalized, onesided, stacked = inputs
        ctx.save_for_backward(window)
        ctx.args = (x.shape[2], n_fft, hop, center, pad_mode, normalized, onesided, stacked)

    def _stft_backward(ctx, grad):
        (window,) = ctx.saved_tensors
        L, n_fft, hop, center, pad_mode, normalized, onesided, stacked = ctx.args
        gx = torch.ops.tsvq._stft_backward(grad, L, n_fft, hop, window, center, pad_mode, normalized,
                                           onesided, stacked)
        return gx, None, None, None, None, None, None, None, None

    torch.library.register_autograd("tsvq::stft", _stft_backward, setup_context=_stft_setup)

    def _istft_setup(ctx, inputs, output):
        spec, n_fft, hop, window, center, normalized, onesided, length, stacked = inputs
        ctx.save_for_backward(window)
        ctx.args = (spec.shape[2], spec.shape[3], n_fft, hop, center, normalized, onesided, stacked)

    def _istft_backward(ctx, grad):
        (window,) = ctx.saved_tensors
        n_freqs, n_frames, n_fft, hop, center, normalized, onesided, stacked = ctx.args
        gs = torch.ops.tsvq._istft_backward(grad, n_freqs, n_frames, n_fft, hop, window, center, normalized,
                                            onesided, stacked)
        return gs, None, None, None, None, None, None, None, None

    torch.library.register_autograd("tsvq::istft", _istft_backward, setup_context=_istft_setup)

    # The backward ops are linear in ``grad``; their own gradients are the forward ops.
    def _stft_bwd_setup(ctx, inputs, output):
        grad, length, n_fft, hop, window, center, pad_mode, normalized, onesided, stacked = inputs
        ctx.save_for_backward(window)
        ctx.args = (n_fft, hop, center, pad_mode, normalized, onesided, stacked)

    def _stft_bwd_backward(ctx, gg):
        (window,) = ctx.saved_tensors
        n_fft, hop, center, pad_mode, normalized, onesided, stacked = ctx.args
        return (torch.ops.tsvq.stft(gg, n_fft, hop, window, center, pad_mode, normalized, onesided, stacked),
                None, None, None, None, None, None, None, None, None)

    torch.library.register_autograd("tsvq::_stft_backward", _stft_bwd_backward, setup_context=_stft_bwd_setup)

    def _istft_bwd_setup(ctx, inputs, output):
        grad, n_freqs, n_frames, n_fft, hop, window, center, normalized, onesided, stacked = inputs
        ctx.save_for_backward(window)
        ctx.args = (n_fft, hop, center, normalized, onesided, grad.shape[2], stacked)

    def _istft_bwd_backward(ctx, gg):
        (window,) = ctx.saved_tensors
        n_fft, hop, center, normalized, onesided, length, stacked = ctx.args
        return (torch.ops.tsvq.istft(gg, n_fft, hop, window, center, normalized, onesided, length, stacked),
                None, None, None, None, None, None, None, None, None)

    torch.library.register_autograd("tsvq::_istft_backward", _istft_bwd_backward, setup_context=_istft_bwd_setup)
