"""tsvq vs pure PyTorch for the vector quantiser: nearest-codeword search, a full layer step (with
the straight-through estimator, with the rotation trick, with 4 heads of separate codebooks) and an
8-layer residual quantiser step.

    pytest benchmarks/bench_vq.py --benchmark-json=out.json
    python benchmarks/summarize.py out.json   # ratios to the reference, Markdown

Groups (one per shape and device) hold tsvq and its baselines; correctness is asserted before
timing (harness.nearest_code_case / layer_step_case / residual_vq_step_case). Shapes (N, K, D): (5120, 32, 64) = one
NC-VQVAE batch of latents, (65536, 1024, 64), and on CUDA also (262144, 8192, 256).
"""
from __future__ import annotations

import pytest
from conftest import cases, run_case

from harness import layer_step_case, nearest_code_case, residual_vq_step_case

SHAPES = [(5120, 32, 64), (65536, 1024, 64), (262144, 8192, 256)]


def _rounds(shape, device):
    return 30 if device == "cuda" else (20 if shape[0] * shape[1] < 1e7 else 5)


# The candidate kernel first: on a GPU machine the session's time budget may cut the end of a file.
@pytest.mark.parametrize("impl", ["tsvq", "tsvq_current", "cdist"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "-".join(map(str, s)))
def test_nearest_code_tiled_candidate_cuda(benchmark, impl, shape):
    """The register-tiled CUDA kernel (csrc/ops/nearest_code/nearest_code_tiled.cuh, private op
    tsvq::_nearest_code_tiled) as "tsvq", against the kernel nearest_code dispatches now and cdist:
    the numbers that decide whether nearest_code switches to it."""
    import torch

    from harness import Case
    from tsvq.ops import reference

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    base = nearest_code_case(*shape, "cuda")  # builds the inputs and checks the current kernel and cdist
    g = torch.Generator().manual_seed(0)  # the same inputs as nearest_code_case
    x = torch.randn(shape[0], shape[2], generator=g).cuda()
    cb = torch.randn(shape[1], shape[2], generator=g).cuda()
    ridx, rdist = reference.nearest_code(x, cb)
    idx, dist = torch.ops.tsvq._nearest_code_tiled(x, cb)
    assert (idx == ridx).float().mean() > 0.999, "the tiled kernel disagrees with the reference"
    torch.testing.assert_close(dist, rdist, rtol=1e-3, atol=1e-3)
    case = Case(base.group + " (tiled candidate)", lambda: torch.ops.tsvq._nearest_code_tiled(x, cb),
                {"tsvq_current": base.tsvq, "cdist": base.baselines["cdist"]}, base.items, base.unit,
                dict(base.info, kernel="tiled candidate"))
    run_case(benchmark, case, impl, "cuda", _rounds(shape, "cuda"))


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
