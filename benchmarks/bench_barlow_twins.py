"""tsvq vs pure PyTorch for the Barlow Twins loss, forward + backward.

Shapes (N, D): (128, 4096) and (512, 4096) = NC-VQVAE projector outputs (Gram path, N < D),
and on CUDA (2048, 8192). Baseline: the explicit D x D cross-correlation matrix
(tsvq.ops.reference.barlow_twins_loss, facebookresearch/barlowtwins semantics).
"""
from __future__ import annotations

import pytest
import torch
from conftest import cases, run

import tsvq
from tsvq.ops import barlow_twins_loss, reference

SHAPES = [(128, 4096), (512, 4096), (2048, 8192)]


@pytest.mark.parametrize("impl", ["tsvq", "reference"])
@pytest.mark.parametrize("device, shape", list(cases(SHAPES, cpu_max_rows=512)))
def test_barlow_twins_forward_backward(benchmark, impl, device, shape):
    if not tsvq.has_ops():
        pytest.skip("tsvq._C not built")
    N, D = shape
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(N, D, generator=g).to(device).requires_grad_()
    z2 = torch.randn(N, D, generator=g).to(device).requires_grad_()
    fn = barlow_twins_loss if impl == "tsvq" else reference.barlow_twins_loss
    loss = fn(z1, z2, 0.005, 1e-5, False, True)
    ref = reference.barlow_twins_loss(z1, z2, 0.005, 1e-5, False, True)
    torch.testing.assert_close(loss, ref, rtol=1e-3, atol=1e-4)

    def make_step(fn):
        def step():
            z1.grad = z2.grad = None
            fn(z1, z2, 0.005, 1e-5, False, True).backward()
        return step

    benchmark.group = f"barlow_twins {device} N={N} D={D}"
    run(benchmark, make_step(fn), device, N, "samples", 30 if device == "cuda" else 5,
        paired=None if impl == "tsvq" else make_step(barlow_twins_loss), impl=impl,
        op="barlow_twins_loss", N=N, D=D)
