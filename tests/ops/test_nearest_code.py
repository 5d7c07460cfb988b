import pytest
import torch

import tsvq
from tsvq.ops import nearest_code, reference

from helpers import SEARCH_TOL, search_inputs

pytestmark = pytest.mark.skipif(not tsvq.has_ops(), reason="tsvq._C not built")

TOL = SEARCH_TOL


def _check_against_reference(x, cb, fn=nearest_code):
    idx, dist = fn(x, cb)
    ridx, rdist = reference.nearest_code(x, cb)
    assert idx.dtype == torch.int64 and idx.shape == (x.shape[0],)
    assert dist.dtype == x.dtype and dist.shape == (x.shape[0],)
    # Indices must agree except on (numerical) ties; there the distances must agree instead.
    acc = torch.float64
    true = ((x.to(acc).unsqueeze(1) - cb.to(acc).unsqueeze(0)) ** 2).sum(-1)
    chosen = true.gather(1, idx.unsqueeze(1)).squeeze(1)
    best = true.min(1).values
    scale = 1 + true.abs().amax(1)
    assert torch.all(chosen - best <= TOL[x.dtype] * scale), "chosen code is not the nearest"
    mismatch = idx != ridx
    assert mismatch.float().mean() < 0.01
    torch.testing.assert_close(dist.to(acc), rdist.to(acc), rtol=TOL[x.dtype], atol=TOL[x.dtype] * scale.max().item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("contiguous", [True, False])
def test_matches_reference(device, dtype, contiguous):
    x, cb = search_inputs(777, 37, 40, device, dtype, contiguous)
    _check_against_reference(x, cb)


@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 1, 3), (9, 7, 1), (64, 16, 64), (4097, 33, 17), (300, 1025, 8)])
def test_shapes_and_block_boundaries(device, shape):
    n, k, d = shape
    g = torch.Generator().manual_seed(n + k + d)
    x = torch.randn(n, d, generator=g, dtype=torch.float64).to(device)
    cb = torch.randn(k, d, generator=g, dtype=torch.float64).to(device)
    _check_against_reference(x, cb)


def test_exact_recovery_and_ties_to_lowest_index(device):
    cb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]], device=device)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], device=device)
    idx, dist = nearest_code(x, cb)
    assert idx.tolist() == [0, 1, 0]  # duplicates of a code -> lowest index; equidistant -> lowest
    torch.testing.assert_close(dist, torch.tensor([0.0, 0.0, 0.5], device=device))


def test_large_n(device):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(70001, 8, generator=g).to(device)
    cb = x[torch.randperm(70001, generator=g)[:100]].clone()
    idx, dist = nearest_code(cb.repeat(3, 1), cb)
    assert torch.equal(idx.cpu(), torch.arange(100).repeat(3))
    _check_against_reference(x, cb)


def test_empty(device):
    idx, dist = nearest_code(torch.empty(0, 4, device=device), torch.randn(3, 4, device=device))
    assert idx.shape == (0,) and dist.shape == (0,)


def test_gradcheck_dist(device):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(11, 5, generator=g, dtype=torch.float64).to(device).requires_grad_()
    cb = torch.randn(4, 5, generator=g, dtype=torch.float64).to(device).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: nearest_code(a, b)[1], (x, cb))


def test_backward_matches_reference(device):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(50, 6, generator=g).to(device)
    cb = torch.randn(9, 6, generator=g).to(device)
    grads = []
    for fn in (nearest_code, reference.nearest_code):
        a, b = x.clone().requires_grad_(), cb.clone().requires_grad_()
        fn(a, b)[1].pow(2).sum().backward()
        grads.append((a.grad, b.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck(device, dtype):
    op = torch.ops.tsvq.nearest_code.default
    x = torch.randn(33, 7, dtype=dtype, device=device)
    cb = torch.randn(5, 7, dtype=dtype, device=device)
    torch.library.opcheck(op, (x, cb))
    torch.library.opcheck(op, (x[:0], cb))
    # With grad: opcheck's AOT test sums all outputs into one tensor seeded by the first output,
    # which is int64 here, so it cannot accumulate float gradients; the backward is covered by
    # gradcheck and test_backward_matches_reference instead.
    xg, cg = x.clone().requires_grad_(), cb.clone().requires_grad_()
    torch.library.opcheck(op, (xg, cg), test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


def test_compiles_without_graph_break():
    @torch.compile(fullgraph=True, backend="aot_eager")
    def f(x, cb):
        i, d = nearest_code(x, cb)
        return i, d * 2

    x, cb = torch.randn(20, 4), torch.randn(6, 4)
    i, d = f(x, cb)
    ri, rd = reference.nearest_code(x, cb)
    assert torch.equal(i, ri)
    torch.testing.assert_close(d, 2 * rd, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "x, cb, exc, match",
    [
        (torch.randn(4), torch.randn(3, 4), ValueError, r"x must be Tensor\[N, D\]"),
        (torch.randn(4, 2, 2), torch.randn(3, 4), ValueError, r"x must be Tensor\[N, D\]"),
        (torch.randn(4, 5), torch.randn(3, 4), ValueError, r"codebook must be Tensor\[K, D\] with D == x.size\(1\) == 5"),
        (torch.randn(4, 4), torch.randn(3), ValueError, r"codebook must be Tensor\[K, D\]"),
        (torch.randn(4, 4), torch.randn(0, 4), ValueError, r"K >= 1"),
        (torch.ones(4, 4, dtype=torch.int64), torch.ones(3, 4, dtype=torch.int64), TypeError, "x must be float"),
        (torch.randn(4, 4, dtype=torch.complex64), torch.randn(3, 4), TypeError, "x must be float"),
        (torch.randn(4, 4), torch.randn(3, 4, dtype=torch.float64), TypeError, "same dtype"),
        (torch.tensor([[0.0, float("nan")]]), torch.randn(3, 2), ValueError, "x contains NaN or inf"),
        (torch.tensor([[0.0, float("inf")]]), torch.randn(3, 2), ValueError, "x contains NaN or inf"),
        (torch.randn(2, 2), torch.tensor([[0.0, float("nan")]]), ValueError, "codebook contains NaN or inf"),
        ([[1.0]], torch.randn(3, 1), TypeError, "x must be a torch.Tensor"),
    ],
)
def test_bad_input(x, cb, exc, match):
    with pytest.raises(exc, match=match):
        nearest_code(x, cb)
    if isinstance(x, torch.Tensor):  # the compiled op checks too, with the same words
        with pytest.raises((exc, RuntimeError), match=match.split(" ")[0]):
            torch.ops.tsvq.nearest_code(x, cb)


@pytest.mark.parametrize("where", ["x", "codebook"])
def test_cpu_nonfinite_input_is_refused_before_the_kernel(where):
    # On the first GPU machine an error raised inside a tsvq C++ kernel crashed the process
    # (benchmarks/check_cpp_errors.py), so the public API must not rely on the kernel's check.
    from torch.utils._python_dispatch import TorchDispatchMode

    class Record(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(func.namespace)
            return func(*args, **(kwargs or {}))

    x, cb = torch.randn(6, 3), torch.randn(4, 3)
    (x if where == "x" else cb)[2, 1] = float("nan")
    with Record() as rec, pytest.raises(ValueError, match=f"{where} contains NaN or inf \\(first at (row|code) 2\\)"):
        nearest_code(x, cb)
    assert "tsvq" not in rec.ops


def test_cpu_finiteness_check_is_one_reduction_and_tolerates_an_overflowing_sum():
    # The pre-check above reads each tensor once (a sum of squares) when everything is finite: the
    # elementwise isfinite pass cost more than the search itself on CPUs.
    from torch.utils._python_dispatch import TorchDispatchMode

    class Record(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func.overloadpacket))
            return func(*args, **(kwargs or {}))

    x, cb = torch.randn(50, 8), torch.randn(6, 8)
    with Record() as rec:
        nearest_code(x, cb)
    assert rec.ops.count("aten.dot") == 2 and "aten.isfinite" not in rec.ops, rec.ops
    # finite float16 values whose sum overflows float16 (the kernel accumulates in float32): the
    # elementwise pass clears them
    x = torch.full((64, 4), 60000.0, dtype=torch.float16)
    x[::4] = -60000.0
    cb = torch.tensor([[60000.0] * 4, [-60000.0] * 4], dtype=torch.float16)
    assert not torch.isfinite(x.sum())
    indices, _ = nearest_code(x, cb)
    assert torch.equal(indices, (x[:, 0] < 0).long())


def test_finite_inputs_whose_squared_norms_overflow_are_named_as_such():
    with pytest.raises(ValueError, match=r"is finite, but the squared norm of code 0 .* overflows torch.float32"):
        nearest_code(torch.randn(10, 8) * 1e20, torch.randn(5, 8) * 1e20)
    with pytest.raises(ValueError, match="x is finite, but the squared norm of row 2"):
        x = torch.randn(10, 8)
        x[2] = 1e20
        nearest_code(x, torch.randn(5, 8))
    # the total overflows, no single row does: accepted, same result as the reference
    x, cb = torch.full((4096, 64), 1e17), torch.randn(5, 64)
    x[::2] *= -1
    assert not torch.isfinite(torch.dot(x.reshape(-1), x.reshape(-1)))
    torch.testing.assert_close(nearest_code(x, cb)[0], reference.nearest_code(x, cb)[0])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mixed_devices_and_cuda_nonfinite():
    with pytest.raises(ValueError, match="same device"):
        nearest_code(torch.randn(3, 2), torch.randn(3, 2, device="cuda"))
    x = torch.tensor([[0.0, float("nan")], [1.0, 1.0]], device="cuda")
    idx, dist = nearest_code(x, torch.randn(3, 2, device="cuda"))
    assert idx[0].item() == -1 and torch.isnan(dist[0]) and idx[1].item() >= 0
