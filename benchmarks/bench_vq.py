"""tsvq vs pure PyTorch for the vector quantiser: nearest-codeword search and a full layer step.

    pytest benchmarks/bench_vq.py --benchmark-json=out.json
    python benchmarks/summarize.py out.json   # ratios to the reference, Markdown

Groups (one per shape and device) hold tsvq and its baselines; correctness is asserted before
timing (tsvq.bench.nearest_code_case / layer_step_case). Shapes (N, K, D): (5120, 32, 64) = one
NC-VQVAE batch of latents, (65536, 1024, 64), and on CUDA also (262144, 8192, 256).
"""
from __future__ import annotations

import pytest
from conftest import cases, run_case

from tsvq.bench import layer_step_case, nearest_code_case

SHAPES = [(5120, 32, 64), (65536, 1024, 64), (262144, 8192, 256)]


def _rounds(shape, device):
    return 30 if device == "cuda" else (20 if shape[0] * shape[1] < 1e7 else 5)


@pytest.mark.parametrize("impl", ["tsvq", "reference_addmm", "cdist"])
@pytest.mark.parametrize("device, shape", list(cases(SHAPES, cpu_max_rows=65536)))
def test_nearest_code(benchmark, impl, device, shape):
    run_case(benchmark, nearest_code_case(*shape, device), impl, device, _rounds(shape, device))


@pytest.mark.parametrize("impl", ["tsvq", "vector_quantize_pytorch"])
@pytest.mark.parametrize("device, shape", list(cases(SHAPES, cpu_max_rows=65536)))
def test_layer_training_step(benchmark, impl, device, shape):
    """Forward + backward + EMA update of the layer, B x 1024 (or 128) vectors of dim D."""
    pytest.importorskip("vector_quantize_pytorch")
    run_case(benchmark, layer_step_case(*shape, device), impl, device, _rounds(shape, device))
