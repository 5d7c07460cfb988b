"""The CUDA kernels the ops use by default (tsvq/ops/_cuda_defaults.py, docs/kernels.md) and the
library path nearest_code takes where its kernel is not the faster one."""
import importlib

import pytest
import torch
from helpers import CUDA

from tsvq.ops import _cuda_defaults, nearest_code, reference, stft
from tsvq.ops.nearest_code import nearest_code_gemm

pytestmark = pytest.mark.cuda_defaults


def test_only_measured_kernels_are_default():
    assert not _cuda_defaults.ALL_KERNELS  # the tests run without TSVQ_CUDA_KERNELS
    use = _cuda_defaults.use_cuda_kernel
    assert use("nearest_code", 32, 64) and use("nearest_code", 1024, 64)  # measured faster than cdist
    assert not use("nearest_code", 8192, 256) and not use("nearest_code", 1025, 64)  # cuBLAS wins / unmeasured
    assert use("code_stats")
    for op in ("ema_codebook_update_", "ema_apply_", "barlow_twins_loss", "stft"):
        assert not use(op), op


def test_all_switches_every_kernel_on(monkeypatch):
    monkeypatch.setattr(_cuda_defaults, "ALL_KERNELS", True)
    assert _cuda_defaults.use_cuda_kernel("nearest_code", 8192, 256) and _cuda_defaults.use_cuda_kernel("stft")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gemm_path_matches_the_reference_in_chunks(monkeypatch, dtype):
    module = importlib.import_module("tsvq.ops.nearest_code")  # the package exports the function under this name
    monkeypatch.setattr(module, "_GEMM_CHUNK_ELEMENTS", 7 * 40)  # 7 rows per chunk
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 12, generator=g, dtype=dtype, requires_grad=True)
    cb = torch.randn(40, 12, generator=g, dtype=dtype, requires_grad=True)
    idx, dist = nearest_code_gemm(x, cb)
    ridx, rdist = reference.nearest_code(x, cb)
    assert torch.equal(idx, ridx)
    torch.testing.assert_close(dist, rdist)
    gx, gc = torch.autograd.grad(dist.sum(), (x, cb))
    rgx, rgc = torch.autograd.grad(rdist.sum(), (x, cb))
    torch.testing.assert_close(gx, rgx)
    torch.testing.assert_close(gc, rgc)


def test_gemm_path_marks_non_finite_rows_and_takes_half_precision():
    x = torch.randn(6, 4)
    x[2, 1] = float("nan")
    x[4, 0] = float("inf")
    idx, dist = nearest_code_gemm(x, torch.randn(5, 4))
    assert idx[2] == -1 and idx[4] == -1 and torch.isnan(dist[[2, 4]]).all() and (idx[[0, 1, 3, 5]] >= 0).all()
    xh, cbh = torch.randn(30, 8).half(), torch.randn(9, 8).half()
    assert torch.equal(nearest_code_gemm(xh, cbh)[0], reference.nearest_code(xh, cbh)[0])
    assert nearest_code_gemm(torch.empty(0, 4), torch.randn(5, 4))[0].shape == (0,)
    with pytest.raises(ValueError, match="codebook"):
        nearest_code_gemm(torch.randn(3, 4), torch.randn(5, 3))


@CUDA
def test_cuda_defaults_match_the_references_without_host_sync():
    x, cb = torch.randn(4096, 256, device="cuda"), torch.randn(8192, 256, device="cuda")
    idx, _ = nearest_code(x, cb)  # the library path at this K x D
    assert (idx == reference.nearest_code(x, cb)[0]).float().mean() > 0.999
    torch.cuda.set_sync_debug_mode("error")
    try:
        nearest_code(x, cb)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    s = torch.randn(4, 1, 128, device="cuda")
    w = torch.hann_window(8, device="cuda")
    torch.testing.assert_close(stft(s, 8, 2), reference.stft(s, 8, 2, w))
