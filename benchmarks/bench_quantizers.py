"""tsvq's FSQ, LFQ and SimVQ layers against vector_quantize_pytorch's: one training step each.

    pytest benchmarks/bench_quantizers.py --benchmark-json=out.json
    python benchmarks/summarize.py out.json

Shapes (N, K, D): N = 65536 vectors of D = 64 with K = 1024 codes; with K = 65536, N is cut to
4096 (LFQ) and 8192 (SimVQ) on the CPU, because vector_quantize_pytorch holds an N x K tensor
(its entropy probabilities, its cdist) that would not fit at N = 65536 (16 GiB); FSQ has no N x K
term and keeps N = 65536. Codes are checked equal before timing (harness.scalar_quantizer_step_case).
"""
from __future__ import annotations

import pytest
from conftest import DEVICES, run_case

from harness import scalar_quantizer_step_case

CASES = [("fsq", 65536, 1024), ("fsq", 65536, 65536), ("lfq", 65536, 1024), ("lfq", 4096, 65536),
         ("simvq", 65536, 1024), ("simvq", 8192, 65536)]


@pytest.mark.parametrize("impl", ["tsvq", "vector_quantize_pytorch"])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind, N, K", CASES, ids=[f"{k}-N{n}-K{c}" for k, n, c in CASES])
def test_quantizer_training_step(benchmark, impl, device, kind, N, K):
    pytest.importorskip("vector_quantize_pytorch")
    run_case(benchmark, scalar_quantizer_step_case(kind, N, K, 64, device), impl, device, 5)
