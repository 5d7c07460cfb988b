"""tsvq vs pure PyTorch for the vector quantiser: nearest-codeword search and a full layer step.

    pytest benchmarks/bench_vq.py --benchmark-json=out.json
    python benchmarks/summarize.py out.json   # ratios to the reference, Markdown

Groups (one per shape and device) hold tsvq and its baselines; correctness is asserted before
timing. Shapes (N, K, D): (5120, 32, 64) = one NC-VQVAE batch of latents, (65536, 1024, 64),
and on CUDA also (262144, 8192, 256).
"""
from __future__ import annotations

import pytest
import torch
from conftest import cases, run

import tsvq
from tsvq.nn import VectorQuantizer
from tsvq.ops import nearest_code, reference

SHAPES = [(5120, 32, 64), (65536, 1024, 64), (262144, 8192, 256)]


def _rounds(shape, device):
    return 30 if device == "cuda" else (20 if shape[0] * shape[1] < 1e7 else 5)


@pytest.mark.parametrize("impl", ["tsvq", "reference_addmm", "cdist"])
@pytest.mark.parametrize("device, shape", list(cases(SHAPES, cpu_max_rows=65536)))
def test_nearest_code(benchmark, impl, device, shape):
    if not tsvq.has_ops():
        pytest.skip("tsvq._C not built")
    N, K, D = shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=g).to(device)
    cb = torch.randn(K, D, generator=g).to(device)
    fn = {"tsvq": nearest_code, "reference_addmm": reference.nearest_code,
          "cdist": reference.nearest_code_cdist}[impl]
    idx, dist = fn(x, cb)
    ridx, rdist = reference.nearest_code(x, cb)
    assert (idx == ridx).float().mean() > 0.999
    torch.testing.assert_close(dist, rdist, rtol=1e-3, atol=1e-3)
    benchmark.group = f"nearest_code {device} N={N} K={K} D={D}"
    run(benchmark, lambda: fn(x, cb), device, N, "vectors", _rounds(shape, device),
        paired=None if impl == "tsvq" else lambda: nearest_code(x, cb),
        impl=impl, op="nearest_code", N=N, K=K, D=D)


def _layer(impl, D, K, device):
    torch.manual_seed(0)
    if impl == "tsvq":
        layer = VectorQuantizer(D, K, decay=0.8, commitment_weight=1.0)
        init = layer.codebook
    else:
        vqp = pytest.importorskip("vector_quantize_pytorch")
        layer = vqp.VectorQuantize(D, K, decay=0.8, commitment_weight=1.0, rotation_trick=False)
        init = layer._codebook.embed[0]
        torch.manual_seed(0)
        ref = VectorQuantizer(D, K, decay=0.8)
        init.copy_(ref.codebook)
        layer._codebook.embed_avg.data.copy_(ref.codebook[None])
    return layer.to(device).train()


@pytest.mark.parametrize("impl", ["tsvq", "vector_quantize_pytorch"])
@pytest.mark.parametrize("device, shape", list(cases(SHAPES, cpu_max_rows=65536)))
def test_layer_training_step(benchmark, impl, device, shape):
    """Forward + backward + EMA update of the layer, B x 1024 (or 128) vectors of dim D."""
    if impl == "tsvq" and not tsvq.has_ops():
        pytest.skip("tsvq._C not built")
    N, K, D = shape
    n = 128 if N == 5120 else 1024
    x = torch.randn(N // n, n, D, device=device, requires_grad=True)
    layer = _layer(impl, D, K, device)
    other = _layer("tsvq" if impl != "tsvq" else "vector_quantize_pytorch", D, K, device)
    with torch.no_grad():  # correctness first: same indices as the other implementation
        assert (layer(x)[1] == other(x)[1]).float().mean() > 0.999

    def make_step(layer):
        def step():
            q, _, loss = layer(x)
            (q.sum() * 1e-6 + loss).backward()
            return loss
        return step

    benchmark.group = f"vq layer step {device} N={N} K={K} D={D}"
    run(benchmark, make_step(layer), device, N, "vectors", _rounds(shape, device),
        paired=make_step(other) if impl != "tsvq" and tsvq.has_ops() else None,
        impl=impl, op="layer_step", N=N, K=K, D=D)
