"""tsvq vs pure PyTorch for the Barlow Twins loss, forward + backward.

Shapes (N, D): (128, 4096) and (512, 4096) = NC-VQVAE projector outputs (Gram path, N < D),
and on CUDA (2048, 8192). Baseline: the explicit D x D cross-correlation matrix
(tsvq.ops.reference.barlow_twins_loss, facebookresearch/barlowtwins semantics); the losses are
asserted equal before timing (harness.barlow_twins_case).
"""
from __future__ import annotations

import pytest
from conftest import cases, run_case

from harness import barlow_twins_case

SHAPES = [(128, 4096), (512, 4096), (2048, 8192)]


@pytest.mark.parametrize("impl", ["tsvq", "reference"])
@pytest.mark.parametrize("device, shape", list(cases(SHAPES, cpu_max_rows=512)))
def test_barlow_twins_forward_backward(benchmark, impl, device, shape):
    run_case(benchmark, barlow_twins_case(*shape, device), impl, device, 30 if device == "cuda" else 5)
