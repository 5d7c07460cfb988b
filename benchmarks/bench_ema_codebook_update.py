"""tsvq vs pure PyTorch for the EMA codebook update (statistics + the O(K D) state update).

    pytest benchmarks/bench_ema_codebook_update.py --benchmark-json=out.json
    python benchmarks/summarize.py out.json   # ratios to the reference, Markdown

Groups (one per shape and device) hold tsvq and ``reference.ema_codebook_update_`` (index_add
statistics, then the ATen element-wise update); the two are checked equal before timing
(harness.ema_update_case). Shapes (N, K, D) as in bench_vq.py.
"""
from __future__ import annotations

import pytest
from conftest import cases, run_case

from harness import ema_update_case

SHAPES = [(5120, 32, 64), (65536, 1024, 64), (262144, 8192, 256)]


@pytest.mark.parametrize("impl", ["tsvq", "reference"])
@pytest.mark.parametrize("device, shape", list(cases(SHAPES, cpu_max_rows=65536)))
def test_ema_codebook_update(benchmark, impl, device, shape):
    run_case(benchmark, ema_update_case(*shape, device), impl, device, 30 if device == "cuda" else 10)
