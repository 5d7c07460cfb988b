"""tsvq vs pure PyTorch for the vector quantiser: nearest-codeword search and its top-k form, a full
layer step (with the straight-through estimator, with the rotation trick, with 4 heads of separate
codebooks) and an 8-layer residual quantiser step (greedy, and with a beam search of 4).

    pytest benchmarks/bench_vq.py --benchmark-json=out.json
    python benchmarks/summarize.py out.json   # ratios to the reference, Markdown

Groups (one per shape and device) hold tsvq and its baselines; correctness is asserted before
timing (harness.nearest_code_case / layer_step_case / residual_vq_step_case). Shapes (N, K, D): (5120, 32, 64) = one
NC-VQVAE batch of latents, (65536, 1024, 64), and on CUDA also (262144, 8192, 256).
"""
from __future__ import annotations

import pytest
from conftest import cases, run_case

from harness import layer_step_case, nearest_code_case, nearest_code_topk_case, residual_vq_step_case

SHAPES = [(5120, 32, 64), (65536, 1024, 64), (262144, 8192, 256)]


def _rounds(shape, device):
    return 30 if device == "cuda" else (20 if shape[0] * shape[1] < 1e7 else 5)


@pytest.mark.parametrize("impl", ["tsvq", "reference_addmm", "cdist"])
@pytest.mark.parametrize("device, shape", list(cases(SHAPES, cpu_max_rows=65536)))
def test_nearest_code(benchmark, impl, device, shape):
    run_case(benchmark, nearest_code_case(*shape, device), impl, device, _rounds(shape, device))


TOPK_SHAPES = [(65536, 1024, 64, 8), (4096, 65536, 64, 8)]


@pytest.mark.parametrize("impl", ["tsvq", "cdist", "addmm_topk"])
@pytest.mark.parametrize("device, shape", list(cases(TOPK_SHAPES, cpu_max_rows=65536)))
def test_nearest_code_topk(benchmark, impl, device, shape):
    """The k = 8 nearest codes per row (beam search's candidates); at K = 65536 cdist's N x K matrix
    limits N to 4096 (1 GiB)."""
    run_case(benchmark, nearest_code_topk_case(*shape, device), impl, device, 5)


@pytest.mark.parametrize("impl", ["tsvq", "vector_quantize_pytorch"])
@pytest.mark.parametrize("device, shape", list(cases(SHAPES, cpu_max_rows=65536)))
def test_layer_training_step(benchmark, impl, device, shape):
    """Forward + backward + EMA update of the layer, B x 1024 (or 128) vectors of dim D."""
    pytest.importorskip("vector_quantize_pytorch")
    run_case(benchmark, layer_step_case(*shape, device), impl, device, _rounds(shape, device))


@pytest.mark.parametrize("impl", ["tsvq", "vector_quantize_pytorch"])
@pytest.mark.parametrize("device, shape", list(cases(SHAPES, cpu_max_rows=65536)))
def test_layer_training_step_rotation_trick(benchmark, impl, device, shape):
    """The same step with the rotation trick on both sides (VectorQuantize's default gradient)."""
    pytest.importorskip("vector_quantize_pytorch")
    run_case(benchmark, layer_step_case(*shape, device, rotation_trick=True), impl, device, _rounds(shape, device))


@pytest.mark.parametrize("impl", ["tsvq", "vector_quantize_pytorch"])
@pytest.mark.parametrize("device, shape", list(cases([(65536, 1024, 64)], cpu_max_rows=65536)))
def test_residual_vq_training_step(benchmark, impl, device, shape):
    """Forward + backward + EMA updates of an 8-layer residual quantiser (SoundStream-style RVQ)."""
    pytest.importorskip("vector_quantize_pytorch")
    run_case(benchmark, residual_vq_step_case(*shape, 8, device), impl, device, 5)


@pytest.mark.parametrize("impl", ["tsvq", "vector_quantize_pytorch"])
@pytest.mark.parametrize("device, shape", list(cases([(16384, 1024, 64)], cpu_max_rows=65536)))
def test_residual_vq_beam_training_step(benchmark, impl, device, shape):
    """The 8-layer residual quantiser step with a beam search of 4 (ResidualVQ's beam_size); N = 16384
    because ResidualVQ holds a (4 N) x K distance matrix per layer."""
    pytest.importorskip("vector_quantize_pytorch")
    run_case(benchmark, residual_vq_step_case(*shape, 8, device, beam_size=4), impl, device, 5)


@pytest.mark.parametrize("impl", ["tsvq", "vector_quantize_pytorch"])
@pytest.mark.parametrize("device, shape", list(cases([(65536, 1024, 64)], cpu_max_rows=65536)))
def test_layer_training_step_separate_heads(benchmark, impl, device, shape):
    """The layer step with 4 heads, one 1024-code codebook of dimension 16 per head."""
    pytest.importorskip("vector_quantize_pytorch")
    run_case(benchmark, layer_step_case(*shape, device, heads=4), impl, device, _rounds(shape, device))


@pytest.mark.parametrize("impl", ["tsvq", "vector_quantize_pytorch"])
@pytest.mark.parametrize("device, shape", list(cases([(65536, 1024, 64)], cpu_max_rows=65536)))
def test_layer_training_step_sampling_diversity(benchmark, impl, device, shape):
    """The layer step with sampled codes (temperature 0.5) and the codebook-diversity loss."""
    pytest.importorskip("vector_quantize_pytorch")
    run_case(benchmark, layer_step_case(*shape, device, sampling=True), impl, device, _rounds(shape, device))
