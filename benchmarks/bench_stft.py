"""tsvq vs torch for the STFT / ISTFT: forward, inverse, and the training round trip
(stft -> istft, forward + backward).

Shapes: B*C = 128..4096 series of L = 128 or 1024 samples, n_fft in {8, 32, 64} (the direct-DFT
kernels on CPUs for n_fft 8, the FFT path above 16 and on GPUs) and 256, hop_length = n_fft // 4, Hann window, center, reflect padding.
Baseline: torch.stft / torch.istft (tsvq.ops.reference), which for the inverse also reads the
window envelope back to the host (NOLA check); outputs (and for the round trip, gradients) are
asserted equal before timing (tsvq.bench.stft_case / istft_case / stft_round_trip_case). The
baseline rows also time tsvq in alternating rounds and record the paired speed-up, which
summarize.py reports.
"""
from __future__ import annotations

import itertools

import pytest
from conftest import cases, run_case

from tsvq.bench import istft_case, stft_case, stft_round_trip_case

SHAPES = [(bc, L, n) for bc, L, n in itertools.product([128, 1024, 4096], [128, 1024], [8, 32, 64, 256])
          if L > n // 2]  # reflect padding needs L > n_fft // 2


@pytest.mark.parametrize("impl", ["tsvq", "torch"])
@pytest.mark.parametrize("device, shape", list(cases(SHAPES, cpu_max_rows=1024)))
def test_stft_forward(benchmark, impl, device, shape):
    run_case(benchmark, stft_case(*shape, device), impl, device, 20)


@pytest.mark.parametrize("impl", ["tsvq", "torch"])
@pytest.mark.parametrize("device, shape", list(cases(SHAPES, cpu_max_rows=1024)))
def test_istft_forward(benchmark, impl, device, shape):
    run_case(benchmark, istft_case(*shape, device), impl, device, 20)


@pytest.mark.parametrize("impl", ["tsvq", "torch"])
@pytest.mark.parametrize("device, shape", list(cases(SHAPES, cpu_max_rows=1024)))
def test_round_trip_forward_backward(benchmark, impl, device, shape):
    run_case(benchmark, stft_round_trip_case(*shape, device), impl, device, 20)
