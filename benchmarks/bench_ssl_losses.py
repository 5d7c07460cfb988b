"""VICReg / VIbCReg losses (pure PyTorch, ``tsvq.nn``) forward + backward: the covariance term from
the N x N Gram matrix when 2N <= D against the same loss with the explicit D x D matrix.

Shapes (N, D): (128, 4096) = the NC-VQVAE head (batch 128, 4096-wide projector; Gram path),
(512, 4096) (Gram path at its largest N), and on CUDA (2048, 8192) (the D x D path on both
sides). The losses are asserted equal before timing (harness.ssl_loss_case).
"""
from __future__ import annotations

import pytest
from conftest import cases, run_case

from harness import ssl_loss_case

SHAPES = [(128, 4096), (512, 4096), (2048, 8192)]


@pytest.mark.parametrize("impl", ["tsvq", "dxd"])
@pytest.mark.parametrize("loss", ["vicreg", "vibcreg"])
@pytest.mark.parametrize("device, shape", list(cases(SHAPES, cpu_max_rows=512)))
def test_ssl_loss_forward_backward(benchmark, impl, loss, device, shape):
    run_case(benchmark, ssl_loss_case(loss, *shape, device), impl, device, 30 if device == "cuda" else 5)
