"""tsvq vs torch for the STFT / ISTFT: forward, inverse, and the training round trip
(stft -> istft, forward + backward).

Shapes: B*C = 128..4096 series of L = 128 or 1024 samples, n_fft in {8, 32, 64} and 256, hop_length =
n_fft // 4, Hann window, center, reflect padding. Kernels: on CPUs the direct DFT for n_fft 8 and the
fused FFT path at 32 (csrc/ops/stft/stft_cpu.cpp) and pocketfft at 64 / 256; on GPUs the fused warp-FFT kernels
(csrc/ops/stft/stft_fft_small.cuh) for n_fft 8, 32, 64 and the FFT path (cuFFT) for 256.
test_fused_kernels_vs_fft_path times the fused kernels against the FFT path in the same process.
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


def _fft_path(fn):
    """fn with the fused kernels switched off (tsvq::_stft_set_fused): the FFT path of the same op."""
    import torch

    def call():
        prev = torch.ops.tsvq._stft_set_fused(False)
        try:
            return fn()
        finally:
            torch.ops.tsvq._stft_set_fused(prev)
    return call


# First in the file (a GPU session's budget may cut its end): whether the fused kernels, dispatched on
# GPUs for power-of-two n_fft <= 64 before any GPU measurement (and on CPUs at n_fft 32), beat the
# FFT path they replaced, in the same process: "tsvq" = the public op (fused), "fft_path" = the same
# op with the switch off (framing / overlap-add kernels around cuFFT or pocketfft), "torch".
@pytest.mark.parametrize("impl", ["tsvq", "fft_path", "torch"])
@pytest.mark.parametrize("op", ["stft", "istft", "round_trip"])
@pytest.mark.parametrize("device, shape", FUSED_AB)
def test_fused_kernels_vs_fft_path(benchmark, impl, op, device, shape):
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    case = {"stft": stft_case, "istft": istft_case, "round_trip": stft_round_trip_case}[op](*shape, device)
    case.group += " (fused vs FFT path)"
    case.info["kernel"] = "fused vs FFT path"
    case.baselines["fft_path"] = _fft_path(case.tsvq)
    run_case(benchmark, case, impl, device, 20)


# The small-n_fft candidate kernels next.
@pytest.mark.parametrize("impl", ["tsvq", "torch", "tsvq_op"])
@pytest.mark.parametrize("shape", [(1024, 1024, 8), (4096, 1024, 8), (4096, 1024, 16)], ids=lambda s: "-".join(map(str, s)))
def test_stft_analysis_small_candidate_cuda(benchmark, impl, shape):
    """The n_fft <= 16 analysis kernel (csrc/ops/stft/stft_analysis_small.cuh) through the private op
    tsvq::_stft_analysis with its basis built once, as "tsvq", against torch.stft and tsvq's public stft
    (the FFT path on GPUs): whether the public op should dispatch to it on GPUs (it would then also
    need its basis cached on the device instead of rebuilt per call)."""
    import torch

    from harness import Case
    from tsvq.ops import reference, stft

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    BC, L, n_fft = shape
    hop = n_fft // 4
    x = torch.randn(BC, L, device="cuda")
    w = torch.hann_window(n_fft, device="cuda")
    F = n_fft // 2 + 1
    ang = 2 * torch.pi * torch.outer(torch.arange(n_fft), torch.arange(F)).double() / n_fft
    basis = (torch.cat([torch.cos(ang), -torch.sin(ang)], 1).cuda() * w.double()[:, None]).float().contiguous()
    T = 1 + (L + 2 * (n_fft // 2) - n_fft) // hop

    def kernel():
        return torch.ops.tsvq._stft_analysis(x, basis, None, hop, T, n_fft // 2, 1, True)

    ref = torch.view_as_real(reference.stft(x[:, None], n_fft, hop, w))[:, 0]  # [BC, F, T, 2]
    torch.testing.assert_close(kernel(), ref, rtol=1e-4, atol=1e-4)
    case = Case(f"stft analysis kernel cuda BC={BC} L={L} n_fft={n_fft} (small-n_fft candidate)", kernel,
                {"torch": lambda: reference.stft(x[:, None], n_fft, hop, w),
                 "tsvq_op": lambda: stft(x[:, None], n_fft, hop, window=w)},
                x.numel(), "samples", dict(op="stft", BC=BC, L=L, n_fft=n_fft, kernel="small-n_fft candidate"))
    run_case(benchmark, case, impl, "cuda", 20)


@pytest.mark.parametrize("impl", ["tsvq", "torch", "tsvq_op"])
@pytest.mark.parametrize("shape", [(1024, 1024, 8), (4096, 1024, 8), (4096, 1024, 16)], ids=lambda s: "-".join(map(str, s)))
def test_istft_synthesis_small_candidate_cuda(benchmark, impl, shape):
    """The n_fft <= 16 synthesis kernel (csrc/ops/stft/stft_synthesis_small.cuh) through the private op
    tsvq::_stft_synthesis with its basis and inverse window envelope built once, as "tsvq", against
    torch.istft and tsvq's public istft (the FFT path on GPUs)."""
    import torch

    from harness import Case
    from tsvq.ops import istft, reference

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    BC, L, n_fft = shape
    hop = n_fft // 4
    x = torch.randn(BC, 1, L, device="cuda")
    w = torch.hann_window(n_fft, device="cuda")
    spec = reference.stft(x, n_fft, hop, w)  # complex [BC, 1, F, T]
    F, T = spec.shape[-2:]
    spec_ri = torch.view_as_real(spec)[:, 0].contiguous()  # [BC, F, T, 2]
    ang = 2 * torch.pi * torch.outer(torch.arange(F), torch.arange(n_fft)).double() / n_fft
    c = torch.full((F, 1), 2.0, dtype=torch.float64)
    c[0] = 1.0
    if n_fft % 2 == 0:
        c[-1] = 1.0
    basis = (torch.cat([torch.cos(ang) * c, -torch.sin(ang) * c], 0).cuda() * w.double() / n_fft).float().contiguous()
    Q = (T - 1) * hop + n_fft
    env = torch.zeros(Q, dtype=torch.float64, device="cuda")
    for t in range(T):
        env[t * hop:t * hop + n_fft] += w.double() ** 2
    inv_env = torch.where(env > 1e-11, 1 / env, torch.zeros_like(env)).float()

    def kernel():
        return torch.ops.tsvq._stft_synthesis(spec_ri, basis, inv_env, hop, n_fft // 2, L, True)

    torch.testing.assert_close(kernel(), x[:, 0], rtol=1e-4, atol=1e-4)
    case = Case(f"istft synthesis kernel cuda BC={BC} L={L} n_fft={n_fft} (small-n_fft candidate)", kernel,
                {"torch": lambda: reference.istft(spec, n_fft, hop, w, length=L),
                 "tsvq_op": lambda: istft(spec, n_fft, hop, window=w, length=L)},
                x.numel(), "samples", dict(op="istft", BC=BC, L=L, n_fft=n_fft, kernel="small-n_fft candidate"))
    run_case(benchmark, case, impl, "cuda", 20)


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
