import pytest
import torch

import tsvq
from tsvq.ops import code_stats, ema_codebook_update_, reference
from tsvq.ops.ema_codebook_update import ema_apply_

from helpers import noncontiguous

pytestmark = pytest.mark.skipif(not tsvq.has_ops(), reason="tsvq._C not built")


def _state(K, D, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    cb = torch.randn(K, D, generator=g, dtype=dtype).to(device)
    return torch.ones(K, dtype=dtype, device=device), cb.clone(), cb


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("contiguous", [True, False])
def test_code_stats_matches_reference(device, dtype, contiguous):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 20, generator=g).to(device, dtype)
    idx = torch.randint(0, 13, (1000,), generator=g).to(device)
    if not contiguous:
        x = noncontiguous(x)
        idx = noncontiguous(idx.unsqueeze(0)).squeeze(0)
    counts, sums = code_stats(x, idx, 13)
    rc, rs = reference.code_stats(x, idx, 13)
    assert counts.dtype == sums.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    torch.testing.assert_close(counts, rc)
    torch.testing.assert_close(sums, rs, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("N,K,D", [(0, 3, 4), (5, 1, 1), (10, 50, 2), (20001, 7, 33)])
def test_code_stats_edge_shapes(device, N, K, D):
    x = torch.randn(N, D, dtype=torch.float64, device=device)
    idx = torch.randint(0, K, (N,), device=device)
    counts, sums = code_stats(x, idx, K)
    rc, rs = reference.code_stats(x, idx, K)
    torch.testing.assert_close(counts, rc)
    torch.testing.assert_close(sums, rs)
    assert counts.sum().item() == N


def test_code_stats_deterministic_path(device):
    x = torch.randn(5000, 16, device=device)
    idx = torch.randint(0, 8, (5000,), device=device)
    prev = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(True)
        a = code_stats(x, idx, 8)
        b = code_stats(x, idx, 8)
    finally:
        torch.use_deterministic_algorithms(prev)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    torch.testing.assert_close(a[1], reference.code_stats(x, idx, 8)[1], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("x_dtype", [None, torch.float16, torch.bfloat16])
def test_ema_update_matches_reference_over_steps(device, dtype, x_dtype):
    K, D = 16, 12
    ours = _state(K, D, dtype, device)
    ref = tuple(t.clone() for t in ours)
    g = torch.Generator().manual_seed(1)
    for step in range(5):
        x = (torch.randn(300, D, generator=g, dtype=dtype) + step).to(device, x_dtype or dtype)
        idx, _ = reference.nearest_code(x.to(dtype), ref[2])
        c1 = ema_codebook_update_(*ours, x, idx, 0.9, 1e-5)
        c2 = reference.ema_codebook_update_(*ref, x, idx, 0.9, 1e-5)
        torch.testing.assert_close(c1, c2)
        for a, b in zip(ours, ref):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # The EMA codebook follows the data: all used codes moved.
    assert not torch.allclose(ours[2], _state(K, D, dtype, device)[2])


def test_ema_update_against_closed_form():
    # One step, decay 0.5, eps 0: n = 0.5*1 + 0.5*count, m = 0.5*e + 0.5*sum, e = m / n.
    cs, es, cb = torch.ones(2), torch.tensor([[0.0], [10.0]]), torch.tensor([[0.0], [10.0]])
    x = torch.tensor([[1.0], [3.0], [9.0]])
    idx = torch.tensor([0, 0, 1])
    counts = ema_codebook_update_(cs, es, cb, x, idx, 0.5, 0.0)
    assert counts.tolist() == [2.0, 1.0]
    torch.testing.assert_close(cs, torch.tensor([1.5, 1.0]))
    torch.testing.assert_close(es, torch.tensor([[2.0], [9.5]]))
    torch.testing.assert_close(cb, torch.tensor([[2.0 / 1.5], [9.5]]))


def test_ema_update_empty_batch_only_decays(device):
    cs, es, cb = _state(4, 3, torch.float32, device)
    ema_codebook_update_(cs, es, cb, torch.empty(0, 3, device=device), torch.empty(0, dtype=torch.long, device=device), 0.5, 0.0)
    torch.testing.assert_close(cs, torch.full((4,), 0.5, device=device))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("stats_dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("K, D", [(1, 1), (7, 3), (300, 33)])
def test_ema_apply_matches_reference(device, dtype, stats_dtype, K, D):
    """The O(K D) update alone (what a data-parallel layer runs on all-reduced statistics), with
    statistics in either dtype, against the ATen formula of reference.ema_apply_."""
    g = torch.Generator().manual_seed(K)
    ours = _state(K, D, dtype, device, seed=K)
    ours[0].copy_(torch.rand(K, generator=g, dtype=dtype) * 3)
    ref = tuple(t.clone() for t in ours)
    counts = torch.randint(0, 5, (K,), generator=g).to(device, stats_dtype)
    sums = torch.randn(K, D, generator=g, dtype=stats_dtype).to(device) * counts.unsqueeze(1)
    ema_apply_(*ours, counts, sums, 0.8, 1e-5)
    reference.ema_apply_(*ref, counts, sums, 0.8, 1e-5)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, **tol)


def test_update_is_statistics_then_apply(device):
    """ema_codebook_update_ = code_stats + ema_apply_ exactly (the data-parallel layer runs the
    second form on all-reduced statistics: both paths give the same codebook bit for bit)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(500, 9, generator=g).to(device)
    idx = torch.randint(0, 11, (500,), generator=g).to(device)
    one = _state(11, 9, torch.float32, device)
    two = tuple(t.clone() for t in one)
    prev = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(True)  # CUDA: statistics without float atomics
        counts = ema_codebook_update_(*one, x, idx, 0.9, 1e-5)
        c2, s2 = code_stats(x, idx, 11)
        ema_apply_(*two, c2, s2, 0.9, 1e-5)
    finally:
        torch.use_deterministic_algorithms(prev)
    assert torch.equal(counts, c2)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


def test_noncontiguous_state_is_updated_in_place(device):
    """State tensors that are views with gaps (a slice of a wider buffer) are written back."""
    K, D = 6, 4
    cs, es, cb = _state(K, D, torch.float64, device)
    ref = tuple(t.clone() for t in (cs, es, cb))
    cs_v, es_v, cb_v = noncontiguous(cs.unsqueeze(0)).squeeze(0), noncontiguous(es), noncontiguous(cb)
    x = torch.randn(50, D, dtype=torch.float64, device=device)
    idx = torch.randint(0, K, (50,), device=device)
    ema_codebook_update_(cs_v, es_v, cb_v, x, idx, 0.7, 1e-5)
    reference.ema_codebook_update_(*ref, x, idx, 0.7, 1e-5)
    for a, b in zip((cs_v, es_v, cb_v), ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    counts, sums = code_stats(x, idx, K)
    ref2 = tuple(t.clone() for t in ref)
    ema_apply_(cs_v, es_v, cb_v, counts, sums, 0.7, 1e-5)
    reference.ema_apply_(*ref2, counts, sums, 0.7, 1e-5)
    for a, b in zip((cs_v, es_v, cb_v), ref2):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_opcheck(device):
    x = torch.randn(40, 6, device=device)
    idx = torch.randint(0, 5, (40,), device=device)
    torch.library.opcheck(torch.ops.tsvq.code_stats.default, (x, idx, 5))
    cs, es, cb = _state(5, 6, torch.float32, device)
    torch.library.opcheck(torch.ops.tsvq.ema_codebook_update_.default, (cs, es, cb, x, idx, 0.9, 1e-5))
    counts, sums = code_stats(x, idx, 5)
    torch.library.opcheck(torch.ops.tsvq._ema_apply_.default, (cs, es, cb, counts, sums, 0.9, 1e-5))


def test_compiles_without_graph_break():
    cs, es, cb = _state(5, 3, torch.float32, "cpu")
    ref = tuple(t.clone() for t in (cs, es, cb))

    @torch.compile(fullgraph=True, backend="aot_eager")
    def step(x, idx):
        return ema_codebook_update_(cs, es, cb, x, idx, 0.8, 1e-5)

    x, idx = torch.randn(30, 3), torch.randint(0, 5, (30,))
    step(x, idx)
    reference.ema_codebook_update_(*ref, x, idx, 0.8, 1e-5)
    for a, b in zip((cs, es, cb), ref):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(indices=torch.tensor([0, 1, 5])), IndexError, "out of range"),
        (dict(indices=torch.tensor([0, -1, 1])), IndexError, "out of range"),
        (dict(indices=torch.tensor([0.0, 1.0, 1.0])), TypeError, "indices must be int64"),
        (dict(indices=torch.tensor([0, 1])), ValueError, r"indices must be int64\[N\]"),
        (dict(x=torch.randn(3, 4)), ValueError, r"D == codebook.size\(1\) == 2"),
        (dict(x=torch.ones(3, 2, dtype=torch.int32)), TypeError, "x must be float"),
        (dict(cluster_size=torch.ones(4)), ValueError, r"cluster_size must be Tensor\[K\]"),
        (dict(embed_sum=torch.ones(3, 3)), ValueError, r"embed_sum must be Tensor\[K, D\]"),
        (dict(cluster_size=torch.ones(3, dtype=torch.float16)), TypeError, "float32 or float64"),
        (dict(decay=1.5), ValueError, r"decay must be in \[0, 1\]"),
        (dict(eps=-1.0), ValueError, "eps must be >= 0"),
    ],
)
def test_bad_input(kwargs, exc, match):
    args = dict(cluster_size=torch.ones(3), embed_sum=torch.zeros(3, 2), codebook=torch.zeros(3, 2),
                x=torch.randn(3, 2), indices=torch.tensor([0, 1, 2]), decay=0.9, eps=1e-5)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        ema_codebook_update_(**args)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(counts=torch.ones(4)), ValueError, r"counts must be Tensor\[K\]"),
        (dict(sums=torch.ones(3, 3)), ValueError, r"sums must be Tensor\[K, D\]"),
        (dict(counts=torch.ones(3, dtype=torch.long)), TypeError, "counts must be float"),
        (dict(cluster_size=torch.ones(3, dtype=torch.float64)), TypeError, "share one dtype"),
        (dict(decay=-0.1), ValueError, r"decay must be in \[0, 1\]"),
    ],
)
@pytest.mark.parametrize("through", ["wrapper", "op"])
def test_ema_apply_bad_input(kwargs, exc, match, through):
    args = dict(cluster_size=torch.ones(3), embed_sum=torch.zeros(3, 2), codebook=torch.zeros(3, 2),
                counts=torch.ones(3), sums=torch.zeros(3, 2), decay=0.9, eps=1e-5)
    args.update(kwargs)
    if through == "wrapper":
        with pytest.raises(exc, match=match):
            ema_apply_(**args)
    else:
        with pytest.raises(exc, match=match):
            torch.ops.tsvq._ema_apply_(*args.values())


def test_code_stats_bad_k():
    with pytest.raises(ValueError, match="K"):
        code_stats(torch.randn(3, 2), torch.tensor([0, 0, 0]), 0)
    with pytest.raises((ValueError, RuntimeError), match="K"):
        torch.ops.tsvq.code_stats(torch.randn(3, 2), torch.tensor([0, 0, 0]), 0)
    with pytest.raises((IndexError, RuntimeError), match="out of range"):
        torch.ops.tsvq.code_stats(torch.randn(3, 2), torch.tensor([0, 0, 7]), 2)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_skips_out_of_range_rows():
    x = torch.ones(3, 2, device="cuda")
    counts, sums = code_stats(x, torch.tensor([0, -1, 1], device="cuda"), 2)
    assert counts.tolist() == [1.0, 1.0]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_update_is_four_kernels():
    """On CUDA the update is one fill (counts and sums share a buffer), the statistics kernel and
    the two kernels of ema_kernels.cuh: no ATen element-wise or reduction kernels."""
    cs, es, cb = _state(64, 16, torch.float32, "cuda")
    x = torch.randn(4096, 16, device="cuda")
    idx = torch.randint(0, 64, (4096,), device="cuda")
    ref = tuple(t.clone() for t in (cs, es, cb))
    ema_codebook_update_(cs, es, cb, x, idx, 0.9, 1e-5)  # warm-up
    reference.ema_codebook_update_(*ref, x, idx, 0.9, 1e-5)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        ema_codebook_update_(cs, es, cb, x, idx, 0.9, 1e-5)
        torch.cuda.synchronize()
    kernels = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    assert len(kernels) <= 4, kernels
    assert sum("tsvq::ema::" in k for k in kernels) == 2, kernels
    reference.ema_codebook_update_(*ref, x, idx, 0.9, 1e-5)
    for a, b in zip((cs, es, cb), ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
