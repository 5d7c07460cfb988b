import pytest
import torch

import tsvq
from tsvq.ops import nearest_code, nearest_code_topk, reference
from tsvq.ops.nearest_code import nearest_code_topk_gemm

from helpers import SEARCH_TOL, search_inputs

pytestmark = pytest.mark.skipif(not tsvq.has_ops(), reason="tsvq._C not built")

TOL = SEARCH_TOL


def _check_against_reference(x, cb, k, fn=nearest_code_topk):
    idx, dist = fn(x, cb, k)
    ridx, rdist = reference.nearest_code_topk(x, cb, k)
    assert idx.dtype == torch.int64 and idx.shape == (x.shape[0], k)
    assert dist.dtype == x.dtype and dist.shape == (x.shape[0], k)
    acc = torch.float64
    true = ((x.to(acc).unsqueeze(1) - cb.to(acc).unsqueeze(0)) ** 2).sum(-1)
    ranked = true.sort(1).values[:, :k]
    scale = 1 + true.abs().amax(1, keepdim=True)
    # the i-th code listed is (up to rounding) at the i-th smallest distance, and no code twice
    assert torch.all((true.gather(1, idx) - ranked).abs() <= TOL[x.dtype] * scale), "not the k nearest, in order"
    assert torch.all(idx.sort(1).values.diff(dim=1) > 0), "a code listed twice"
    assert (idx != ridx).float().mean() < 0.01  # other codes only on numerical ties
    torch.testing.assert_close(dist.to(acc), rdist.to(acc), rtol=TOL[x.dtype], atol=TOL[x.dtype] * scale.max().item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("contiguous", [True, False])
def test_matches_reference(device, dtype, contiguous):
    x, cb = search_inputs(777, 37, 40, device, dtype, contiguous)
    _check_against_reference(x, cb, 5)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (5, 3, 1, 3), (9, 7, 2, 7), (130, 129, 9, 4), (300, 1025, 8, 16),
                                   (65, 70, 5, 64), (40, 200, 6, 65)])
def test_shapes_block_boundaries_and_k(device, shape):
    n, K, d, k = shape  # k = K, k of the CUDA kernel's largest list, and one past it (the library path)
    g = torch.Generator().manual_seed(n + K + d)
    x = torch.randn(n, d, generator=g, dtype=torch.float64).to(device)
    cb = torch.randn(K, d, generator=g, dtype=torch.float64).to(device)
    _check_against_reference(x, cb, k)


def test_k1_is_nearest_code(device):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(500, 16, generator=g).to(device)
    cb = torch.randn(90, 16, generator=g).to(device)
    idx, dist = nearest_code_topk(x, cb, 1)
    ridx, rdist = nearest_code(x, cb)
    assert torch.equal(idx[:, 0], ridx)
    torch.testing.assert_close(dist[:, 0], rdist)


def test_ties_to_the_lower_index(device):
    cb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [3.0, 3.0]], device=device)
    x = torch.tensor([[1.0, 0.0], [0.5, 0.5]], device=device)
    idx, dist = nearest_code_topk(x, cb, 4)
    assert idx.tolist() == [[0, 2, 1, 3], [0, 1, 2, 3]]
    torch.testing.assert_close(dist, torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.5] * 4], device=device))


def test_library_path_matches(device):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(300, 12, generator=g).to(device)
    cb = torch.randn(50, 12, generator=g).to(device)
    _check_against_reference(x, cb, 6, fn=nearest_code_topk_gemm)
    i, d = nearest_code_topk_gemm(torch.tensor([[0.0, float("nan")], [1.0, 1.0]], device=device),
                                  torch.randn(3, 2, device=device), 2)
    assert i[0].tolist() == [-1, -1] and torch.isnan(d[0]).all() and (i[1] >= 0).all()


def test_empty(device):
    idx, dist = nearest_code_topk(torch.empty(0, 4, device=device), torch.randn(3, 4, device=device), 2)
    assert idx.shape == (0, 2) and dist.shape == (0, 2)


def test_gradcheck_dist(device):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(11, 5, generator=g, dtype=torch.float64).to(device).requires_grad_()
    cb = torch.randn(6, 5, generator=g, dtype=torch.float64).to(device).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: nearest_code_topk(a, b, 3)[1], (x, cb))


def test_backward_matches_reference(device):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(50, 6, generator=g).to(device)
    cb = torch.randn(9, 6, generator=g).to(device)
    w = torch.randn(50, 4, generator=g).to(device)
    grads = []
    for fn in (nearest_code_topk, reference.nearest_code_topk):
        a, b = x.clone().requires_grad_(), cb.clone().requires_grad_()
        (fn(a, b, 4)[1] * w).sum().backward()
        grads.append((a.grad, b.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck(device, dtype):
    op = torch.ops.tsvq.nearest_code_topk.default
    x = torch.randn(33, 7, dtype=dtype, device=device)
    cb = torch.randn(5, 7, dtype=dtype, device=device)
    torch.library.opcheck(op, (x, cb, 3))
    torch.library.opcheck(op, (x[:0], cb, 2))
    # as nearest_code: the first output is int64, so opcheck's AOT test cannot seed float gradients;
    # gradcheck and test_backward_matches_reference cover the backward
    xg, cg = x.clone().requires_grad_(), cb.clone().requires_grad_()
    torch.library.opcheck(op, (xg, cg, 3), test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


def test_compiles_without_graph_break():
    @torch.compile(fullgraph=True, backend="aot_eager")
    def f(x, cb):
        i, d = nearest_code_topk(x, cb, 3)
        return i, d * 2

    x, cb = torch.randn(20, 4), torch.randn(6, 4)
    i, d = f(x, cb)
    ri, rd = reference.nearest_code_topk(x, cb, 3)
    assert torch.equal(i, ri)
    torch.testing.assert_close(d, 2 * rd, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "x, cb, k, exc, match",
    [
        (torch.randn(4, 3), torch.randn(3, 3), 0, ValueError, r"k must be in \[1, K = 3\]"),
        (torch.randn(4, 3), torch.randn(3, 3), 4, ValueError, r"k must be in \[1, K = 3\]"),
        (torch.randn(4, 3), torch.randn(3, 3), 2.0, TypeError, "k must be an int"),
        (torch.randn(4, 3), torch.randn(3, 3), True, TypeError, "k must be an int"),
        (torch.randn(4, 5), torch.randn(3, 4), 1, ValueError, r"codebook must be Tensor\[K, D\] with D == x.size\(1\) == 5"),
        (torch.randn(4, 4), torch.randn(3, 4, dtype=torch.float64), 1, TypeError, "same dtype"),
        (torch.tensor([[0.0, float("nan")]]), torch.randn(3, 2), 2, ValueError, r"x contains NaN or inf \(first at row 0\)"),
        (torch.randn(2, 2), torch.tensor([[0.0, float("inf")]]), 1, ValueError, "codebook contains NaN or inf"),
    ],
)
def test_bad_input(x, cb, k, exc, match):
    with pytest.raises(exc, match=match):
        nearest_code_topk(x, cb, k)
    with pytest.raises(exc, match=match.split(r" \(first")[0]):  # the reference does not name the row
        reference.nearest_code_topk(x, cb, k)
    if isinstance(k, int) and not isinstance(k, bool) and "NaN" not in match:  # the compiled op checks too
        with pytest.raises((exc, RuntimeError), match=match.split(" ")[0]):
            torch.ops.tsvq.nearest_code_topk(x, cb, k)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_nonfinite_rows_are_flagged():
    x = torch.tensor([[0.0, float("nan")], [1.0, 1.0]], device="cuda")
    idx, dist = nearest_code_topk(x, torch.randn(3, 2, device="cuda"), 2)
    assert idx[0].tolist() == [-1, -1] and torch.isnan(dist[0]).all() and (idx[1] >= 0).all()
