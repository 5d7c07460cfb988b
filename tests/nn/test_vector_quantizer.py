import contextlib
import os
import socket

import pytest
import torch
import torch.nn.functional as F

from helpers import compiled_twin

from tsvq._extension import reference_ops
from tsvq.nn import VectorQuantizer, kmeans
from tsvq.nn.quantize import functional as vq_functional
from tsvq.nn.quantize.functional import RotationTrick, orthogonal_reg_loss

try:  # the parity target; only the parity tests need it
    import vector_quantize_pytorch as vqp
except ImportError:
    vqp = None
needs_vqp = pytest.mark.skipif(vqp is None, reason="vector_quantize_pytorch (the parity target) is not installed")


def _pair(dim=16, K=8, decay=0.9, **kw):
    """tsvq's layer and VectorQuantize with the same codebook (and projections)."""
    torch.manual_seed(0)
    ours = VectorQuantizer(dim, K, decay=decay, **kw)
    theirs = vqp.VectorQuantize(dim, K, decay=decay, commitment_weight=1.0, **{"rotation_trick": False, **kw})
    if not isinstance(ours.project_in, torch.nn.Identity):
        theirs.project_in.load_state_dict(ours.project_in.state_dict())
        theirs.project_out.load_state_dict(ours.project_out.state_dict())
    theirs._codebook.embed.data.copy_(ours.codebook.detach().reshape(theirs._codebook.embed.shape))
    theirs._codebook.embed_avg.data.copy_(ours.codebook.detach().reshape(theirs._codebook.embed.shape))
    return ours, theirs


def _assert_same_step(ours, theirs, x, w, mask=None, seed=None, **forward_kw):
    """One training step of both layers on x (output weighted by w, plus the loss, backward): the
    same codes, and outputs, losses and input gradients equal to float32 rounding. Returns the codes.
    ``seed``: reseed torch's generator before each layer's step (the same sampled codes)."""
    res = []
    for m in (ours, theirs):
        xr = x.clone().requires_grad_()
        if seed is not None:
            torch.manual_seed(seed)
        q, i, loss = m(xr, mask=mask, **forward_kw)
        ((q * w).sum() + loss).backward()
        res.append((q.detach(), i, loss.detach(), xr.grad))
    (q1, i1, l1, g1), (q2, i2, l2, g2) = res
    assert q1.shape == x.shape and torch.equal(i1, i2)
    torch.testing.assert_close(q1, q2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-5)
    return i1


@needs_vqp
@pytest.mark.parametrize(
    "shape, kw",
    [
        ((32, 16), {}),
        ((4, 50, 16), {}),
        ((4, 16, 50), {"channel_last": False}),
        ((2, 16, 6, 5), {"accept_image_fmap": True}),
    ],
)
def test_matches_vector_quantize_pytorch_over_training_steps(shape, kw):
    ours, theirs = _pair(**kw)
    g = torch.Generator().manual_seed(1)
    for step in range(4):
        x = torch.randn(*shape, generator=g) + 0.5 * step
        q1, i1, l1 = ours(x)
        q2, i2, l2 = theirs(x)
        assert q1.shape == x.shape and i1.shape == i2.shape
        assert torch.equal(i1, i2)
        torch.testing.assert_close(q1, q2, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ours.codebook, theirs.codebook, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours.cluster_size, theirs._codebook.cluster_size[0], rtol=1e-5, atol=1e-6)


@needs_vqp
@pytest.mark.parametrize(
    "shape, kw",
    [
        ((4, 50, 16), {"heads": 4, "codebook_dim": 4}),
        ((32, 16), {"heads": 2, "codebook_dim": 8}),
        ((4, 50, 16), {"heads": 4, "codebook_dim": 4, "separate_codebook_per_head": True}),
        ((4, 50, 16), {"heads": 2, "codebook_dim": 12, "separate_codebook_per_head": True}),  # projection 16 -> 24
        ((4, 50, 16), {"heads": 4, "codebook_dim": 4, "separate_codebook_per_head": True, "rotation_trick": True}),
        ((4, 50, 16), {"heads": 2, "codebook_dim": 8, "separate_codebook_per_head": True, "use_cosine_sim": True}),
        ((4, 16, 50), {"heads": 2, "codebook_dim": 8, "separate_codebook_per_head": True, "channel_last": False}),
        ((2, 16, 6, 5), {"heads": 4, "codebook_dim": 4, "separate_codebook_per_head": True,
                         "accept_image_fmap": True}),
        ((4, 50, 16), {"heads": 1, "separate_codebook_per_head": True}),  # VectorQuantize: codebook [1, K, D]
    ],
    ids=["shared", "shared-2d", "separate", "separate-projection", "separate-rotation-trick", "separate-cosine",
         "separate-channel-first", "separate-image-fmap", "separate-one-head"],
)
def test_heads_match_vector_quantize_pytorch_over_training_steps(shape, kw):
    # Multi-head quantisation (VectorQuantize's heads / separate_codebook_per_head): codes, output,
    # loss, input gradient and every codebook equal over EMA training steps.
    ours, theirs = _pair(16, 8, **kw)
    h, separate = kw["heads"], kw.get("separate_codebook_per_head", False)
    lead = (h,) if separate else ()
    assert ours.codebook.shape == theirs.codebook.shape == (*lead, 8, ours.codebook_dim)
    g = torch.Generator().manual_seed(1)
    for step in range(4):
        x = torch.randn(*shape, generator=g) + 0.5 * step
        w = torch.randn(*shape, generator=g)
        i1 = _assert_same_step(ours, theirs, x, w)
        assert h == 1 or i1.shape[-1] == h
        torch.testing.assert_close(ours.codebook, theirs.codebook, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours.cluster_size, theirs._codebook.cluster_size.reshape(ours.cluster_size.shape),
                                   rtol=1e-5, atol=1e-6)
    assert ours.perplexity.shape == ours.fraction_used.shape == lead


@pytest.mark.parametrize("masked", [False, True])
def test_separate_heads_restart_dead_codes_from_their_own_rows(masked):
    # Head 0's sub-vectors lie near -50, head 1's near +50: every code restarted in a head's
    # codebook must be one of that head's (real) sub-vectors.
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 16, codebook_dim=4, heads=2, separate_codebook_per_head=True, decay=0.8,
                         threshold_ema_dead_code=2.0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 20, 2, 4, generator=g) + torch.tensor([-50.0, 50.0]).view(2, 1)
    mask = torch.rand(3, 20, generator=g) < 0.5 if masked else torch.ones(3, 20, dtype=torch.bool)
    vq(x.flatten(2), mask=mask if masked else None)
    restarted = vq.cluster_size == 2.0  # a restart sets the cluster size to the threshold
    assert restarted.sum(1).min() >= 8  # most codes were dead after one step in both heads
    for j in range(2):
        rows = x[mask][:, j]  # head j's real sub-vectors
        for code in vq.codebook[j][restarted[j]]:
            assert (rows == code).all(1).any()


def test_separate_heads_kmeans_init_is_kmeans_of_each_head():
    torch.manual_seed(0)
    vq = VectorQuantizer(6, 5, codebook_dim=3, heads=2, separate_codebook_per_head=True, kmeans_init=True,
                         freeze_codebook=True)  # k-means still runs; no EMA step after it
    x = torch.randn(4, 30, 6)
    torch.manual_seed(3)
    vq(x)
    torch.manual_seed(3)
    per_head = x.reshape(-1, 2, 3)
    expected = [kmeans(per_head[:, j], 5, 10) for j in range(2)]
    torch.testing.assert_close(vq.codebook, torch.stack([m for m, _ in expected]))
    torch.testing.assert_close(vq.cluster_size, torch.stack([c for _, c in expected]))


def test_heads_bad_indices():
    vq = VectorQuantizer(6, 5, codebook_dim=3, heads=2)
    with pytest.raises(ValueError, match="heads = 2"):
        vq.get_codes_from_indices(torch.zeros(4, 3, dtype=torch.long))


def test_straight_through_gradient_and_commitment_gradient():
    vq = VectorQuantizer(8, 4, commitment_weight=0.25)
    x = torch.randn(3, 10, 8, requires_grad=True)
    codebook = vq.codebook.clone()  # the EMA update after the search moves vq.codebook
    q, idx, loss = vq(x)
    w = torch.randn_like(q)
    (gq,) = torch.autograd.grad((q * w).sum(), x, retain_graph=True)
    torch.testing.assert_close(gq, w)  # straight-through: d quantized / d x = identity
    (gl,) = torch.autograd.grad(loss, x)
    codes = codebook[idx]
    torch.testing.assert_close(gl, 0.25 * 2 * (x - codes).detach() / x.numel())


@needs_vqp
@pytest.mark.parametrize(
    "shape, kw",
    [
        ((64, 16), {}),
        ((4, 50, 16), {}),
        ((4, 16, 6, 5), {"accept_image_fmap": True}),
        ((4, 50, 16), {"use_cosine_sim": True}),
        ((4, 50, 16), {"codebook_dim": 6}),
    ],
)
def test_rotation_trick_matches_vector_quantize_pytorch(shape, kw):
    # Same codes, outputs, losses, EMA codebooks and input gradients as VectorQuantize's
    # rotation trick (its default gradient) over several training steps.
    ours, theirs = _pair(16, 8, rotation_trick=True, **kw)
    g = torch.Generator().manual_seed(2)
    for step in range(3):
        x = torch.randn(*shape, generator=g) + 0.3 * step
        w = torch.randn(*shape, generator=g)
        _assert_same_step(ours, theirs, x, w)
        torch.testing.assert_close(ours.codebook, theirs.codebook[0] if theirs.codebook.dim() == 3 else theirs.codebook,
                                   rtol=1e-5, atol=1e-5)
    # The rotated gradient is not the straight-through one (the test would pass vacuously otherwise).
    ste = VectorQuantizer(16, 8, decay=0.9, **kw).eval()
    ste.load_state_dict(ours.state_dict())
    ours.eval()
    xr = x.clone().requires_grad_()
    (ours(xr)[0] * w).sum().backward()
    xs = x.clone().requires_grad_()
    (ste(xs)[0] * w).sum().backward()
    assert (xr.grad - xs.grad).abs().max() > 1e-2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rotation_trick_gradient_is_the_rotation(dtype):
    # Oracle: the explicit D x D rotation of Fifty et al. (2024), eq. in sec. 4.2, per vector.
    torch.manual_seed(3)
    D = 6
    vq = VectorQuantizer(D, 5, rotation_trick=True).to(dtype).eval()
    x = torch.randn(40, D, dtype=dtype)
    x[0] = 0.0  # zero vector: the norm clamp keeps the gradient finite
    xr = x.clone().requires_grad_()
    q, idx, _ = vq(xr)
    codes = vq.codebook[idx]
    assert torch.equal(q.detach(), codes)  # exactly the codewords (the STE form is only close)
    g = torch.randn_like(q)
    (grad,) = torch.autograd.grad((q * g).sum(), xr)
    # z antiparallel to z_q (u + q = 0, so w = 0 and R is the reflection I - 2 q q^T), through the
    # autograd function itself: no nearest-codeword search picks such a pair with this codebook.
    x = torch.cat([x, -0.5 * codes[2:3]])
    codes = torch.cat([codes, codes[2:3]])
    g = torch.cat([g, torch.randn(1, D, dtype=dtype)])
    xr = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad((RotationTrick.apply(xr, codes) * g).sum(), xr)
    assert torch.isfinite(grad).all()
    for n in range(x.shape[0]):
        e, c = x[n].double(), codes[n].double()
        u = e / e.norm().clamp_min(1e-6)
        qq = c / c.norm().clamp_min(1e-6)
        w = (u + qq) / (u + qq).norm().clamp_min(1e-6)
        R = torch.eye(D, dtype=torch.float64) - 2 * torch.outer(w, w) + 2 * torch.outer(qq, u)
        lam = c.norm() / e.norm().clamp_min(1e-6)
        if n > 0:
            torch.testing.assert_close(R @ R.T, torch.eye(D, dtype=torch.float64))  # a rotation
            torch.testing.assert_close(lam * (R @ e), c)  # that maps z onto z_q
        expected = lam * (R.T @ g[n].double())
        tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-8)
        torch.testing.assert_close(grad[n].double(), expected, **tol)


@pytest.mark.parametrize("kw", [dict(rotation_trick=True),
                                dict(orthogonal_reg_weight=10.0, orthogonal_reg_active_codes_only=True,
                                     orthogonal_reg_max_codes=8),
                                dict(threshold_ema_dead_code=1.0, mask=True),
                                dict(heads=2, codebook_dim=4, separate_codebook_per_head=True, threshold_ema_dead_code=1.0,
                                     orthogonal_reg_weight=1.0, mask=True)],
                         ids=["rotation-trick", "orthogonal-reg", "mask", "separate-heads"])
def test_gradient_options_compile_without_graph_breaks(kw):
    torch._dynamo.reset()
    kw = dict(kw)
    mask = (torch.rand(4, 32, generator=torch.Generator().manual_seed(3)) < 0.5) if kw.pop("mask", False) else None
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 16, decay=0.9, **kw)
    ref = VectorQuantizer(8, 16, decay=0.9, **kw)
    ref.load_state_dict(vq.state_dict())
    compiled = torch.compile(vq, fullgraph=True, backend="aot_eager")
    x = torch.randn(4, 32, 8)
    w = torch.randn(4, 32, 8)
    outs = []
    for m in (compiled, ref):
        torch.manual_seed(1)
        xr = x.clone().requires_grad_()
        q, _, loss = m(xr, mask=mask)
        ((q * w).sum() + loss).backward()
        outs.append((loss.detach(), xr.grad, m.codebook.grad if m.codebook.requires_grad else None))
    torch.testing.assert_close(outs[0], outs[1])


@needs_vqp
@pytest.mark.parametrize("kw", [{}, {"orthogonal_reg_active_codes_only": True}, {"orthogonal_reg_max_codes": 64},
                                {"use_cosine_sim": True}, {"heads": 2, "codebook_dim": 8},
                                {"heads": 2, "codebook_dim": 8, "separate_codebook_per_head": True}])
def test_orthogonal_reg_matches_vector_quantize_pytorch(kw):
    # Loss, codes and codebook gradient equal VectorQuantize(orthogonal_reg_weight=10) over steps in
    # which an optimiser also moves the (EMA) codebook; max_codes >= K draws nothing.
    ours, theirs = _pair(16, 32, orthogonal_reg_weight=10.0, **kw)
    assert isinstance(ours.codebook, torch.nn.Parameter)
    g = torch.Generator().manual_seed(1)
    # With cosine similarity, after the optimiser's step the codebook rows are off the unit sphere;
    # tsvq searches and quantises with the re-normalised rows, VectorQuantize with the raw ones (a
    # dot product, not the cosine), so only the first step is comparable.
    for step in range(1 if kw.get("use_cosine_sim") else 3):
        x = torch.randn(4, 6, 16, generator=g)  # 24 vectors: some codes unused
        (q1, i1, l1), (q2, i2, l2) = ours(x), theirs(x)
        l1.backward()
        l2.backward()
        assert torch.equal(i1, i2)
        torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ours.codebook.grad, theirs._codebook.embed.grad.reshape(ours.codebook.shape),
                                   rtol=1e-4, atol=1e-7)
        assert ours.codebook.grad.abs().max() > 0
        for p in (ours.codebook, theirs._codebook.embed):
            with torch.no_grad():
                p -= 0.5 * p.grad
            p.grad = None
        torch.testing.assert_close(ours.codebook, theirs._codebook.embed.reshape(ours.codebook.shape), rtol=1e-5,
                                   atol=1e-6)
    plain = VectorQuantizer(16, 32, decay=0.9, **{k: v for k, v in kw.items() if not k.startswith("orthogonal")})
    plain.load_state_dict(ours.state_dict())
    x = torch.randn(10, 16)
    assert ours.eval()(x)[2] == plain.eval()(x)[2]  # eval: the commitment loss, no regulariser


@pytest.mark.parametrize("K, D", [(40, 6), (5, 12)], ids=["KxK-larger-than-DxD", "KxK"])
def testorthogonal_reg_loss_against_the_cosine_matrix(K, D):
    g = torch.Generator().manual_seed(0)
    cb = torch.randn(K, D, generator=g, dtype=torch.float64, requires_grad=True)
    w = (torch.rand(K, generator=g) < 0.6).double()
    w[0] = 1
    c = F.normalize(cb[w.bool()], dim=-1)
    n = c.shape[0]
    expected = (c @ c.T).square().sum() / n**2 - 1 / n
    torch.testing.assert_close(orthogonal_reg_loss(cb, w), expected)
    assert torch.autograd.gradcheck(lambda t: orthogonal_reg_loss(t, w), (cb,))
    q, _ = torch.linalg.qr(torch.randn(D, D, dtype=torch.float64, generator=g))
    assert abs(orthogonal_reg_loss(q[: min(K, D)], torch.ones(min(K, D), dtype=torch.float64))) < 1e-12


def test_orthogonal_reg_max_codes_draws_uniformly_among_the_kept_codes(monkeypatch):
    K, M = 12, 4
    vq = VectorQuantizer(8, K, orthogonal_reg_weight=1.0, orthogonal_reg_active_codes_only=True,
                         orthogonal_reg_max_codes=M)
    seen = []
    # [G = 1, M, D] and [1, M] for one codebook
    monkeypatch.setattr(vq_functional, "orthogonal_reg_loss", lambda cb, w: seen.append((cb[0], w[0])) or cb.sum() * 0)
    counts = torch.tensor([3.0, 0, 1, 1, 0, 2, 5, 0, 1, 0, 0, 4])  # 7 used codes
    picked = torch.zeros(K)
    torch.manual_seed(0)
    for _ in range(1400):
        vq._orthogonal_reg(counts, torch.float32)
        cb, w = seen.pop()
        rows = torch.cdist(cb.detach(), vq.codebook.detach()).argmin(1)
        assert cb.shape[0] == M and w.sum() == M and len(set(rows.tolist())) == M
        assert (counts[rows] > 0).all()
        picked[rows] += 1
    assert (picked[counts == 0] == 0).all()
    torch.testing.assert_close(picked[counts > 0] / 1400, torch.full((7,), M / 7), atol=0.05, rtol=0)
    vq._orthogonal_reg(torch.tensor([1.0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]), torch.float32)  # fewer than M used
    cb, w = seen.pop()
    assert cb.shape[0] == M and w.sum() == 2


@needs_vqp
@pytest.mark.parametrize("shape, kw", [((4, 20, 16), {}), ((4, 16, 20), {"channel_last": False}),
                                       ((4, 20, 16), {"rotation_trick": True})])
def test_mask_matches_vector_quantize_pytorch(shape, kw):
    ours, theirs = _pair(16, 8, **kw)
    g = torch.Generator().manual_seed(1)
    for step in range(3):
        x = torch.randn(*shape, generator=g)
        mask = torch.rand(4, 20, generator=g) < 0.7
        i1 = _assert_same_step(ours, theirs, x, torch.randn(*shape, generator=g), mask=mask)
        assert (i1[~mask] == -1).all()
        torch.testing.assert_close(ours.codebook, theirs.codebook.reshape(8, 16), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours.cluster_size, theirs._codebook.cluster_size[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kw", [dict(decay=0.9), dict(decay=None), dict(decay=0.9, use_cosine_sim=True),
                                dict(decay=0.9, kmeans_init=True), dict(decay=0.9, codebook_dim=5),
                                dict(decay=0.9, orthogonal_reg_weight=1.0, orthogonal_reg_active_codes_only=True),
                                dict(decay=0.9, heads=2, codebook_dim=3),
                                dict(decay=0.9, heads=2, codebook_dim=3, separate_codebook_per_head=True, kmeans_init=True),
                                dict(decay=None, heads=3, codebook_dim=4, separate_codebook_per_head=True)])
def test_mask_is_quantising_only_the_real_vectors(kw):
    # Oracle: the same layer on the real vectors alone, packed into one sequence.
    torch.manual_seed(0)
    a = VectorQuantizer(6, 8, **kw)
    b = VectorQuantizer(6, 8, **kw)
    b.load_state_dict(a.state_dict())
    g = torch.Generator().manual_seed(2)
    for step in range(3):
        x = torch.randn(3, 10, 6, generator=g)
        mask = torch.rand(3, 10, generator=g) < 0.6
        x_pad = torch.where(mask.unsqueeze(-1), x, float("nan"))  # padding holds NaN
        xa = x_pad.clone().requires_grad_()
        xb = x[mask].unsqueeze(0).requires_grad_()
        torch.manual_seed(step)
        qa, ia, la = a(xa, mask=mask)
        torch.manual_seed(step)
        qb, ib, lb = b(xb)
        torch.testing.assert_close(la, lb)
        assert torch.equal(ia[mask], ib[0]) and (ia[~mask] == -1).all()
        torch.testing.assert_close(qa[mask], qb[0])
        assert (qa[~mask] == 0).all()
        (qa.square().sum() + la).backward()
        (qb.square().sum() + lb).backward()
        torch.testing.assert_close(xa.grad[mask], xb.grad[0])
        assert (xa.grad[~mask] == 0).all()
        for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
            assert torch.isfinite(pa.grad).all(), name
            torch.testing.assert_close(pa.grad, pb.grad, msg=name)
            pa.grad = pb.grad = None
        for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
            torch.testing.assert_close(ta, tb, msg=name)
        torch.testing.assert_close(a.perplexity, b.perplexity)


def test_mask_dead_code_restart_takes_real_vectors_only():
    vq = VectorQuantizer(4, 16, decay=0.9, threshold_ema_dead_code=2.0)
    x = torch.randn(2, 50, 4) + 3.0
    mask = torch.zeros(2, 50, dtype=torch.bool)
    mask[0, :5] = True  # five real vectors, 95 padding (zeros after masking)
    vq(x, mask=mask)
    dead_rows = vq.codebook[vq.cluster_size == 2.0]  # restarted codes get cluster size = threshold
    assert dead_rows.shape[0] > 0
    assert (torch.cdist(dead_rows, x[0, :5]).min(1).values < 1e-6).all()
    vq(x, mask=torch.zeros(2, 50, dtype=torch.bool))  # padding only: nothing to restart from, no error
    assert torch.isfinite(vq.codebook).all()


@pytest.mark.parametrize(
    "kw, x, mask, exc, match",
    [
        ({}, torch.randn(4, 5, 8), torch.ones(4, 6, dtype=torch.bool), ValueError, r"shape \[B, N\] = \[4, 5\]"),
        ({}, torch.randn(4, 5, 8), torch.ones(4, 5), TypeError, "bool tensor"),
        ({}, torch.randn(4, 8), torch.ones(4, 1, dtype=torch.bool), ValueError, "sequence input"),
        ({"accept_image_fmap": True}, torch.randn(2, 8, 3, 3), torch.ones(2, 9, dtype=torch.bool), ValueError,
         "sequence input"),
        ({"channel_last": False}, torch.randn(4, 8, 5), torch.ones(4, 8, dtype=torch.bool), ValueError,
         r"\[4, 5\]"),
    ],
)
def test_bad_mask(kw, x, mask, exc, match):
    with pytest.raises(exc, match=match):
        VectorQuantizer(8, 4, **kw)(x, mask=mask)


@needs_vqp
@pytest.mark.parametrize("shape, kw", [((4, 20, 16), {}), ((4, 16, 20), {"channel_last": False}),
                                       ((4, 20, 16), {"heads": 2, "codebook_dim": 8, "separate_codebook_per_head": True})])
def test_lens_is_the_mask_of_the_leading_vectors(shape, kw):
    # lens = [20, 13, 0, 7]: the same step as mask = arange(N) < lens, and as VectorQuantize(lens=...)
    # (channel-last, one head: VectorQuantize builds the mask from x.shape[1] before moving channels
    # last, and its masked commitment loss compares with the unsplit input).
    lens = torch.tensor([20, 13, 0, 7])
    mask = torch.arange(20) < lens.unsqueeze(1)
    ours, theirs = _pair(16, 8, **kw)
    twin = VectorQuantizer(16, 8, decay=0.9, **kw)
    twin.load_state_dict(ours.state_dict())
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    q1, i1, l1 = ours(x, lens=lens)
    q2, i2, l2 = twin(x, mask=mask)
    assert torch.equal(i1, i2) and torch.equal(q1, q2) and torch.equal(l1, l2) and (i1[~mask] == -1).all()
    for a, b in zip(ours.state_dict().values(), twin.state_dict().values()):
        assert torch.equal(a, b)
    if not kw:
        q3, i3, l3 = theirs(x, lens=lens)
        assert torch.equal(i1, i3)
        torch.testing.assert_close(q1, q3, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(l1, l3, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kw, x, lens, exc, match", [
    ({}, torch.randn(4, 5, 8), torch.tensor([1, 2, 3]), ValueError, r"shape \[B\] = \[4\]"),
    ({}, torch.randn(4, 5, 8), torch.ones(4), TypeError, "integer tensor"),
    ({}, torch.randn(4, 5, 8), torch.ones(4, dtype=torch.bool), TypeError, "integer tensor"),
    ({}, torch.randn(4, 8), torch.ones(4, dtype=torch.long), ValueError, "lens is for sequence input"),
    ({"accept_image_fmap": True}, torch.randn(2, 8, 3, 3), torch.ones(2, dtype=torch.long), ValueError,
     "lens is for sequence input"),
])
def test_bad_lens(kw, x, lens, exc, match):
    with pytest.raises(exc, match=match):
        VectorQuantizer(8, 4, **kw)(x, lens=lens)
    with pytest.raises(ValueError, match="mask or lens, not both"):
        VectorQuantizer(8, 4)(torch.randn(4, 5, 8), mask=torch.ones(4, 5, dtype=torch.bool),
                              lens=torch.ones(4, dtype=torch.long))


@needs_vqp
def test_freeze_codebook_matches_vector_quantize_pytorch():
    ours, theirs = _pair(freeze_codebook=True, threshold_ema_dead_code=2.0)
    before = ours.codebook.clone()
    g = torch.Generator().manual_seed(1)
    for step in range(3):
        x = torch.randn(4, 50, 16, generator=g) + step
        (q1, i1, l1), (q2, i2, l2) = ours(x), theirs(x)
        assert torch.equal(i1, i2)
        torch.testing.assert_close(q1, q2)
        torch.testing.assert_close(l1, l2)
    assert torch.equal(ours.codebook, before) and (ours.cluster_size == 1).all()
    assert ours.fraction_used > 0  # the batch statistics are still kept


@needs_vqp
def test_every_vector_quantize_keyword_at_its_default_is_accepted():
    # A VectorQuantize configuration that spells out all of its keywords at their defaults runs
    # unchanged (rotation_trick set: its default None means True, tsvq asks for a bool) and gives
    # VectorQuantize's step.
    import inspect

    params = inspect.signature(vqp.VectorQuantize.__init__).parameters
    kw = {name: p.default for name, p in params.items()
          if name not in ("self", "dim", "codebook_size") and p.default is not inspect.Parameter.empty}
    kw.update(rotation_trick=False, decay=0.9)
    torch.manual_seed(0)
    ours = VectorQuantizer(16, 8, **kw)
    theirs = vqp.VectorQuantize(16, 8, **kw)
    theirs._codebook.embed.data.copy_(ours.codebook.detach()[None])
    theirs._codebook.embed_avg.data.copy_(ours.codebook.detach()[None])
    _assert_same_step(ours, theirs, torch.randn(4, 50, 16), torch.randn(4, 50, 16))
    kw = {name: p.default for name, p in inspect.signature(vqp.ResidualVQ.__init__).parameters.items()
          if name not in ("self", "kwargs", "vq_kwargs") and p.default is not inspect.Parameter.empty}
    from tsvq.nn import ResidualVectorQuantizer
    ResidualVectorQuantizer(dim=16, codebook_size=8, **{**kw, "num_quantizers": 2})


@pytest.mark.parametrize("kw, exc, match", [
    (dict(learnable_codebook=True, ema_update=False), ValueError, "decay=None"),
    (dict(stochastic_sample_codes=True, straight_through=True), ValueError, "Gumbel-softmax"),
    (dict(affine_param=True), ValueError, "not provided"),
    (dict(accept_3d_fmap=True), ValueError, "accept_image_fmap"),
    (dict(sync_kmeans=False), ValueError, "sync_codebook"),
    (dict(rotation_trick=None), ValueError, "True or False"),
    (dict(no_such_option=1), TypeError, "unexpected keyword argument 'no_such_option'"),
])
def test_vector_quantize_keywords_tsvq_does_not_provide_are_refused_with_a_hint(kw, exc, match):
    with pytest.raises(exc, match=match):
        VectorQuantizer(8, 4, **kw)
    VectorQuantizer(8, 4, decay=None, learnable_codebook=True, ema_update=False)  # what the hint says is accepted
    with pytest.raises(ValueError, match="decay=None"):
        VectorQuantizer(8, 4, decay=None, ema_update=True)


@pytest.mark.parametrize("kw, exc, match", [(dict(beam_size=0), ValueError, "beam_size must be an int >= 1"),
                                            (dict(beam_size=2, use_cosine_sim=True), ValueError, "beam search"),
                                            (dict(eval_beam_size=2), ValueError, "eval_beam_size needs beam_size"),
                                            (dict(beam_size=2, beam_score_quantizer_weights=[1.0]), ValueError,
                                             "beam_score_quantizer_weights must be 2 finite floats"),
                                            (dict(quant_grad_frac=1.5), ValueError, r"quant_grad_frac must be in \[0, 1\]"),
                                            (dict(no_such_option=1), TypeError, "no_such_option")])
def test_residual_vq_keywords_tsvq_does_not_provide_are_refused(kw, exc, match):
    from tsvq.nn import ResidualVectorQuantizer
    with pytest.raises(exc, match=match):
        ResidualVectorQuantizer(8, 2, 4, **kw)


@needs_vqp
@pytest.mark.parametrize("shape, kw, masked", [
    ((4, 50, 16), {}, False), ((4, 50, 16), {}, True), ((4, 16, 50), {"channel_last": False}, False),
    ((4, 50, 16), {"use_cosine_sim": True}, False),
    ((4, 50, 16), {"heads": 2, "codebook_dim": 8}, True),
    ((4, 50, 16), {"heads": 2, "codebook_dim": 8, "separate_codebook_per_head": True}, True),
], ids=["plain", "mask", "channel-first", "cosine", "heads", "separate-heads"])
def test_cross_entropy_commitment_matches_vector_quantize_pytorch(shape, kw, masked):
    # Codes, outputs, losses and EMA codebooks over training steps. Input gradients: with a frozen
    # codebook. (With the EMA update VectorQuantize's gradient is computed with the codebook after
    # the update, which its in-place `.data` write hides from autograd; tsvq's is the gradient of the
    # loss it returns, checked in the next test.)
    ours, theirs = _pair(commitment_use_cross_entropy_loss=True, **kw)
    g = torch.Generator().manual_seed(1)
    for step in range(3):
        x = torch.randn(*shape, generator=g) + 0.5 * step
        mask = torch.rand(4, 50, generator=g) < 0.7 if masked else None
        (q1, i1, l1), (q2, i2, l2) = ours(x, mask=mask), theirs(x, mask=mask)
        assert torch.equal(i1, i2)
        torch.testing.assert_close(q1, q2, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ours.codebook, theirs.codebook.reshape(ours.codebook.shape), rtol=1e-5,
                                   atol=1e-5)
    ours.freeze_codebook = theirs.freeze_codebook = True
    _assert_same_step(ours, theirs, x, torch.randn(*shape, generator=g), mask)


def test_cross_entropy_commitment_in_chunks_equals_one_chunk(monkeypatch):
    # Chunked and recomputed in backward: the same loss and gradients (input and a loss-trained
    # codebook) as the whole N x K logits at once; and the definition, on a tiny case.
    torch.manual_seed(0)
    x = torch.randn(300, 8, dtype=torch.float64)
    res = []
    for chunk in (1 << 22, 64):  # one chunk; 64 logits = 4 rows a chunk
        monkeypatch.setattr(vq_functional, "CHUNK_LOGITS", chunk)
        torch.manual_seed(1)
        vq = VectorQuantizer(8, 16, decay=None, commitment_use_cross_entropy_loss=True).double()
        xr = x.clone().requires_grad_()
        _, idx, loss = vq(xr)
        loss.backward()
        res.append((loss.detach(), xr.grad, vq.codebook.grad, idx))
    for a, b in zip(*res):
        torch.testing.assert_close(a, b)
    e = vq.codebook.detach()
    logits = -torch.cdist(x, e)
    ce = F.cross_entropy(logits, res[0][3])
    torch.testing.assert_close(res[0][0], ce + F.mse_loss(e[res[0][3]], x))  # + the codebook loss (decay=None)
    # EMA codebook, several chunks: the input gradient is that of the loss it returns, computed with
    # the codebook as it was before this step's EMA update.
    torch.manual_seed(1)
    vq = VectorQuantizer(8, 16, decay=0.5, commitment_weight=0.25, commitment_use_cross_entropy_loss=True).double()
    before = vq.codebook.clone()
    xr = x.clone().requires_grad_()
    _, idx, loss = vq(xr)
    loss.backward()
    assert not torch.equal(vq.codebook, before)
    xe = x.clone().requires_grad_()
    expected = 0.25 * F.cross_entropy(-torch.cdist(xe, before), idx)
    expected.backward()
    torch.testing.assert_close(loss, expected.detach())
    torch.testing.assert_close(xr.grad, xe.grad)


_SAMPLING_CASES = [
    ((4, 50, 16), {}, False), ((32, 16), {}, False), ((4, 50, 16), {}, True),
    ((4, 16, 50), {"channel_last": False}, False), ((2, 16, 6, 5), {"accept_image_fmap": True}, False),
    ((4, 50, 16), {"use_cosine_sim": True}, False), ((4, 50, 16), {"heads": 2, "codebook_dim": 8}, False),
    ((4, 50, 16), {"heads": 2, "codebook_dim": 8, "separate_codebook_per_head": True}, False),
]  # (VectorQuantize 1.32 fails on a mask with heads > 1 and the MSE commitment loss)
_SAMPLING_IDS = ["plain", "2d", "mask", "channel-first", "image-fmap", "cosine", "heads", "separate-heads"]


@needs_vqp
@pytest.mark.parametrize("shape, kw, masked", _SAMPLING_CASES, ids=_SAMPLING_IDS)
def test_stochastic_sampling_matches_vector_quantize_pytorch(shape, kw, masked):
    # Codes drawn from softmax(-||z - e|| / temperature): with the same seed, the same draws as
    # VectorQuantize (on a CPU the Gumbel noise is one serial stream, visited in its row order), so
    # the same codes, outputs, losses and EMA codebooks over training steps; input gradients with
    # a frozen codebook (with the EMA update VectorQuantize's backward sees the updated codebook).
    # Most codes differ from the nearest ones, so the test sees the sampling.
    ours, theirs = _pair(stochastic_sample_codes=True, sample_codebook_temp=0.5, **kw)
    g = torch.Generator().manual_seed(1)
    for step in range(3):
        x = torch.randn(*shape, generator=g) + 0.5 * step
        mask = torch.rand(4, 50, generator=g) < 0.7 if masked else None
        torch.manual_seed(10 + step)
        q1, i1, l1 = ours(x, mask=mask)
        torch.manual_seed(10 + step)
        q2, i2, l2 = theirs(x, mask=mask)
        assert torch.equal(i1, i2)
        torch.testing.assert_close(q1, q2, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ours.codebook, theirs.codebook.reshape(ours.codebook.shape), rtol=1e-5,
                                   atol=1e-5)
        nearest = ours.eval()(x, mask=mask)[1]
        ours.train()
        assert (i1 != nearest).float().mean() > 0.3
    ours.freeze_codebook = theirs.freeze_codebook = True
    w = torch.randn(*shape, generator=g)
    _assert_same_step(ours, theirs, x, w, mask, seed=5)
    # The per-call temperature, as VectorQuantize's forward keyword.
    _assert_same_step(ours, theirs, x, w, mask, seed=6, sample_codebook_temp=2.0)


def test_stochastic_sampling_draws_from_the_softmax_of_negative_distances():
    # One vector, repeated: the codes' frequencies are softmax(-||z - e_k|| / temperature), within
    # 5 standard errors; eval mode and temperature 0 give the nearest code.
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 6, decay=0.8, stochastic_sample_codes=True, sample_codebook_temp=0.7,
                         freeze_codebook=True)
    x = torch.randn(1, 4).expand(20000, 4)
    _, idx, _ = vq(x)
    p = torch.softmax(-torch.cdist(x[:1], vq.codebook)[0] / 0.7, 0)
    freq = torch.bincount(idx, minlength=6) / idx.numel()
    assert ((freq - p).abs() <= 5 * (p * (1 - p) / idx.numel()).sqrt() + 1e-4).all()
    nearest = torch.cdist(x[:1], vq.codebook).argmin()
    assert (vq(x, sample_codebook_temp=0.0)[1] == nearest).all()
    assert (vq.eval()(x)[1] == nearest).all()


@needs_vqp
@pytest.mark.parametrize("shape, kw, masked", [c for c in _SAMPLING_CASES if not c[2]],
                         ids=[i for i, c in zip(_SAMPLING_IDS, _SAMPLING_CASES) if not c[2]])
def test_codebook_diversity_loss_matches_vector_quantize_pytorch(shape, kw, masked):
    # The diversity term -H(mean softmax(100 * logits)) (per sequence position, as VectorQuantize):
    # the same loss breakdown, codes and EMA codebooks over steps; input gradients with a frozen
    # codebook; and with a codebook trained by gradient, its gradient too.
    ours, theirs = _pair(codebook_diversity_loss_weight=0.3, codebook_diversity_temperature=3.0, **kw)
    g = torch.Generator().manual_seed(1)
    for step in range(3):
        x = torch.randn(*shape, generator=g) + 0.5 * step
        (q1, i1, l1, b1), (q2, i2, l2, b2) = (m(x, return_loss_breakdown=True) for m in (ours, theirs))
        assert torch.equal(i1, i2) and b1.codebook_diversity < 0
        torch.testing.assert_close(b1.codebook_diversity, b2.codebook_diversity, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ours.codebook, theirs.codebook.reshape(ours.codebook.shape), rtol=1e-5,
                                   atol=1e-5)
    ours.freeze_codebook = theirs.freeze_codebook = True
    _assert_same_step(ours, theirs, x, torch.randn(*shape, generator=g))
    # A codebook trained by gradient: the same term and the same input and codebook gradients (the
    # returned losses differ by the codebook loss, which VectorQuantize folds into its commitment term;
    # the gradients agree at beta = 1). VectorQuantize has no learnable cosine codebook.
    if kw.get("use_cosine_sim"):
        return
    ours, theirs = _pair(decay=None, learnable_codebook=True, ema_update=False, codebook_diversity_loss_weight=0.3,
                         codebook_diversity_temperature=3.0, **kw)
    w = torch.randn(*shape, generator=g)
    res = []
    for m in (ours, theirs):
        xr = x.clone().requires_grad_()
        q, i, loss, parts = m(xr, return_loss_breakdown=True)
        ((q * w).sum() + loss).backward()
        codebook = m.codebook if m is ours else m._codebook.embed
        res.append((i, parts.codebook_diversity.detach(), xr.grad, codebook.grad.reshape(ours.codebook.shape)))
    assert torch.equal(res[0][0], res[1][0])
    for a, b in list(zip(*res))[1:]:
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def _diversity_oracle(x, codebook, temperature, valid=None):
    """-mean_n H(mean_b softmax(-T ||x_bn - e||)) over [B, N, D] input, over the real vectors (all
    N x K at once), positions without one left out."""
    prob = torch.softmax(-temperature * torch.cdist(x, codebook.expand(x.shape[0], -1, -1)), -1)
    valid = torch.ones(x.shape[:2], dtype=torch.bool) if valid is None else valid
    count = valid.sum(0)
    mean = (prob * valid.unsqueeze(-1)).sum(0) / count.clamp_min(1).unsqueeze(-1)
    entropy = -(mean * mean.clamp_min(1e-5).log()).sum(-1)
    return -entropy[count > 0].mean()


@pytest.mark.parametrize("chunk", [1 << 22, 48])
@pytest.mark.parametrize("decay", [None, 0.5])
def test_codebook_diversity_loss_against_its_definition(chunk, decay, monkeypatch):
    # float64, whole-matrix oracle, with padding (left out, where VectorQuantize would count it) and
    # a position with no real vector; in chunks of 3 rows too. The gradients (input; codebook when
    # trained by gradient) are those of the returned loss, taken with the codebook before this
    # step's EMA update.
    monkeypatch.setattr(vq_functional, "CHUNK_LOGITS", chunk)  # 48 logits = 3 rows of K = 16
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 16, decay=decay, commitment_weight=0.0, codebook_diversity_loss_weight=1.0,
                         codebook_diversity_temperature=2.0).double()
    x = torch.randn(5, 7, 8, dtype=torch.float64)
    mask = torch.rand(5, 7) < 0.6
    mask[:, 3] = False
    mask[0, 0] = True
    before = vq.codebook.detach().clone()
    xr = x.clone().requires_grad_()
    _, _, loss, parts = vq(xr, mask=mask, return_loss_breakdown=True)
    loss.backward()
    xe = x.clone().requires_grad_()
    e = before.clone().requires_grad_(decay is None)
    expected = _diversity_oracle(xe, e, 2.0, mask)
    if decay is None:
        expected = expected + F.mse_loss(e[vq(x, mask=mask)[1][mask]], x[mask])  # + the codebook loss
    expected.backward()
    torch.testing.assert_close(loss, expected.detach())
    torch.testing.assert_close(parts.codebook_diversity, _diversity_oracle(x, before, 2.0, mask))
    torch.testing.assert_close(xr.grad, xe.grad)
    if decay is None:
        torch.testing.assert_close(vq.codebook.grad, e.grad)
    else:
        assert not torch.equal(vq.codebook, before)


def test_codebook_diversity_loss_is_only_for_training_and_frozen_codebooks_get_no_gradient():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 16, decay=None, codebook_diversity_loss_weight=1.0)
    x = torch.randn(4, 10, 8)
    assert vq.eval()(x, return_loss_breakdown=True)[3].codebook_diversity == 0
    x.requires_grad_()
    vq.train()(x, freeze_codebook=True)[2].backward()
    assert vq.codebook.grad is None or (vq.codebook.grad == 0).all()
    assert x.grad.abs().sum() > 0


def test_sampling_and_diversity_bad_values_are_refused():
    with pytest.raises(ValueError, match="sample_codebook_temp"):
        VectorQuantizer(8, 4, sample_codebook_temp=-1.0)
    with pytest.raises(ValueError, match="codebook_diversity_loss_weight"):
        VectorQuantizer(8, 4, codebook_diversity_loss_weight=-0.1)
    with pytest.raises(ValueError, match="codebook_diversity_temperature"):
        VectorQuantizer(8, 4, codebook_diversity_temperature=0.0)
    with pytest.raises(ValueError, match="straight_through"):
        VectorQuantizer(8, 4, stochastic_sample_codes=True, straight_through=True)
    vq = VectorQuantizer(8, 4, stochastic_sample_codes=True)
    with pytest.raises(ValueError, match="sample_codebook_temp"):
        vq(torch.randn(3, 8), sample_codebook_temp=float("nan"))
    x = torch.randn(3, 8)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        vq(x)


@needs_vqp
@pytest.mark.parametrize("shape, kw", [((4, 50, 16), {}), ((4, 16, 50), {"channel_last": False}),
                                       ((4, 50, 16), {"use_cosine_sim": True}),
                                       ((4, 50, 16), {"heads": 2, "codebook_dim": 8}),
                                       ((4, 50, 16), {"heads": 2, "codebook_dim": 8, "separate_codebook_per_head": True})],
                         ids=["plain", "channel-first", "cosine", "heads", "separate-heads"])
def test_target_indices_cross_entropy_matches_vector_quantize_pytorch(shape, kw):
    # forward(indices=codes): the cross-entropy of given codes (-1 ignored) and its input gradient,
    # in eval mode and in a frozen training step; in an EMA training step the same value and update.
    ours, theirs = _pair(**kw)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=g)
    codes = torch.randint(0, 8, ours.eval()(x)[1].shape, generator=g)
    codes[0, :5] = -1
    for mode, freeze in (("eval", None), ("train", True)):
        res = []
        for m in (ours, theirs):
            m.train(mode == "train")
            xr = x.clone().requires_grad_()
            out = m(xr, indices=codes, freeze_codebook=freeze) if m is ours else m(xr, codes, freeze_codebook=freeze)
            assert len(out) == 2
            out[1].backward()
            res.append((out[1].detach(), xr.grad))
        torch.testing.assert_close(res[0][0], res[1][0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(res[0][1], res[1][1], rtol=1e-4, atol=1e-6)
    ce1, ce2 = ours.train()(x, indices=codes)[1], theirs.train()(x, codes)[1]
    torch.testing.assert_close(ce1, ce2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.codebook, theirs.codebook.reshape(ours.codebook.shape), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("decay", [0.5, None])
def test_target_indices_cross_entropy_against_its_definition(decay, monkeypatch):
    # float64 oracle over the real vectors with a target (padding and -1 left out), in chunks of
    # 3 rows; taken with the codebook before the step's EMA update; a loss-trained codebook gets
    # its gradient (none when frozen).
    monkeypatch.setattr(vq_functional, "CHUNK_LOGITS", 48)
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 16, decay=decay).double()
    x = torch.randn(5, 7, 8, dtype=torch.float64)
    mask = torch.rand(5, 7) < 0.7
    codes = torch.randint(-1, 16, (5, 7))
    before = vq.codebook.detach().clone()
    xr = x.clone().requires_grad_()
    q, ce = vq(xr, mask=mask, indices=codes)
    ce.backward()
    keep = mask & (codes >= 0)
    xe = x.clone().requires_grad_()
    e = before.clone().requires_grad_()
    expected = F.cross_entropy(-torch.cdist(xe[keep], e), codes[keep])
    expected.backward()
    torch.testing.assert_close(ce, expected.detach())
    torch.testing.assert_close(xr.grad, xe.grad)
    assert q.shape == x.shape and (q[~mask] == 0).all()
    if decay is None:
        torch.testing.assert_close(vq.codebook.grad, e.grad)
        vq.codebook.grad = None
        vq(x.clone().requires_grad_(), mask=mask, indices=codes, freeze_codebook=True)[1].backward()
        assert vq.codebook.grad is None
    else:
        assert not torch.equal(vq.codebook, before)


def test_target_indices_bad_values_are_refused():
    vq = VectorQuantizer(8, 4, heads=2, codebook_dim=4)
    x = torch.randn(3, 5, 8)
    with pytest.raises(TypeError, match="indices must be an integer tensor"):
        vq(x, indices=torch.zeros(3, 5, 2))
    with pytest.raises(ValueError, match=r"shape of forward's indices, \[3, 5, 2\]"):
        vq(x, indices=torch.zeros(3, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"in \[-1, K = 4\)"):
        vq(x, indices=torch.full((3, 5, 2), 4))
    with pytest.raises(ValueError, match=r"in \[-1, K = 4\)"):
        vq(x, indices=torch.full((3, 5, 2), -2))
    q, ce = VectorQuantizer(8, 4)(torch.randn(6, 8), indices=torch.tensor([0, 1, 2, 3, -1, 0]))
    assert q.shape == (6, 8) and ce.dim() == 0


def test_frozen_loss_trained_codebook_gets_no_cross_entropy_gradient():
    # freeze_codebook: no gradient reaches the codebook from the cross-entropy commitment loss either.
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 16, decay=None, commitment_use_cross_entropy_loss=True)
    x = torch.randn(4, 10, 8, requires_grad=True)
    vq(x, freeze_codebook=True)[2].backward()
    assert vq.codebook.grad is None and x.grad.abs().sum() > 0
    vq(x)[2].backward()
    assert vq.codebook.grad.abs().sum() > 0


@needs_vqp
def test_freeze_codebook_per_call_matches_vector_quantize_pytorch():
    # forward(freeze_codebook=...) overrides the attribute for one call, both ways, as VectorQuantize.
    # (No dead-code restarts here: their random replacements differ between the two.)
    ours, theirs = _pair()
    g = torch.Generator().manual_seed(1)
    for step, freeze in enumerate([True, False, True]):
        before = ours.codebook.clone()
        x = torch.randn(4, 50, 16, generator=g) + step
        (q1, i1, l1), (q2, i2, l2) = ours(x, freeze_codebook=freeze), theirs(x, freeze_codebook=freeze)
        assert torch.equal(i1, i2)
        torch.testing.assert_close(q1, q2)
        torch.testing.assert_close(l1, l2)
        torch.testing.assert_close(ours.codebook, theirs.codebook.reshape(ours.codebook.shape))
        assert torch.equal(ours.codebook, before) == freeze
    ours.freeze_codebook = True
    before = ours.codebook.clone()
    ours(torch.randn(4, 50, 16, generator=g), freeze_codebook=False)
    assert not torch.equal(ours.codebook, before)


@needs_vqp
@pytest.mark.parametrize("kw", [{}, {"orthogonal_reg_weight": 10.0}, {"commitment_weight": 0.25, "decay": None},
                                {"heads": 2, "codebook_dim": 8, "separate_codebook_per_head": True,
                                 "orthogonal_reg_weight": 3.0}])
def test_loss_breakdown_matches_vector_quantize_pytorch(kw):
    # return_loss_breakdown: the unweighted terms, VectorQuantize's LossBreakdown fields and values,
    # and the loss is their weighted sum (plus the codebook loss, equal to the commitment term in
    # value, with a loss-trained codebook).
    from tsvq.nn import LossBreakdown
    kw = {"decay": 0.9, **kw}
    torch.manual_seed(0)
    ours = VectorQuantizer(16, 32, **kw)
    theirs = vqp.VectorQuantize(16, 32, rotation_trick=False, **({"learnable_codebook": True, "ema_update": False,
                                                                  **{k: v for k, v in kw.items() if k != "decay"}}
                                                                 if kw["decay"] is None else kw))
    theirs._codebook.embed.data.copy_(ours.codebook.detach().reshape(theirs._codebook.embed.shape))
    theirs._codebook.embed_avg.data.copy_(ours.codebook.detach().reshape(theirs._codebook.embed.shape))
    x = torch.randn(4, 6, 16, generator=torch.Generator().manual_seed(1))
    (q1, i1, l1, b1), (q2, i2, l2, b2) = ours(x, return_loss_breakdown=True), theirs(x, return_loss_breakdown=True)
    assert isinstance(b1, LossBreakdown) and b1._fields == type(b2)._fields
    assert torch.equal(i1, i2)
    if kw["decay"] is not None:  # a loss-trained codebook: VectorQuantize weights its codebook loss by beta too
        torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-6)
    for ours_term, their_term in zip(b1, b2):
        torch.testing.assert_close(ours_term, torch.as_tensor(their_term, dtype=ours_term.dtype).reshape(()),
                                   rtol=1e-5, atol=1e-6)
    beta = kw.get("commitment_weight", 1.0) + (kw["decay"] is None)
    torch.testing.assert_close(l1, beta * b1.commitment + kw.get("orthogonal_reg_weight", 0.0) * b1.orthogonal_reg)
    assert b1.commitment > 0 and (b1.orthogonal_reg > 0) == ("orthogonal_reg_weight" in kw)
    l3 = ours.eval()(x)[2]  # without the flag: the usual triple
    b3 = ours(x, return_loss_breakdown=True)[3]
    torch.testing.assert_close(l3, beta * b3.commitment)
    assert b3.orthogonal_reg == 0  # eval: no regulariser


@pytest.mark.parametrize("kw", [dict(decay=0.9, threshold_ema_dead_code=5.0), dict(decay=None),
                                dict(decay=0.9, orthogonal_reg_weight=1.0)])
@pytest.mark.parametrize("per_call", [False, True], ids=["attribute", "per-call"])
def test_freeze_codebook_leaves_the_codebook_alone(kw, per_call):
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 16, freeze_codebook=not per_call, **kw)
    state = {k: v.clone() for k, v in vq.state_dict().items()}
    x = torch.randn(64, 8, requires_grad=True)
    q, idx, loss = vq(x, freeze_codebook=True) if per_call else vq(x)
    (q.square().sum() + loss).backward()
    for k, v in vq.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert vq.codebook.grad is None or not vq.codebook.grad.any()
    assert x.grad is not None and x.grad.abs().sum() > 0  # the encoder still learns
    vq.freeze_codebook = False
    q, idx, loss = vq(x.detach())
    if loss.requires_grad:
        loss.backward()
    changed = not torch.equal(vq.codebook, state["codebook"]) or (vq.codebook.grad is not None and vq.codebook.grad.any())
    assert changed


def test_gradcheck_float64_commitment():
    vq = VectorQuantizer(4, 6, decay=0.9).double().eval()
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    # The loss is smooth where no index changes; `quantized` is piecewise constant and its
    # straight-through gradient is deliberately not its derivative (checked above instead).
    assert torch.autograd.gradcheck(lambda t: vq(t)[2], (x,))


def test_loss_trained_codebook_gets_codebook_loss_gradient():
    vq = VectorQuantizer(8, 4, decay=None, commitment_weight=0.25)
    assert isinstance(vq.codebook, torch.nn.Parameter)
    x = torch.randn(64, 8)
    q, idx, loss = vq(x)
    codes = vq.codebook[idx].detach()
    expected = 0.25 * F.mse_loss(x, codes) + F.mse_loss(codes, x)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert vq.codebook.grad is not None and vq.codebook.grad.abs().sum() > 0
    before = vq.codebook.detach().clone()
    torch.optim.SGD(vq.parameters(), lr=1.0).step()
    assert not torch.equal(before, vq.codebook.detach())


def test_eval_mode_does_not_update_and_still_returns_loss():
    vq = VectorQuantizer(8, 4)
    vq.eval()
    state = {k: v.clone() for k, v in vq.state_dict().items()}
    q, idx, loss = vq(torch.randn(10, 8))
    for k, v in vq.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert loss > 0


def _clustered(n_clusters=8, per=64, dim=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(n_clusters, dim, generator=g) * 10
    return (centers.repeat_interleave(per, 0) + 0.1 * torch.randn(n_clusters * per, dim, generator=g)), centers


def test_kmeans_init_improves_codebook_usage():
    x, _ = _clustered()
    torch.manual_seed(0)
    plain = VectorQuantizer(4, 8, decay=0.9)
    plain(x)
    torch.manual_seed(0)
    init = VectorQuantizer(4, 8, decay=0.9, kmeans_init=True, kmeans_iters=10)
    init(x)
    assert bool(init.initted)
    assert init.perplexity > plain.perplexity
    assert init.fraction_used.item() >= 0.75


def test_kmeans_recovers_separated_clusters():
    x, centers = _clustered(n_clusters=4, dim=3, seed=3)
    means, counts = kmeans(x, 4, num_iters=20, generator=torch.Generator().manual_seed(0))
    assert counts.sum().item() == x.shape[0]
    d = torch.cdist(centers, means).min(1).values
    assert (d < 1.0).sum() >= 3  # Lloyd may merge one pair from a bad start; most are found


def test_dead_code_restart_revives_unused_codes():
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 16, decay=0.8, threshold_ema_dead_code=2)
    with torch.no_grad():
        vq.codebook.mul_(0).add_(100.0)  # every code far away: one gets all, the rest are dead
        vq.embed_sum.copy_(vq.codebook)
    x, _ = _clustered(n_clusters=8, per=32, dim=4)
    for _ in range(20):
        vq(x)
    assert vq.fraction_used.item() >= 0.5
    assert (vq.codebook.abs() < 50).all()  # every code was replaced by (or moved to) data


def test_state_dict_round_trip():
    x, _ = _clustered()
    a = VectorQuantizer(4, 8, kmeans_init=True)
    a(x)
    b = VectorQuantizer(4, 8, kmeans_init=True)
    b.load_state_dict(a.state_dict())
    assert b._initted
    a.eval(), b.eval()
    for t1, t2 in zip(a(x), b(x)):
        assert torch.equal(t1, t2)


def test_cosine_sim_and_projection():
    vq = VectorQuantizer(10, 8, codebook_dim=4, use_cosine_sim=True)
    x = torch.randn(2, 7, 10)
    q, idx, loss = vq(x)
    assert q.shape == x.shape and idx.shape == (2, 7)
    torch.testing.assert_close(vq.codebook.norm(dim=-1), torch.ones(8))
    vq.eval()
    q, idx, _ = vq(x)
    torch.testing.assert_close(vq.indices_to_codes(idx), q)


@pytest.mark.parametrize("kw, shape", [({}, (3, 5, 6)), ({"channel_last": False}, (3, 6, 5)), ({}, (4, 6)),
                                       ({"heads": 2, "codebook_dim": 3}, (3, 5, 6)),
                                       ({"heads": 2, "codebook_dim": 3, "separate_codebook_per_head": True}, (4, 6)),
                                       ({"heads": 3, "codebook_dim": 4, "separate_codebook_per_head": True,
                                         "use_cosine_sim": True, "channel_last": False}, (3, 6, 5)),
                                       ({"heads": 2, "codebook_dim": 5, "separate_codebook_per_head": True,
                                         "accept_image_fmap": True}, (2, 6, 3, 4))])
def test_indices_to_codes_reproduces_quantized(kw, shape):
    vq = VectorQuantizer(6, 8, **kw).eval()
    x = torch.randn(*shape)
    q, idx, _ = vq(x)
    torch.testing.assert_close(vq.indices_to_codes(idx), q)
    expected = list(q.shape)  # codebook space: the heads' codes concatenated, before project_out
    expected[1 if len(shape) >= 3 and (kw.get("accept_image_fmap") or kw.get("channel_last") is False) else -1] = (
        vq.heads * vq.codebook_dim)
    assert list(vq.get_codes_from_indices(idx).shape) == expected


def test_autocast_bf16_keeps_quantisation_in_float32():
    vq = VectorQuantizer(8, 4)
    x = torch.randn(16, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q, idx, loss = vq(x.bfloat16())
    assert q.dtype == torch.bfloat16 and loss.dtype == torch.float32 and vq.codebook.dtype == torch.float32


def test_bf16_autocast_keeps_codebook_use_on_clustered_data():
    # Training steps on bf16 activations under bf16 autocast use the codebook as in float32 (within
    # 1 % of the codes used): the search, the EMA statistics and the update run in float32.
    torch.manual_seed(0)
    centres = torch.randn(256, 32)
    data = [centres[torch.randint(0, 256, (2048,))] + 0.05 * torch.randn(2048, 32) for _ in range(5)]
    used = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        torch.manual_seed(1)
        vq = VectorQuantizer(32, 512, decay=0.8, kmeans_init=True)
        for x in data:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                vq(x.unsqueeze(0).to(dtype))
        used[name] = float(vq.fraction_used)
    assert used["fp32"] > 0.2 and abs(used["bf16"] - used["fp32"]) <= 0.01 * used["fp32"]


@pytest.mark.parametrize("ops", ["kernels", "reference"])
def test_compiles_without_graph_breaks(ops):
    # "reference": the pure-PyTorch fallback (no extension), whose data checks (NaN/inf, index
    # range) must not break the graph either: they become in-graph assertions.
    torch._dynamo.reset()
    with reference_ops() if ops == "reference" else contextlib.nullcontext():
        torch.manual_seed(0)
        vq = VectorQuantizer(8, 16, decay=0.9, threshold_ema_dead_code=1)
        ref = VectorQuantizer(8, 16, decay=0.9, threshold_ema_dead_code=1)
        ref.load_state_dict(vq.state_dict())
        compiled = torch.compile(vq, fullgraph=True, backend="aot_eager")
        x = torch.randn(4, 32, 8)
        torch.manual_seed(1)
        q1, i1, l1 = compiled(x)
        torch.manual_seed(1)
        q2, i2, l2 = ref(x)
        assert torch.equal(i1, i2)
        torch.testing.assert_close(vq.codebook, ref.codebook)
        torch.testing.assert_close(l1, l2)
        if ops == "reference":
            bad = x.clone()
            bad[0, 0, 0] = float("nan")
            with pytest.raises(RuntimeError, match="x contains NaN or inf"):
                compiled(bad)


class _ConvTokenizer(torch.nn.Module):
    """Conv encoder -> channel-first VectorQuantizer -> conv decoder, the tokenizers' layout."""

    def __init__(self):
        super().__init__()
        self.enc = torch.nn.Conv2d(2, 16, 3, padding=1)
        self.vq = VectorQuantizer(16, 32, decay=0.5, accept_image_fmap=True)
        self.dec = torch.nn.Conv2d(16, 2, 3, padding=1)

    def forward(self, x):
        z_q, _, loss = self.vq(self.enc(x))
        return self.dec(z_q), loss


def test_inductor_compiled_layer_matches_eager():
    # With Inductor (the default backend), the gather z_q = codebook[indices] was fused into the
    # decoder's input kernel, scheduled after the in-place EMA op had overwritten the codebook: a
    # silently different output (by 0.4 here) and gradients. Under torch.compile the EMA update now
    # runs in ATen ops (tsvq.ops.ema_codebook_update_). Two steps: the second searches the
    # codebook the first one updated.
    compiled, model, eager = compiled_twin(_ConvTokenizer, fullgraph=True)
    for step in range(2):
        x = torch.randn(6, 2, 5, 8, generator=torch.Generator().manual_seed(step))
        outs = []
        for m in (compiled, eager):
            m.zero_grad()
            y, loss = m(x)
            (y.square().mean() + loss).backward()
            outs.append((y.detach(), loss.detach(), [p.grad for p in m.parameters()]))
        torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(dict(model.named_buffers()), dict(eager.named_buffers()))


@pytest.mark.parametrize(
    "make, x, exc, match",
    [
        (lambda: VectorQuantizer(4, 8), torch.randn(2, 3, 5), ValueError, "D == dim == 4"),
        (lambda: VectorQuantizer(4, 8), torch.randn(2, 3, 4, 4), ValueError, "channel-first"),
        (lambda: VectorQuantizer(4, 8), torch.randn(4), ValueError, "x must be"),
        (lambda: VectorQuantizer(4, 8), torch.randn(0, 4), ValueError, "empty batch"),
        (lambda: VectorQuantizer(4, 8), torch.ones(2, 4, dtype=torch.long), TypeError, "float tensor"),
        (lambda: VectorQuantizer(4, 8), torch.full((2, 4), float("nan")), ValueError, "NaN or inf"),
    ],
)
def test_bad_input(make, x, exc, match):
    with pytest.raises(exc, match=match):
        make()(x)


@pytest.mark.parametrize(
    "kw, match",
    [({"codebook_size": 0}, "codebook_size"), ({"dim": 0}, "dim"), ({"decay": 1.0}, "decay"),
     ({"commitment_weight": -1}, "commitment_weight"), ({"commitment_weight": float("nan")}, "commitment_weight"),
     ({"eps": float("nan")}, "eps"), ({"threshold_ema_dead_code": -1}, "threshold"),
     ({"orthogonal_reg_weight": -1.0}, "orthogonal_reg_weight"),
     ({"orthogonal_reg_weight": float("inf")}, "orthogonal_reg_weight"),
     ({"orthogonal_reg_max_codes": 0}, "orthogonal_reg_max_codes"), ({"heads": 0}, "heads"),
     ({"codebook_size": 16.5}, r"codebook_size \(K\) must be an int >= 1, got 16.5"), ({"dim": True}, "dim must be an int"),
     ({"kmeans_iters": 2.0}, "kmeans_iters must be an int"),
     ({"eps": 0.0, "decay": 0.8}, "eps must be a finite float > 0 with an EMA codebook"),
     ({"threshold_ema_dead_code": float("nan")}, "threshold_ema_dead_code must be a finite number")],
)
def test_bad_constructor(kw, match):
    args = {"dim": 4, "codebook_size": 8, **kw}
    with pytest.raises(ValueError, match=match):
        VectorQuantizer(**args)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, data, out, kw):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        vq = VectorQuantizer(4, 8, decay=0.8, kmeans_init=True, threshold_ema_dead_code=0.5, **kw)
        for step in range(3):
            vq(data[step][rank])
        out[rank] = vq.state_dict()
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("kw", [{}, {"heads": 2, "codebook_dim": 2, "separate_codebook_per_head": True}],
                         ids=["one-codebook", "separate-heads"])
def test_distributed_replicas_keep_the_same_codebook(kw):
    mp = torch.multiprocessing.get_context("spawn")
    manager = mp.Manager()
    out = manager.dict()
    g = torch.Generator().manual_seed(0)
    data = [[torch.randn(64, 4, generator=g) * (r + 1) for r in range(2)] for _ in range(3)]
    port = _free_port()
    procs = [mp.Process(target=_ddp_worker, args=(r, 2, port, data, out, kw)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    s0, s1 = out[0], out[1]
    for k in s0:
        assert torch.equal(s0[k], s1[k]), k
    # Statistics are the global batch's: the ranks' counts add up to both batches.
    assert s0["cluster_size"].sum() > 0


def test_eps_zero_is_allowed_for_a_loss_trained_codebook():
    VectorQuantizer(4, 8, decay=None, eps=0.0)


def test_a_nan_batch_at_kmeans_init_leaves_the_layer_as_it_was():
    vq = VectorQuantizer(4, 8, kmeans_init=True, kmeans_iters=0).train()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    x = torch.randn(2, 10, 4)
    x[1, 3, 2] = float("nan")
    with pytest.raises(ValueError, match="k-means initialisation of the codebook needs finite vectors"):
        vq(x)
    for k, v in vq.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not vq.initted and torch.isfinite(vq(torch.randn(2, 10, 4))[0]).all() and vq.initted


def test_kmeans_init_waits_for_a_batch_with_real_vectors():
    vq = VectorQuantizer(4, 8, kmeans_init=True).train()
    x = torch.randn(2, 10, 4)
    out, idx, _ = vq(x, mask=torch.zeros(2, 10, dtype=torch.bool))  # all padding: no init, no error
    assert not vq.initted and out.shape == x.shape
    vq(x, mask=torch.ones(2, 10, dtype=torch.bool))
    assert vq.initted


def test_ema_update_never_writes_nan_into_the_codebook():
    from tsvq.ops import ema_codebook_update_

    vq = VectorQuantizer(4, 8, decay=0.8).train()
    for _ in range(3):
        vq(torch.randn(16, 4))
    cb, cs, es = vq.codebook.detach().clone(), vq.cluster_size.clone(), vq.embed_sum.clone()
    x = torch.randn(5, 4)
    x[2, 0] = float("inf")
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        ema_codebook_update_(cs, es, cb, x, torch.zeros(5, dtype=torch.long), 0.8)
    assert torch.equal(cb, vq.codebook) and torch.equal(cs, vq.cluster_size)
