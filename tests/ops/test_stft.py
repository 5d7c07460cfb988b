import gc
import importlib
import itertools

import numpy as np
import pytest
import torch

import tsvq
from tsvq._extension import reference_ops
from tsvq.nn import ISTFT, STFT
from tsvq.ops import from_time_frequency, istft, reference, stft, to_time_frequency

from helpers import CUDA, noncontiguous

pytestmark = pytest.mark.skipif(not tsvq.has_ops(), reason="tsvq._C not built")

RTOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _torch_stft(x, n_fft, hop, win_length, window, center, pad_mode, normalized, onesided):
    B, C, L = x.shape
    z = torch.stft(x.reshape(B * C, L), n_fft, hop, win_length, window, center, pad_mode, normalized, onesided,
                   return_complex=True)
    return z.reshape(B, C, *z.shape[-2:])


def _torch_istft(z, n_fft, hop, win_length, window, center, normalized, onesided, length):
    B, C, F, T = z.shape
    y = torch.istft(z.reshape(B * C, F, T), n_fft, hop, win_length, window, center, normalized, onesided, length)
    return y.reshape(B, C, -1)


def _rel_close(a, b, dtype):
    scale = b.abs().max().clamp_min(1e-30)
    assert ((a - b).abs().max() / scale).item() <= RTOL[dtype], ((a - b).abs().max() / scale).item()


# n_fft: 1..16 direct DFT on CPUs, 32 the fused CPU path, the FFT path above; on GPUs 8 / 32 / 64 the
# fused kernels, 64 / 65 / 128 on either side of their range; odd and even sizes, hops 1..16; every pad mode.
GRID = list(itertools.product([1, 5, 8, 13, 32, 64, 65, 128], [1, 2, 3, 16], [None, "short"], [True, False],
                              ["reflect", "constant", "replicate", "circular"], [False, True], [True, False]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("L", [37, 128])
def test_matches_torch_stft_istft_every_parameter(device, dtype, L):
    g = torch.Generator().manual_seed(L)
    x = torch.randn(2, 3, L, generator=g, dtype=dtype).to(device)
    checked = 0
    for n_fft, hop, wl, center, pad_mode, normalized, onesided in GRID:
        if hop > n_fft or (center and pad_mode == "reflect" and n_fft // 2 >= L) or (not center and n_fft > L):
            continue
        win_length = None if wl is None else max(1, n_fft - 2)
        window = (torch.hann_window(win_length or n_fft, dtype=dtype) + 0.1).to(device)
        try:
            ref = _torch_stft(x, n_fft, hop, win_length, window, center, pad_mode, normalized, onesided)
        except RuntimeError:  # torch refuses (series too short for the padding or n_fft): so does tsvq
            with pytest.raises(ValueError, match="too short|shorter"):
                stft(x, n_fft, hop, win_length, window, center, pad_mode, normalized, onesided)
            continue
        out = stft(x, n_fft, hop, win_length, window, center, pad_mode, normalized, onesided)
        assert out.shape == ref.shape and out.dtype == ref.dtype
        _rel_close(out, ref, dtype)
        for length in (None, L, L + 3):
            try:
                y_ref = _torch_istft(ref, n_fft, hop, win_length, window, center, normalized, onesided, length)
            except RuntimeError as e:
                if "window overlap add min" in str(e):  # NOLA: both refuse
                    with pytest.raises(ValueError, match="NOLA"):
                        istft(ref, n_fft, hop, win_length, window, center, normalized, onesided, length)
                    continue
                # torch.istft trims to [n_fft // 2, -(n_fft // 2)], an empty slice for n_fft = 1, and
                # then fails on the min of the empty envelope; tsvq returns the natural length.
                assert "numel() == 0" in str(e) and (n_fft, center, length) == (1, True, None), (n_fft, hop, length)
                continue
            y = istft(ref, n_fft, hop, win_length, window, center, normalized, onesided, length)
            assert y.shape == y_ref.shape
            _rel_close(y, y_ref, dtype)
        checked += 1
    assert checked > 300


@pytest.mark.parametrize("L", [127, 128, 129])
def test_round_trip_restores_the_series_including_odd_lengths(device, L):
    x = torch.randn(4, 2, L, dtype=torch.float64, device=device)
    w = torch.hann_window(8, dtype=torch.float64, device=device)
    u = to_time_frequency(x, 8, 2, window=w)
    assert u.shape == (4, 4, 5, L // 2 + 1)
    torch.testing.assert_close(from_time_frequency(u, 8, 2, window=w, length=L), x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(istft(stft(x, 8, 2, window=w), 8, 2, window=w, length=L), x, rtol=1e-12, atol=1e-12)


def test_time_frequency_layout_is_timevqvae(device):
    """Channels (2c, 2c+1) = (real, imag) of channel c: einops '(b c) n t z -> b (c z) n t'."""
    x = torch.randn(3, 2, 64, device=device)
    w = torch.hann_window(8, device=device)
    u = to_time_frequency(x, 8, 2, window=w)
    z = torch.view_as_real(_torch_stft(x, 8, 2, None, w, True, "reflect", False, True))  # [B, C, F, T, 2]
    expected = z.permute(0, 1, 4, 2, 3).reshape(3, 4, *z.shape[2:4])
    torch.testing.assert_close(u, expected, rtol=1e-5, atol=1e-5)
    assert u.is_contiguous()
    torch.testing.assert_close(reference.to_time_frequency(x, 8, 2, w), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("contiguous", [True, False])
def test_dtype_contiguity_grid(device, dtype, contiguous):
    x = torch.randn(2, 3, 50, device=device).to(dtype)
    if not contiguous:
        x = noncontiguous(x)
    w = torch.hann_window(16, device=device)
    out = stft(x, 16, 4, window=w.to(dtype))
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    assert out.dtype == (torch.complex128 if compute == torch.float64 else torch.complex64)
    wc = w.to(dtype).to(compute)
    ref = _torch_stft(x.to(compute), 16, 4, None, wc, True, "reflect", False, True)
    _rel_close(out, ref, compute)
    spec = ref.clone()
    if not contiguous:
        spec = spec.transpose(-1, -2).contiguous().transpose(-1, -2)
    y = istft(spec, 16, 4, window=w.to(dtype), length=50)
    _rel_close(y, _torch_istft(ref, 16, 4, None, wc, True, False, True, 50), compute)
    u = to_time_frequency(x, 16, 4, window=w.to(dtype))
    nc = noncontiguous(u) if not contiguous else u
    _rel_close(from_time_frequency(nc, 16, 4, window=w.to(dtype), length=50), x.to(compute), compute)


def _grad_cases():
    for n_fft, hop, center, pad_mode, normalized, onesided in [
        (8, 2, True, "reflect", False, True), (7, 3, True, "replicate", True, False),
        (8, 2, False, "constant", False, True), (6, 2, True, "circular", False, True),
        (72, 18, True, "reflect", True, True), (70, 20, True, "constant", False, False),
        # the CPU FFT path's framing / overlap-add loops for the other pad modes and without centring
        (40, 10, True, "replicate", False, True), (36, 9, True, "circular", True, True),
        (34, 8, False, "reflect", False, True),
        # power-of-two n_fft: the fused CUDA kernels (stft_fft_small.cuh), two-sided and normalized
        # included (the two-sided stft adjoint takes the FFT path there)
        (16, 4, True, "reflect", True, False), (32, 8, True, "constant", False, True),
        (4, 1, False, "reflect", True, True),
    ]:
        yield pytest.param(n_fft, hop, center, pad_mode, normalized, onesided,
                           id=f"n{n_fft}-h{hop}-{'c' if center else 'nc'}-{pad_mode}-{int(normalized)}{int(onesided)}")


@pytest.mark.parametrize("n_fft,hop,center,pad_mode,normalized,onesided", list(_grad_cases()))
def test_gradcheck_float64(device, n_fft, hop, center, pad_mode, normalized, onesided):
    L = 41
    w = torch.hann_window(n_fft, dtype=torch.float64, device=device) + 0.05
    x = torch.randn(1, 2, L, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x: torch.view_as_real(stft(x, n_fft, hop, None, w, center, pad_mode, normalized, onesided)), (x,))
    assert torch.autograd.gradcheck(
        lambda x: to_time_frequency(x, n_fft, hop, None, w, center, pad_mode, normalized, onesided), (x,))
    s = stft(x.detach(), n_fft, hop, None, w, center, pad_mode, normalized, onesided).requires_grad_()
    assert torch.autograd.gradcheck(lambda s: istft(s, n_fft, hop, None, w, center, normalized, onesided, L), (s,))
    u = to_time_frequency(x.detach(), n_fft, hop, None, w, center, pad_mode, normalized, onesided).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda u: from_time_frequency(u, n_fft, hop, None, w, center, normalized, onesided, L + 2), (u,))
    # the backward ops are linear: their gradients are the forward ops
    assert torch.autograd.gradgradcheck(lambda u: from_time_frequency(u, n_fft, hop, None, w, center, normalized,
                                                                      onesided, L), (u,))


def test_gradients_match_torch(device):
    w = torch.hann_window(16, dtype=torch.float64, device=device)
    x = torch.randn(2, 3, 77, dtype=torch.float64, device=device)
    g = torch.randn(2, 3, 9, 20, dtype=torch.complex128, device=device)
    grads = []
    for fn in (stft, lambda *a: _torch_stft(a[0], 16, 4, None, w, True, "reflect", False, True)):
        xx = x.clone().requires_grad_()
        out = fn(xx, 16, 4, None, w)
        (out * g.conj()).real.sum().backward()
        grads.append(xx.grad)
    torch.testing.assert_close(*grads, rtol=1e-10, atol=1e-10)
    spec = _torch_stft(x, 16, 4, None, w, True, "reflect", False, True)
    gy = torch.randn(2, 3, 77, dtype=torch.float64, device=device)
    grads = []
    for fn in (istft, lambda s, *a: _torch_istft(s, 16, 4, None, w, True, False, True, 77)):
        ss = spec.clone().requires_grad_()
        (fn(ss, 16, 4, None, w, True, False, True, 77) * gy).sum().backward()
        grads.append(ss.grad)
    torch.testing.assert_close(*grads, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n_fft", [8, 32, 100])  # direct (CPU) or fused (GPU), fused, FFT path
def test_opcheck(device, n_fft):
    hop = n_fft // 4
    w = torch.hann_window(n_fft, device=device)
    L = 145
    x = torch.randn(2, 3, L, device=device, requires_grad=True)
    for stacked in (False, True):
        torch.library.opcheck(torch.ops.tsvq.stft.default, (x, n_fft, hop, w, True, "reflect", False, True, stacked))
        spec = torch.ops.tsvq.stft(x.detach(), n_fft, hop, w, True, "reflect", False, True, stacked).requires_grad_()
        torch.library.opcheck(torch.ops.tsvq.istft.default, (spec, n_fft, hop, w, True, False, True, L, stacked))
        torch.library.opcheck(torch.ops.tsvq.istft.default, (spec, n_fft, hop, w, True, True, True, -1, stacked))
        g = torch.randn_like(spec)
        torch.library.opcheck(torch.ops.tsvq._stft_backward.default,
                              (g, L, n_fft, hop, w, True, "reflect", False, True, stacked))
        F, T = (spec.shape[2], spec.shape[3])
        torch.library.opcheck(torch.ops.tsvq._istft_backward.default,
                              (torch.randn(2, 3, L, device=device), F, T, n_fft, hop, w, True, False, True, stacked))


def test_compile_fullgraph(device):
    w = torch.hann_window(8, device=device)

    def f(x):
        return from_time_frequency(to_time_frequency(x, 8, 2, window=w) * 2, 8, 2, window=w, length=x.shape[-1])

    x = torch.randn(2, 1, 33, device=device)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), 2 * x, rtol=1e-5, atol=1e-5)


def test_modules(device):
    enc, dec = STFT(8, 2, stacked=True).to(device), ISTFT(8, 2, stacked=True).to(device)
    assert enc.window.device.type == device.type and enc.n_freqs == 5 and enc.n_frames(100) == 51
    x = torch.randn(3, 2, 101, device=device)
    u = enc(x)
    assert u.shape == (3, 4, 5, 51)
    torch.testing.assert_close(dec(u, length=101), x, rtol=1e-5, atol=1e-5)
    c = STFT(16, window=None)(x.cpu())
    torch.testing.assert_close(ISTFT(16, window=None)(c, length=101), x.cpu(), rtol=1e-5, atol=1e-5)
    assert "n_fft=8" in repr(enc) and len(enc.state_dict()) == 0


@pytest.mark.cuda
@CUDA
def test_istft_does_not_read_the_envelope_back_on_cuda_after_first_call():
    w = torch.hann_window(8, device="cuda")
    spec = stft(torch.randn(4, 1, 64, device="cuda"), 8, 2, window=w)
    istft(spec, 8, 2, window=w)  # first call copies the window to the host once
    torch.cuda.set_sync_debug_mode("error")
    try:
        istft(spec, 8, 2, window=w)
        from_time_frequency(to_time_frequency(torch.randn(4, 1, 64, device="cuda"), 8, 2, window=w), 8, 2, window=w)
    finally:
        torch.cuda.set_sync_debug_mode(0)


def test_window_host_cache_hits_updates_and_forgets():
    # The cache behind the CUDA NOLA check (one device-to-host copy per window), exercised on CPU
    # tensors so that CI covers it: a hit on the second lookup (a tensor-keyed dict compared
    # windows elementwise there and raised), a new copy after an in-place change, no entry left
    # once the window is freed, and no caching of inference tensors.
    stft_module = importlib.import_module("tsvq.ops.stft")  # the module (tsvq.ops.stft is the function)

    w = torch.hann_window(8, dtype=torch.float64)
    first = stft_module._cached_host_copy(w)
    assert stft_module._cached_host_copy(w) is first
    np.testing.assert_array_equal(first, w.numpy())
    w.mul_(2.0)
    second = stft_module._cached_host_copy(w)
    assert second is not first
    np.testing.assert_array_equal(second, w.numpy())
    key = id(w)
    del w
    gc.collect()
    assert key not in stft_module._HOST_WINDOWS
    with torch.inference_mode():
        v = torch.hann_window(8)
    np.testing.assert_array_equal(stft_module._cached_host_copy(v), v.double().numpy())
    assert id(v) not in stft_module._HOST_WINDOWS


@pytest.mark.parametrize("call,match", [
    (lambda: stft(torch.randn(2, 3, 3), 8, 2), "too short"),
    (lambda: stft(torch.randn(2, 3, 5), 8, 2, center=False), "shorter than n_fft"),
    (lambda: stft(torch.randn(2, 3, 50), 0, 2), "n_fft"),
    (lambda: stft(torch.randn(2, 3, 50), 2), "hop_length"),
    (lambda: stft(torch.randn(2, 3, 50), 8, 0), "hop_length"),
    (lambda: stft(torch.randn(2, 3, 50), 8, 2, window=torch.ones(7)), "window"),
    (lambda: stft(torch.randn(2, 3, 50), 8, 2, win_length=9), "win_length"),
    (lambda: stft(torch.randn(50), 8, 2), r"Tensor\[B, C, L\]"),
    (lambda: stft(torch.randn(0, 3, 50), 8, 2), "empty batch"),
    (lambda: stft(torch.randn(2, 3, 50), 8, 2, pad_mode="wrap"), "pad_mode"),
    (lambda: stft(torch.randn(2, 3, 50), 8, 2, window=torch.ones(8, requires_grad=True)), "window"),
    (lambda: istft(torch.randn(2, 3, 5, 9, dtype=torch.complex64), 8, 12), "hop_length"),
    (lambda: istft(torch.randn(2, 3, 5, 9, dtype=torch.complex64), 8, 2, center=False,
                   window=torch.hann_window(8)), "NOLA"),
    (lambda: istft(torch.randn(2, 3, 6, 9, dtype=torch.complex64), 8, 2), "frequency bins"),
    (lambda: from_time_frequency(torch.randn(2, 3, 5, 9), 8, 2), "even number of channels"),
])
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_dtype_raises_type_error():
    with pytest.raises(TypeError, match="x must be float"):
        stft(torch.ones(2, 3, 50, dtype=torch.int64), 8, 2)
    with pytest.raises(TypeError, match="complex"):
        istft(torch.randn(2, 3, 5, 9), 8, 2)


@pytest.mark.parametrize("n_fft,hop", [(5, 3), (8, 2), (16, 4), (32, 8), (64, 16), (64, 1), (17, 20)])
@pytest.mark.parametrize("interleaved", [False, True])
def test_private_framing_kernels_match_the_dft(n_fft, hop, interleaved):
    """The CPU direct kernels through the private ops, at the sizes they were built for (up to 64;
    dispatch takes them up to n_fft 16)."""
    device = "cpu"
    R, L = 5, 150
    x = torch.randn(R, L, dtype=torch.float64, device=device)
    w = torch.hann_window(n_fft, dtype=torch.float64, device=device) + 0.1
    Fq = n_fft // 2 + 1
    ang = 2 * torch.pi * torch.outer(torch.arange(n_fft), torch.arange(Fq)).double() / n_fft
    basis = torch.cat([torch.cos(ang), -torch.sin(ang)], 1).to(device) * w[:, None]  # [N, 2F]
    T = 1 + (L + 2 * (n_fft // 2) - n_fft) // hop
    out = torch.ops.tsvq._stft_analysis(x, basis, None, hop, T, n_fft // 2, 1, interleaved)
    ref = torch.view_as_real(torch.stft(x, n_fft, hop, window=w, return_complex=True))  # [R, F, T, 2]
    if not interleaved:
        ref = ref.permute(0, 3, 1, 2).reshape(R, 2 * Fq, T)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    # synthesis: y[q] = scale[q] * sum_t sum_j spec[j, t] basis^T[j, q - t hop]
    scale = torch.rand((T - 1) * hop + n_fft, dtype=torch.float64, device=device)
    y = torch.ops.tsvq._stft_synthesis(out, basis.t().contiguous(), scale, hop, 3, 140, interleaved)
    spec = out if not interleaved else out.permute(0, 3, 1, 2).reshape(R, 2 * Fq, T)
    frames = torch.einsum("rjt,nj->rtn", spec, basis)
    full = torch.zeros(R, (T - 1) * hop + n_fft, dtype=torch.float64, device=device)
    for t in range(T):
        full[:, t * hop:t * hop + n_fft] += frames[:, t]
    expected = (full * scale)[:, 3:143]
    expected = torch.cat([expected, expected.new_zeros(R, 140 - expected.shape[1])], 1)
    torch.testing.assert_close(y, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("normalized", [False, True])
@pytest.mark.parametrize("n_fft", [8, 32])  # direct DFT (CPU) and FFT path
def test_window_tables_follow_the_window_values(device, n_fft, normalized):
    """The window tables (bases, inverse envelope, scaled window) are cached, on the CPU by the
    window's values and on CUDA by the window tensor and its version counter: a window changed in
    place (directly or through a view), or tables first built under inference mode, must not give
    stale or unusable results, forward or backward."""
    x = torch.randn(3, 2, 50, dtype=torch.float64, device=device)
    w = torch.hann_window(n_fft, dtype=torch.float64, device=device)
    hop = n_fft // 4
    with torch.inference_mode():
        stft(x, n_fft, hop, window=w, normalized=normalized)
        istft(stft(x, n_fft, hop, window=w), n_fft, hop, window=w, normalized=normalized, length=50)
    for step in range(3):
        xg = x.clone().requires_grad_()
        spec = stft(xg, n_fft, hop, window=w, normalized=normalized)
        ref = reference.stft(x, n_fft, hop, w, normalized=normalized)
        torch.testing.assert_close(spec, ref, rtol=1e-10, atol=1e-10)
        g = torch.randn_like(ref)
        (spec * g.conj()).real.sum().backward()
        xr = x.clone().requires_grad_()
        (reference.stft(xr, n_fft, hop, w, normalized=normalized) * g.conj()).real.sum().backward()
        torch.testing.assert_close(xg.grad, xr.grad, rtol=1e-9, atol=1e-9)
        s = ref.clone().requires_grad_()
        y = istft(s, n_fft, hop, window=w, normalized=normalized, length=50)
        torch.testing.assert_close(y, reference.istft(ref, n_fft, hop, w, normalized=normalized, length=50),
                                   rtol=1e-10, atol=1e-10)
        y.sum().backward()
        assert torch.isfinite(s.grad).all()
        if step == 0:
            w.mul_(0.5).add_(0.4)  # same tensor, new values
        else:
            w[1:].mul_(0.9)  # through a view


@pytest.mark.parametrize("n_fft", [11, 37])  # direct DFT and FFT path; lengths no other test uses
def test_default_window_first_built_under_inference_mode(n_fft):
    """The rectangular window used when none is given is built once and reused: one first built
    under inference mode must still be usable by autograd afterwards."""
    x = torch.randn(2, 1, 60, dtype=torch.float64)
    with torch.inference_mode():
        istft(stft(x, n_fft, 3), n_fft, 3, length=60)
    xg = x.clone().requires_grad_()
    y = istft(stft(xg, n_fft, 3), n_fft, 3, length=60)
    torch.testing.assert_close(y, x, rtol=1e-10, atol=1e-10)
    y.square().sum().backward()
    torch.testing.assert_close(xg.grad, 2 * x, rtol=1e-9, atol=1e-9)


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize("n_fft", [32, 48])
def test_cuda_paths_run_their_kernels_and_reuse_their_tables(n_fft):
    """On CUDA a power-of-two n_fft <= 64 runs one fused kernel per op (stft_fft_small.cuh: no cuFFT,
    no frames tensor); another n_fft takes the FFT path, which frames and overlap-adds with one kernel
    each (stft_framing.cuh) around cuFFT. Either way a second call with the same window builds no
    table (no envelope kernels, no bin weights)."""
    hop = n_fft // 4
    x = torch.randn(4, 3, 200, device="cuda")
    w = torch.hann_window(n_fft, device="cuda")
    g = torch.randn(4, 3, 200, device="cuda")

    def step():
        xg = x.clone().requires_grad_()
        y = istft(stft(xg, n_fft, hop, window=w), n_fft, hop, window=w, length=200)
        (y * g).sum().backward()
        return y, xg.grad

    step()  # builds and caches the tables, copies the window to the host once (NOLA)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        y, grad = step()
        torch.cuda.synchronize()
    kernels = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    fused = [k for k in kernels if "warpfft" in k]
    framing = [k for k in kernels if "frame_kernel" in k or "overlap_add_kernel" in k]
    others_fft = [k for k in kernels if "fft" in k.lower() and "warpfft" not in k]
    if n_fft == 32:  # stft, istft, and their two adjoints in the backward
        assert len(fused) == 4 and not framing and not others_fft, kernels
    else:
        assert not fused and len(framing) == 4, kernels
    assert not any("unfold_backward" in k or "reflection_pad" in k for k in kernels), kernels
    torch.testing.assert_close(y, x, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grad, g, rtol=1e-4, atol=1e-5)  # the round trip is the identity


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize("n_fft,hop", [(2, 1), (8, 2), (16, 3), (64, 16), (64, 64)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_fused_kernels_on_long_series_match_torch(n_fft, hop, dtype):
    """The fused CUDA kernels where a row spans many synthesis tiles (L = 5000: up to 2501 frames a
    row against tiles of <= 128) and the analysis grid strides over many passes, both layouts,
    forward and backward, against torch.stft / torch.istft."""
    B, C, L = 3, 2, 5000
    x = torch.randn(B, C, L, device="cuda", dtype=dtype)
    w = torch.hann_window(n_fft, device="cuda", dtype=dtype) + 0.1
    ref = _torch_stft(x, n_fft, hop, None, w, True, "reflect", False, True)
    _rel_close(stft(x, n_fft, hop, window=w), ref, dtype)
    u = to_time_frequency(x, n_fft, hop, window=w)
    _rel_close(u, torch.cat([ref.real, ref.imag], 2).reshape(B, 2 * C, *ref.shape[2:]), dtype)
    y_ref = _torch_istft(ref, n_fft, hop, None, w, True, False, True, L)
    _rel_close(istft(ref, n_fft, hop, window=w, length=L), y_ref, dtype)
    _rel_close(from_time_frequency(u, n_fft, hop, window=w, length=L), y_ref, dtype)
    xg = x.clone().requires_grad_()
    g = torch.randn_like(x)
    (istft(stft(xg, n_fft, hop, window=w), n_fft, hop, window=w, length=L) * g).sum().backward()
    xr = x.clone().requires_grad_()
    (_torch_istft(_torch_stft(xr, n_fft, hop, None, w, True, "reflect", False, True), n_fft, hop, None, w, True,
                  False, True, L) * g).sum().backward()
    _rel_close(xg.grad, xr.grad, dtype)


@pytest.mark.cuda
@CUDA
def test_cuda_tables_built_on_one_stream_are_safe_on_another():
    x = torch.randn(8, 2, 300, device="cuda", dtype=torch.float64)
    w = torch.hann_window(64, device="cuda", dtype=torch.float64)
    spec = stft(x, 64, 16, window=w)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        first = istft(spec, 64, 16, window=w, length=300)  # tables built and cached on `side`
    second = istft(spec, 64, 16, window=w, length=300)  # cache hit on the default stream
    torch.cuda.current_stream().wait_stream(side)
    expected = torch.istft(spec.reshape(16, 33, -1), 64, 16, window=w, length=300).reshape(8, 2, 300)
    torch.testing.assert_close(first, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(second, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.cuda
@CUDA
def test_cuda_tables_are_not_cached_while_capturing_a_graph():
    """A table built during CUDA graph capture only exists once the graph replays, so it must not
    be cached: an eager call after the capture, with the same window, must build its own."""
    n_fft, hop, L = 48, 12, 240
    T = 1 + L // hop
    grad = torch.randn(2, 3, n_fft // 2 + 1, T, 2, device="cuda")
    args = (L, n_fft, hop)
    flags = (True, "reflect", True, True, False)  # center, pad_mode, normalized (a scaled-window table), onesided, stacked
    warm = torch.hann_window(n_fft, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # cuFFT plans and the bin weights, outside the capture
        torch.ops.tsvq._stft_backward(grad, *args, warm, *flags)
    torch.cuda.current_stream().wait_stream(side)
    w = torch.hann_window(n_fft, device="cuda") * 0.7 + 0.2  # a window no call has seen
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = torch.ops.tsvq._stft_backward(grad, *args, w, *flags)
    graph.replay()
    eager = torch.ops.tsvq._stft_backward(grad, *args, w, *flags)
    expected = torch.ops.tsvq._stft_backward(grad.cpu(), *args, w.cpu(), *flags)
    torch.testing.assert_close(captured.cpu(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(eager.cpu(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.cuda
@CUDA
def test_cuda_default_window_first_needed_under_graph_capture():
    """The rectangular window is cached, but not when first built inside a CUDA graph capture (the
    fill only runs at replay): an eager call afterwards must see ones."""
    n_fft, hop = 40, 10  # a window length no other test builds
    x = torch.randn(2, 3, 200, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # cuFFT plans, outside the capture, with an explicit window
        stft(x, n_fft, hop, window=torch.ones(n_fft, device="cuda"))
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = stft(x, n_fft, hop)
    graph.replay()
    eager = stft(x, n_fft, hop)
    expected = torch.stft(x.reshape(6, 200), n_fft, hop, return_complex=True).reshape(2, 3, n_fft // 2 + 1, -1)
    torch.testing.assert_close(captured, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(eager, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("L, hop", [(40, 16), (129, 8), (300, 16), (4100, 8)])
@pytest.mark.parametrize("stacked", [False, True])
@pytest.mark.parametrize("onesided", [True, False])
def test_fused_path_blocks_frames_across_rows(L, hop, stacked, onesided):
    """The CPU fused kernels take frames kV at a time across the rows of a group (csrc/ops/stft/
    stft_cpu.cpp, rows_per_group), so blocks straddle rows, groups and the end of each thread's
    chunk; rows of 513 frames go alone. 74 series of 4 to 513 frames: stft, istft and both adjoints
    equal the pure-PyTorch reference (torch.stft / torch.istft, autograd for the adjoints); the
    inverse of a contiguous and a non-contiguous spectrum."""
    n_fft = 32
    x = torch.randn(2, 37, L, dtype=torch.float64, requires_grad=True)
    w = torch.hann_window(n_fft, dtype=torch.float64) + 0.1
    g = torch.randn(2, 37, L, dtype=torch.float64)

    def run():
        x.grad = None
        if stacked:
            spec = to_time_frequency(x, n_fft, hop, window=w, onesided=onesided)
            gs = torch.randn_like(spec, generator=torch.Generator().manual_seed(1))
            y = sum(from_time_frequency(s, n_fft, hop, window=w, onesided=onesided, length=L)
                    for s in (spec * 0.25, noncontiguous(spec * 0.25)))
        else:
            spec = stft(x, n_fft, hop, window=w, onesided=onesided)
            gs = torch.randn(spec.shape, dtype=spec.dtype, generator=torch.Generator().manual_seed(1))
            y = sum(istft(s, n_fft, hop, window=w, onesided=onesided, length=L)
                    for s in (spec * 0.25, noncontiguous(spec * 0.25)))
        torch.autograd.backward([spec, y], [gs, g])
        return spec.detach(), y.detach(), x.grad.clone()

    fused = run()
    with reference_ops():
        path = run()
    for a, b in zip(fused, path):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fused[1], 0.5 * x.detach(), rtol=1e-10, atol=1e-12)
