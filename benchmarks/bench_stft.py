"""tsvq vs torch for the STFT / ISTFT: forward, inverse, and the training round trip
(stft -> istft, forward + backward).

Shapes: B*C = 128..4096 series of L = 128 or 1024 samples, n_fft in {8, 32, 64} (direct DFT
kernels) and 256 (FFT path), hop_length = n_fft // 4, Hann window, center, reflect padding.
Baseline: torch.stft / torch.istft (tsvq.ops.reference), which for the inverse also reads the
window envelope back to the host (NOLA check). The baseline rows also time tsvq in alternating
rounds and record the paired speed-up (conftest.paired_speedup), which summarize.py reports.
"""
from __future__ import annotations

import itertools

import pytest
import torch
from conftest import cases, run

import tsvq
from tsvq.ops import istft, reference, stft

SHAPES = [(bc, L, n) for bc, L, n in itertools.product([128, 1024, 4096], [128, 1024], [8, 32, 64, 256])
          if L > n // 2]  # reflect padding needs L > n_fft // 2


def _setup(device, shape):
    if not tsvq.has_ops():
        pytest.skip("tsvq._C not built")
    BC, L, n_fft = shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BC, 1, L, generator=g).to(device)
    w = torch.hann_window(n_fft, device=device)
    return x, w, n_fft, n_fft // 4, L


def _stft_fn(impl):
    if impl == "tsvq":
        return lambda x, n, h, w: stft(x, n, h, window=w)
    return lambda x, n, h, w: reference.stft(x, n, h, w)


def _istft_fn(impl):
    if impl == "tsvq":
        return lambda s, n, h, w, L: istft(s, n, h, window=w, length=L)
    return lambda s, n, h, w, L: reference.istft(s, n, h, w, length=L)


@pytest.mark.parametrize("impl", ["tsvq", "torch"])
@pytest.mark.parametrize("device, shape", list(cases(SHAPES, cpu_max_rows=1024)))
def test_stft_forward(benchmark, impl, device, shape):
    x, w, n_fft, hop, L = _setup(device, shape)
    fn = _stft_fn(impl)
    torch.testing.assert_close(fn(x, n_fft, hop, w), reference.stft(x, n_fft, hop, w), rtol=1e-4, atol=1e-4)
    benchmark.group = f"stft {device} BC={shape[0]} L={L} n_fft={n_fft}"
    tsvq_fn = _stft_fn("tsvq")
    run(benchmark, lambda: fn(x, n_fft, hop, w), device, x.numel(), "samples", 20,
        paired=None if impl == "tsvq" else lambda: tsvq_fn(x, n_fft, hop, w),
        impl=impl, op="stft", BC=shape[0], L=L, n_fft=n_fft)


@pytest.mark.parametrize("impl", ["tsvq", "torch"])
@pytest.mark.parametrize("device, shape", list(cases(SHAPES, cpu_max_rows=1024)))
def test_istft_forward(benchmark, impl, device, shape):
    x, w, n_fft, hop, L = _setup(device, shape)
    spec = reference.stft(x, n_fft, hop, w)
    fn = _istft_fn(impl)
    torch.testing.assert_close(fn(spec, n_fft, hop, w, L), x, rtol=1e-4, atol=1e-4)
    benchmark.group = f"istft {device} BC={shape[0]} L={L} n_fft={n_fft}"
    tsvq_fn = _istft_fn("tsvq")
    run(benchmark, lambda: fn(spec, n_fft, hop, w, L), device, x.numel(), "samples", 20,
        paired=None if impl == "tsvq" else lambda: tsvq_fn(spec, n_fft, hop, w, L),
        impl=impl, op="istft", BC=shape[0], L=L, n_fft=n_fft)


@pytest.mark.parametrize("impl", ["tsvq", "torch"])
@pytest.mark.parametrize("device, shape", list(cases(SHAPES, cpu_max_rows=1024)))
def test_round_trip_forward_backward(benchmark, impl, device, shape):
    x, w, n_fft, hop, L = _setup(device, shape)
    x.requires_grad_()

    def make_step(impl):
        f, fi = _stft_fn(impl), _istft_fn(impl)

        def step():
            x.grad = None
            y = fi(f(x, n_fft, hop, w) * 0.5, n_fft, hop, w, L)
            y.pow(2).sum().backward()
        return step

    benchmark.group = f"stft+istft fwd+bwd {device} BC={shape[0]} L={L} n_fft={n_fft}"
    run(benchmark, make_step(impl), device, x.numel(), "samples", 20,
        paired=None if impl == "tsvq" else make_step("tsvq"),
        impl=impl, op="stft_istft_train", BC=shape[0], L=L, n_fft=n_fft)
