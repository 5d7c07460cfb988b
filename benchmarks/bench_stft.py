"""tsvq vs torch for the STFT / ISTFT: forward, inverse, and the training round trip
(stft -> istft, forward + backward).

Shapes: B*C = 128..4096 series of L = 128 or 1024 samples, n_fft in {8, 32, 64} and 256, hop_length =
n_fft // 4, Hann window, center, reflect padding. Kernels: on CPUs the direct DFT for n_fft 8 and the
fused FFT path at 32 (csrc/ops/stft/stft_cpu.cpp) and pocketfft at 64 / 256; on GPUs the fused warp-FFT kernels
(csrc/ops/stft/stft_fft_small.cuh) for n_fft 8, 32, 64 and the FFT path (cuFFT) for 256.
test_fused_kernels times the fused kernels against torch.
Baseline: torch.stft / torch.istft (tsvq.ops.reference), which for the inverse also reads the
window envelope back to the host (NOLA check); outputs (and for the round trip, gradients) are
asserted equal before timing (harness.stft_case / istft_case / stft_round_trip_case). The
baseline rows also time tsvq in alternating rounds and record the paired speed-up, which
summarize.py reports.
"""
from __future__ import annotations

import itertools

import pytest
from conftest import cases, run_case

from harness import istft_case, stft_case, stft_round_trip_case

SHAPES = [(bc, L, n) for bc, L, n in itertools.product([128, 1024, 4096], [128, 1024], [8, 32, 64, 256])
          if L > n // 2]  # reflect padding needs L > n_fft // 2


FUSED_AB = ([pytest.param("cuda", (bc, 1024, n), id=f"cuda-{bc}-1024-{n}") for bc in (1024, 4096) for n in (8, 32, 64)]
            + [pytest.param("cpu", (bc, L, 32), id=f"cpu-{bc}-{L}-32") for bc, L in ((128, 128), (1024, 1024))])


# First in the file (a GPU session's budget may cut its end): whether the fused kernels (power-of-two
# n_fft <= 64 on GPUs under TSVQ_CUDA_KERNELS=all, n_fft = 32 on CPUs) beat torch: what decides
# whether they become the CUDA default (tsvq/ops/_cuda_defaults.py).
@pytest.mark.parametrize("impl", ["tsvq", "torch"])
@pytest.mark.parametrize("op", ["stft", "istft", "round_trip"])
@pytest.mark.parametrize("device, shape", FUSED_AB)
def test_fused_kernels(benchmark, impl, op, device, shape):
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    case = {"stft": stft_case, "istft": istft_case, "round_trip": stft_round_trip_case}[op](*shape, device)
    case.group += " (fused kernels)"
    case.info["kernel"] = "fused"
    run_case(benchmark, case, impl, device, 20)


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
