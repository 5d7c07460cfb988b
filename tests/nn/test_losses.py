import copy
import math
import os
import socket

import pytest
import torch
import torch.nn.functional as F

from tsvq.nn import BarlowTwinsLoss, IterNorm, NTXentLoss, Projector, VIbCRegLoss, VICRegLoss
from tsvq.ops import reference


def _views(n=32, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g)
    return z1, z1 + 0.3 * torch.randn(n, d, generator=g)


def test_barlow_twins_module_wraps_op():
    z1, z2 = _views()
    loss = BarlowTwinsLoss(lambd=0.005, scale_by_dim=True)(z1, z2)
    torch.testing.assert_close(loss, reference.barlow_twins_loss(z1, z2, 0.005, 1e-5, False, True))


def test_vicreg_terms_by_hand():
    z1, z2 = _views()
    loss = VICRegLoss()(z1, z2)
    inv = ((z1 - z2) ** 2).mean()
    var = sum(torch.clamp(1 - torch.sqrt(z.var(0) + 1e-4), min=0).mean() for z in (z1, z2))
    cov = 0
    for z in (z1, z2):
        c = torch.cov(z.T)
        cov = cov + (c.pow(2).sum() - c.diagonal().pow(2).sum()) / z.shape[1]
    torch.testing.assert_close(loss, 25 * inv + 25 * var + 1 * cov)


def test_vicreg_minimum_for_identical_whitened_views():
    x = torch.randn(64, 8, dtype=torch.float64)
    z = torch.linalg.qr(x - x.mean(0))[0] * math.sqrt(63)  # centred, uncorrelated, std exactly 1
    loss = VICRegLoss(eps=0.0)(z, z)
    assert loss < 1e-10


def test_vibcreg_covariance_is_correlation_based():
    z1, z2 = _views(d=6)
    term = VIbCRegLoss.covariance_term(z1)
    corr = torch.corrcoef(z1.T)
    torch.testing.assert_close(term, (corr.pow(2).sum() - 6) / 36, rtol=1e-5, atol=1e-6)
    assert VIbCRegLoss().cov_weight == 200
    # Scale invariance: a correlation term does not change when a feature is rescaled.
    torch.testing.assert_close(VIbCRegLoss.covariance_term(z1 * torch.arange(1.0, 7.0)), term, rtol=1e-5, atol=1e-6)


def _covariance_terms_by_definition(z):
    """VICReg's and VIbCReg's covariance terms from the D x D matrices, as the papers write them."""
    d = z.shape[1]
    cov, corr = torch.cov(z.T), torch.corrcoef(z.T)
    off = ~torch.eye(d, dtype=torch.bool)
    return cov[off].pow(2).sum() / d, corr[off].pow(2).sum() / d ** 2


@pytest.mark.parametrize("n, d", [(8, 64), (32, 64), (33, 64), (40, 64), (64, 16)])  # Gram path iff 2n <= d
def test_covariance_terms_match_the_d_by_d_definition_value_and_gradient(n, d):
    g = torch.Generator().manual_seed(n + d)
    z = (torch.randn(n, d, generator=g, dtype=torch.float64) * torch.rand(d, generator=g, dtype=torch.float64) * 3
         ).requires_grad_()
    for i, term in enumerate((VICRegLoss.covariance_term, VIbCRegLoss.covariance_term)):
        got = term(z)
        want = _covariance_terms_by_definition(z)[i]
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
        (g_got,), (g_want,) = torch.autograd.grad(got, z), torch.autograd.grad(want, z)
        torch.testing.assert_close(g_got, g_want, rtol=1e-10, atol=1e-14)
    assert torch.autograd.gradcheck(VICRegLoss.covariance_term, (z[:6, :16].detach().clone().requires_grad_(),))
    assert torch.autograd.gradcheck(VIbCRegLoss.covariance_term, (z[:6, :16].detach().clone().requires_grad_(),))


def test_covariance_term_gram_path_keeps_float32_accuracy_with_one_dominant_feature():
    # The Gram path subtracts the diagonal; one feature at 1000x the others' std would leave
    # float32 about 1e-3 of relative accuracy there, so VICReg forms it in float64.
    g = torch.Generator().manual_seed(0)
    z = torch.randn(16, 512, generator=g)
    z[:, 0] *= 1000
    truth = _covariance_terms_by_definition(z.double())[0]
    got = VICRegLoss.covariance_term(z)
    assert got.dtype == torch.float32
    assert abs(got.double() - truth) / truth < 1e-6
    # VIbCReg's columns are normalised first (unit diagonal), so its float32 Gram path is accurate
    torch.testing.assert_close(VIbCRegLoss.covariance_term(z).double(),
                               _covariance_terms_by_definition(z.double())[1], rtol=1e-5, atol=0)


@pytest.mark.parametrize("loss", [VICRegLoss(), VIbCRegLoss()])
def test_vicreg_losses_are_float32_under_autocast(loss):
    z1, z2 = (z.bfloat16() for z in _views(n=8, d=64))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss(z1, z2)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, loss(z1.float(), z2.float()), rtol=1e-6, atol=0)


def test_ntxent_equals_direct_loop():
    z1, z2 = _views(n=6, d=5)
    tau = 0.5
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = 6
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        num = torch.exp(z[i] @ z[j] / tau)
        den = sum(torch.exp(z[i] @ z[k] / tau) for k in range(2 * n) if k != i)
        total = total - torch.log(num / den)
    torch.testing.assert_close(NTXentLoss(tau)(z1, z2), total / (2 * n))


def test_iternorm_whitens():
    torch.manual_seed(0)
    # Correlated features with covariance eigenvalues in [1, 4]: Newton-Schulz converges fast.
    q = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))[0]
    mix = q @ torch.diag(torch.linspace(1, 2, 8, dtype=torch.float64)) @ q.T
    x = torch.randn(4096, 8, dtype=torch.float64) @ mix + 3.0
    errors = []
    for T in (1, 3, 8):
        y = IterNorm(8, num_groups=1, T=T).double()(x)
        errors.append((torch.cov(y.T, correction=0) - torch.eye(8, dtype=torch.float64)).abs().max().item())
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.01  # more iterations, whiter output
    assert y.mean(0).abs().max() < 1e-8
    layer = IterNorm(8, num_groups=2)
    layer(x.float())
    layer.eval()
    assert layer(x[:3].float()).shape == (3, 8)


def test_projector_shapes_and_backward():
    p = Projector(128, (256, 256, 64), final_iternorm=True)
    x = torch.randn(16, 128, requires_grad=True)
    y = p(x)
    assert y.shape == (16, 64) and torch.isfinite(y).all()
    y.pow(2).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert [type(m).__name__ for m in Projector(128).net] == [
        "Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]


@pytest.mark.parametrize("final_iternorm", [False, True])
def test_projector_pair_equals_two_calls(final_iternorm):
    """One stacked pass per Linear, per-view normalisation: outputs, gradients and running
    statistics equal two separate calls (float64, so only summation order differs)."""
    torch.manual_seed(0)
    a = Projector(12, (32, 32, 16), final_iternorm=final_iternorm).double()
    b = copy.deepcopy(a)
    x1, x2 = torch.randn(7, 12, dtype=torch.float64), 3 * torch.randn(7, 12, dtype=torch.float64) + 1
    xs_a = [x.clone().requires_grad_() for x in (x1, x2)]
    xs_b = [x.clone().requires_grad_() for x in (x1, x2)]
    pa = a.pair(*xs_a)
    pb = (b(xs_b[0]), b(xs_b[1]))
    w = torch.randn(7, 16, dtype=torch.float64)
    for u, v in zip(pa, pb):
        torch.testing.assert_close(u, v)
    (pa[0] * w + pa[1].pow(2)).sum().backward()
    (pb[0] * w + pb[1].pow(2)).sum().backward()
    for u, v in zip(xs_a, xs_b):
        torch.testing.assert_close(u.grad, v.grad)
    for (name, u), v in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(u.grad, v.grad, msg=name)
    for (name, u), v in zip(a.named_buffers(), b.buffers()):
        torch.testing.assert_close(u, v, msg=name)
    # a wrong pairing (statistics over both views at once) would differ: the views' scales differ
    joint = a.net[1](a.net[0](torch.cat([x1, x2])))
    assert not torch.allclose(joint[:7], a.net[1](a.net[0](x1)))
    with pytest.raises(ValueError, match="same shape"):
        a.pair(x1, x2[:5])


@pytest.mark.parametrize("loss", [VICRegLoss(), VIbCRegLoss(), NTXentLoss(), BarlowTwinsLoss()])
def test_backward_finite(loss):
    z1, z2 = _views()
    z1.requires_grad_()
    loss(z1, z2).backward()
    assert torch.isfinite(z1.grad).all()


@pytest.mark.parametrize("loss", [VICRegLoss(), NTXentLoss(), BarlowTwinsLoss()])
def test_bad_views(loss):
    with pytest.raises(ValueError, match="same shape"):
        loss(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises((ValueError, TypeError), match=r"Tensor\[N, D\]|float"):
        loss(torch.randn(4), torch.randn(4))


def test_bad_constructor_arguments():
    for tau in (0.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature must be a finite float > 0"):
            NTXentLoss(tau)
    with pytest.raises(ValueError, match="N >= 2 samples over all ranks"):  # no negatives: the loss would be 0
        NTXentLoss()(torch.randn(1, 8), torch.randn(1, 8))
    with pytest.raises(ValueError, match="divisible"):
        IterNorm(10, num_groups=4)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bt_worker(rank, world, port, z1, z2, out):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        n = z1.shape[0] // world
        a = z1[rank * n:(rank + 1) * n].clone().requires_grad_()
        b = z2[rank * n:(rank + 1) * n].clone()
        loss = BarlowTwinsLoss(lambd=0.01)(a, b)
        loss.backward()
        out[rank] = (loss.detach(), a.grad)
    finally:
        dist.destroy_process_group()


def test_barlow_twins_distributed_uses_global_batch():
    z1, z2 = _views(n=16, d=8)
    mp = torch.multiprocessing.get_context("spawn")
    out = mp.Manager().dict()
    port = _free_port()
    procs = [mp.Process(target=_bt_worker, args=(r, 2, port, z1, z2, out)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    a = z1.clone().requires_grad_()
    full = BarlowTwinsLoss(lambd=0.01)(a, z2)
    full.backward()
    for r in range(2):
        torch.testing.assert_close(out[r][0], full.detach())
    # all_gather's backward sums the gradient of each rank's copy of the loss: world x the
    # single-process gradient, the same convention as DDP's gradient averaging undoing it.
    grad = torch.cat([out[0][1], out[1][1]])
    torch.testing.assert_close(grad, 2 * a.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("make", [BarlowTwinsLoss, VICRegLoss, VIbCRegLoss, NTXentLoss],
                         ids=lambda c: c.__name__)
def test_losses_compile_without_graph_breaks(make):
    torch._dynamo.reset()
    z1, z2 = _views()
    z1.requires_grad_()
    loss = make()
    eager = loss(z1, z2)
    (g_eager,) = torch.autograd.grad(eager, z1)
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")(z1, z2)
    (g_compiled,) = torch.autograd.grad(compiled, z1)
    torch.testing.assert_close((compiled, g_compiled), (eager, g_eager))
