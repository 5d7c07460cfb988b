from collections import Counter

import pytest
import torch

import tsvq
from tsvq.ops import barlow_twins_loss, reference

from helpers import CUDA, noncontiguous

pytestmark = pytest.mark.skipif(not tsvq.has_ops(), reason="tsvq._C not built")

TOL = {torch.float32: 2e-4, torch.float64: 1e-9, torch.float16: 1e-2, torch.bfloat16: 3e-2}


def _facebook_reference(z1, z2, lambd, scale_by_dim=False):
    """facebookresearch/barlowtwins main.py semantics, written out independently."""
    bn = torch.nn.BatchNorm1d(z1.shape[1], affine=False).to(z1.device, z1.dtype)
    c = bn(z1).T @ bn(z2) / z1.shape[0]
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
    loss = on + lambd * off
    return loss / z1.shape[1] if scale_by_dim else loss


@pytest.mark.parametrize("N,D", [(16, 64), (64, 16)])  # Gram path, blocked path
@pytest.mark.parametrize("amp_dtype", [torch.bfloat16, torch.float16])
def test_autocast_leaves_the_op_in_its_own_precision(device, N, D, amp_dtype):
    # Under torch.autocast (mixed-precision training) the op's GEMMs used to be cast to half
    # precision and fail ("expected scalar type Float but found BFloat16"); they run in float32.
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(N, D, generator=g).to(device)
    z2 = (z1 + 0.5 * torch.randn(N, D, generator=g).to(device))
    results = []
    for amp in (False, True):
        a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
            loss = barlow_twins_loss(a, b, 0.005, 1e-5, False, True)
            loss.backward()  # the backward op's GEMMs under autocast too
        results.append((loss.detach(), a.grad, b.grad))
    assert results[1][0].dtype == torch.float32
    for x, y in zip(*results):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


@pytest.mark.parametrize("N,D", [(16, 64), (64, 16), (32, 32), (2, 5), (300, 7)])  # Gram, blocked, both sides
@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("scale_by_dim", [False, True])
def test_value_and_gradient_match_reference(device, N, D, unbiased, scale_by_dim):
    g = torch.Generator().manual_seed(N * D)
    z1 = torch.randn(N, D, generator=g, dtype=torch.float64).to(device)
    z2 = (z1 + 0.5 * torch.randn(N, D, generator=g, dtype=torch.float64).to(device))
    grads = []
    for fn in (barlow_twins_loss, reference.barlow_twins_loss):
        a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
        loss = fn(a, b, 0.05, 1e-5, unbiased, scale_by_dim)
        loss.backward()
        grads.append((loss.detach(), a.grad, b.grad))
    for x, y in zip(*grads):
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-9)


def test_matches_facebook_batchnorm_semantics(device):
    z1, z2 = torch.randn(64, 128, device=device), torch.randn(64, 128, device=device)
    torch.testing.assert_close(barlow_twins_loss(z1, z2, 0.005), _facebook_reference(z1, z2, 0.005), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(barlow_twins_loss(z1, z2, 0.005, scale_by_dim=True),
                               _facebook_reference(z1, z2, 0.005, True), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("contiguous", [True, False])
def test_dtype_contiguity_grid(device, dtype, contiguous):
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(24, 40, generator=g).to(device, dtype)
    z2 = torch.randn(24, 40, generator=g).to(device, dtype)
    if not contiguous:
        z1, z2 = noncontiguous(z1), noncontiguous(z2)
    out = barlow_twins_loss(z1, z2, scale_by_dim=True)
    assert out.dtype == dtype and out.shape == ()
    ref = reference.barlow_twins_loss(z1.double(), z2.double(), scale_by_dim=True)
    torch.testing.assert_close(out.double(), ref, rtol=TOL[dtype], atol=TOL[dtype])
    a = z1.clone().requires_grad_()
    barlow_twins_loss(a, z2).backward()
    assert a.grad.dtype == dtype and torch.isfinite(a.grad.float()).all()


def test_identical_views_have_only_redundancy_loss():
    z = torch.randn(512, 8, dtype=torch.float64)
    # C = correlation matrix of z: diagonal 1 (up to eps), so the loss is lambd * off-diagonal.
    loss = barlow_twins_loss(z, z, lambd=1.0, eps=0.0)
    corr = torch.corrcoef(z.T)
    torch.testing.assert_close(loss, corr.pow(2).sum() - 8, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("N,D", [(6, 9), (9, 4)])
def test_gradcheck(device, N, D):
    z1 = torch.randn(N, D, dtype=torch.float64, device=device, requires_grad=True)
    z2 = torch.randn(N, D, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: barlow_twins_loss(a, b, 0.1, 1e-3, False, True), (z1, z2))
    assert torch.autograd.gradcheck(lambda a, b: barlow_twins_loss(a, b, 0.1, 1e-3, True, False), (z1, z2))


def test_opcheck(device):
    z1 = torch.randn(8, 12, device=device, requires_grad=True)
    z2 = torch.randn(8, 12, device=device, requires_grad=True)
    torch.library.opcheck(torch.ops.tsvq.barlow_twins_loss.default, (z1, z2, 0.005, 1e-5, False, True))
    torch.library.opcheck(torch.ops.tsvq.barlow_twins_loss.default, (z1.detach()[:, :4], z2.detach()[:, :4]))


def test_opcheck_private_ops(device):
    z1 = torch.randn(8, 12, device=device, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(8, 12, device=device, dtype=torch.float64, requires_grad=True)
    for a, b in ((z1, z2), (z1[:, :4], z2[:, :4])):  # Gram path (N < D), blocked path
        args = (a, b, 0.05, 1e-5, True, True)
        torch.library.opcheck(torch.ops.tsvq._barlow_twins_loss_forward.default, args)
        loss, *saved = torch.ops.tsvq._barlow_twins_loss_forward(*args)
        assert loss.requires_grad and not any(t.requires_grad for t in saved)  # intermediates: no gradient
        grad = torch.ones((), device=device, dtype=torch.float64)
        torch.library.opcheck(torch.ops.tsvq._barlow_twins_loss_backward.default,
                              (grad, *saved, 0.05, True, True, torch.float64))


@pytest.mark.parametrize("N,D", [(16, 64), (64, 16)])
def test_backward_recomputes_nothing_of_the_forward(N, D):
    # The forward's standardised views and Gram matrices are saved: the backward recomputes no
    # standardisation and, on the Gram path, runs no GEMM but the two that propagate through G;
    # the rest is the op's own kernel, whose [2, N, D] output hands both views a contiguous
    # gradient (no copy by the autograd engine).
    z1 = torch.randn(N, D, requires_grad=True)
    z2 = torch.randn(N, D, requires_grad=True)
    loss = barlow_twins_loss(z1, z2, 0.005)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        loss.backward()
    calls = Counter(e.name for e in prof.events() if e.name.startswith("aten::"))
    assert not any("batch_norm" in name for name in calls), calls
    assert not calls["aten::bmm"] and not calls["aten::copy_"] and not calls["aten::clone"], calls
    if N < D:
        assert calls["aten::mm"] == 2 and not calls["aten::addmm_"], calls
    assert z1.grad.is_contiguous() and z2.grad.is_contiguous()


def test_forward_is_one_gemm_and_the_ops_kernels():
    # Gram path: the batched GEMM of both Grams and their inner product; standardisation, the
    # diagonal and the loss are the op's own kernels (no concatenation, batch norm or reductions).
    z1, z2 = torch.randn(16, 64), torch.randn(16, 64)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        torch.ops.tsvq._barlow_twins_loss_forward(z1, z2, 0.005, 1e-5, False, False)
    calls = Counter(e.name for e in prof.events() if e.name.startswith("aten::"))
    assert calls["aten::bmm"] == 1 and calls["aten::dot"] == 1, calls
    for name in ("aten::cat", "aten::native_batch_norm", "aten::sum", "aten::mul", "aten::addcmul", "aten::to"):
        assert not calls[name], (name, calls)


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize("N,D", [(64, 256), (300, 70)])  # Gram path; blocked path, D not a multiple of 32
def test_cuda_step_runs_the_ops_kernels(N, D):
    """On CUDA a forward + backward is the op's three kernels (barlow_twins_kernels.cuh) around
    cuBLAS: no batch norm, concatenation or elementwise ATen kernels, so it is not launch-bound."""
    z1 = torch.randn(N, D, device="cuda", requires_grad=True)
    z2 = (z1.detach() + torch.randn(N, D, device="cuda")).requires_grad_()
    barlow_twins_loss(z1, z2, 0.005).backward()  # warm-up (cuBLAS handles, allocator)
    z1.grad = z2.grad = None
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        loss = barlow_twins_loss(z1, z2, 0.005)
        loss.backward()
        torch.cuda.synchronize()
    kernels = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    ours = [k for k in kernels if "tsvq::bt::" in k]
    assert len(ours) == 3, kernels
    assert not any("batch_norm" in k.lower() or "CatArray" in k or "reduce_kernel" in k for k in kernels), kernels
    a, b = z1.detach().clone().requires_grad_(), z2.detach().clone().requires_grad_()
    ref = reference.barlow_twins_loss(a, b, 0.005)
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(z1.grad, a.grad, rtol=1e-3, atol=1e-6)
    torch.testing.assert_close(z2.grad, b.grad, rtol=1e-3, atol=1e-6)


def test_compiles_without_graph_break():
    f = torch.compile(lambda a, b: barlow_twins_loss(a, b, 0.005) * 2, fullgraph=True, backend="aot_eager")
    z1, z2 = torch.randn(8, 16, requires_grad=True), torch.randn(8, 16)
    out = f(z1, z2)
    out.backward()
    torch.testing.assert_close(out, 2 * reference.barlow_twins_loss(z1, z2, 0.005))
    assert z1.grad is not None


@pytest.mark.parametrize(
    "z1, z2, kw, exc, match",
    [
        (torch.randn(4, 3), torch.randn(4, 2), {}, ValueError, "same shape"),
        (torch.randn(4), torch.randn(4), {}, ValueError, r"Tensor\[N, D\]"),
        (torch.randn(1, 3), torch.randn(1, 3), {}, ValueError, "N >= 2"),
        (torch.ones(4, 3, dtype=torch.long), torch.ones(4, 3, dtype=torch.long), {}, TypeError, "z1 must be float"),
        (torch.randn(4, 3), torch.randn(4, 3, dtype=torch.float64), {}, TypeError, "same dtype"),
        (torch.randn(4, 3), torch.randn(4, 3), {"lambd": -1.0}, ValueError, "lambd"),
        (torch.randn(4, 3), torch.randn(4, 3), {"eps": float("inf")}, ValueError, "eps must be a finite float"),
        (torch.randn(4, 3), torch.randn(4, 3), {"eps": float("nan")}, ValueError, "eps must be a finite float"),
        (torch.randn(4, 3), torch.randn(4, 3, device="meta"), {}, ValueError, "same device"),
    ],
)
def test_bad_input(z1, z2, kw, exc, match):
    with pytest.raises(exc, match=match):
        barlow_twins_loss(z1, z2, **kw)
