"""LookupFreeQuantizer (LFQ / BSQ): parity with vector_quantize_pytorch.LFQ (outputs, indices, losses
and their breakdown, gradients), the chunked entropy against a dense float64 computation and
gradcheck, an exact check at d = 16, bf16, compile and bad input."""
import math

import pytest
import torch

from tsvq.nn import LookupFreeQuantizer
from tsvq.nn.quantize.lfq import ENTROPY_EPS, _code_chunk, _HypercubeEntropy

vqp = pytest.importorskip("vector_quantize_pytorch")


@pytest.mark.parametrize("kw, shape, use_mask", [
    (dict(dim=8), (2, 30, 8), False),
    (dict(dim=16, codebook_size=256, commitment_loss_weight=0.25), (2, 30, 16), False),
    (dict(codebook_size=64, spherical=True, dim=6), (2, 30, 6), False),  # BSQ
    (dict(dim=12, codebook_size=64, num_codebooks=2), (2, 30, 12), False),
    (dict(dim=10, codebook_size=1024, frac_per_sample_entropy=0.5), (2, 30, 10), False),
    (dict(dim=8, experimental_softplus_entropy_loss=True, diversity_gamma=0.5, codebook_scale=2.0,
          soft_clamp_input_value=3.0), (2, 30, 8), False),
    (dict(dim=8, codebook_size=32, commitment_loss_weight=1.0), (3, 20, 8), True),
    (dict(dim=6, codebook_size=16), (2, 6, 4, 5), False),  # channel-first feature map
    (dict(dim=8, codebook_size=64, cosine_sim_project_in=True), (2, 30, 8), False),
])
def test_parity_with_vector_quantize_pytorch(kw, shape, use_mask):
    torch.manual_seed(0)
    ref = vqp.LFQ(**kw)
    ours = LookupFreeQuantizer(**kw)
    ours.load_state_dict(ref.state_dict(), strict=False)
    x = torch.randn(*shape)
    mask = (torch.rand(shape[:2]) > 0.3) if use_mask else None
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    torch.manual_seed(1)
    (qa, ia, la), ba = ours(xa, inv_temperature=5.0, return_loss_breakdown=True, mask=mask)
    torch.manual_seed(1)
    (qb, ib, lb), bb = ref(xb, inv_temperature=5.0, return_loss_breakdown=True, mask=mask)
    assert ia.dtype == ib.dtype == torch.int64 and torch.equal(ia, ib)
    torch.testing.assert_close(qa, qb)
    if use_mask:
        # LFQ's masked path reduces the per-sample probabilities of [(rows x codebooks), K] over no
        # axis, so its batch entropy is the per-sample one (the diversity term vanishes); tsvq
        # averages the probabilities over the real rows, as without a mask.
        torch.testing.assert_close(bb.batch_entropy, bb.per_sample_entropy)
        torch.testing.assert_close(ba.per_sample_entropy, bb.per_sample_entropy)
        torch.testing.assert_close(ba.commitment, bb.commitment)
        rows = ours.project_in(x)[mask].detach().unsqueeze(0).double()
        expected = _dense(rows, torch.ones(rows.shape[1], dtype=torch.float64), 5.0, 1.0)[1]
        torch.testing.assert_close(ba.batch_entropy.double(), expected, rtol=1e-5, atol=1e-5)
        return
    torch.testing.assert_close(la, lb)
    for a, b in zip(ba, bb):
        torch.testing.assert_close(a, b)
    w = torch.randn_like(qa)
    ((qa * w).sum() + la).backward()
    ((qb * w).sum() + lb).backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-4, atol=1e-5)
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=name)
    ours.eval()
    ref.eval()
    qe, ie, le = ours(x)
    assert torch.equal(ie, ref(x)[1]) and float(le) == 0.0
    torch.testing.assert_close(ours.indices_to_codes(ie), ref.indices_to_codes(ie))


def _dense(x, w, tau, a):
    d = x.shape[-1]
    codes = _code_chunk(0, 1 << d, d, a, x.device).to(x.dtype)
    q = torch.softmax(2 * tau * x @ codes.T, -1)
    h = -(q * q.clamp_min(ENTROPY_EPS).log()).sum(-1)
    mean_q = (q * w[None, :, None]).sum(1) / w.sum()
    return (h * w).sum() / (w.sum() * x.shape[0]), -(mean_q * mean_q.clamp_min(ENTROPY_EPS).log()).sum(-1).mean()


def test_chunked_entropy_equals_the_dense_one_and_gradchecks(monkeypatch):
    monkeypatch.setattr("tsvq.nn.quantize.lfq.CHUNK_ELEMENTS", 24)  # many row and code chunks
    torch.manual_seed(0)
    x = torch.randn(2, 7, 5, dtype=torch.float64, requires_grad=True)
    w = torch.tensor([1, 1, 0, 1, 1, 1, 0], dtype=torch.float64)
    ours = _HypercubeEntropy.apply(x, w, 1.3, 0.7)
    dense = _dense(x, w, 1.3, 0.7)
    for a, b in zip(ours, dense):
        torch.testing.assert_close(a, b)
    ga = torch.autograd.grad(0.7 * ours[0] + 1.3 * ours[1], x)[0]
    gb = torch.autograd.grad(0.7 * dense[0] + 1.3 * dense[1], x)[0]
    torch.testing.assert_close(ga, gb)
    assert torch.autograd.gradcheck(lambda t: _HypercubeEntropy.apply(t, w, 1.3, 0.7), (x,))


def test_entropy_at_d16_equals_the_factorised_bernoulli_entropy():
    # At a low temperature every probability is above the clamp, and the softmax over the 2^16 sign
    # patterns factorises: H = sum_i H(Bernoulli(sigmoid(4 tau a x_i))).
    torch.manual_seed(0)
    x = torch.randn(1, 64, 16)
    tau = 1e-3
    per_sample, batch = _HypercubeEntropy.apply(x, torch.ones(64), tau, 1.0)
    p = torch.sigmoid(4 * tau * x[0].double())
    bern = -(p * p.log() + (1 - p) * (1 - p).log()).sum(-1)
    torch.testing.assert_close(per_sample.double(), bern.mean(), rtol=1e-5, atol=1e-5)
    assert float(batch) <= 16 * math.log(2) + 1e-4 and float(batch) >= float(per_sample) - 1e-4


def test_bf16_autocast_keeps_codebook_use():
    torch.manual_seed(0)
    lfq = LookupFreeQuantizer(dim=32, codebook_size=2 ** 10)
    centres = torch.randn(64, 32)
    x = (centres[torch.randint(0, 64, (4096,))] + 0.05 * torch.randn(4096, 32)).unsqueeze(0)
    _, i32, _ = lfq(x)
    used = float(lfq.fraction_used)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q, i16, loss = lfq(x)
    assert q.dtype == torch.bfloat16 and abs(float(lfq.fraction_used) - used) <= 0.01 * used
    assert (i16 == i32).float().mean() > 0.95


def test_compiles_without_graph_breaks():
    torch._dynamo.reset()
    lfq = LookupFreeQuantizer(dim=8, codebook_size=64)
    x = torch.randn(2, 20, 8)
    qc, ic, lc = torch.compile(lfq, fullgraph=True, backend="aot_eager")(x)
    qe, ie, le = lfq(x)
    assert torch.equal(ic, ie)
    torch.testing.assert_close(qc, qe)
    torch.testing.assert_close(lc, le)


@pytest.mark.parametrize("kw, message", [
    (dict(), "needs dim or codebook_size"),
    (dict(codebook_size=100), "power of 2"),
    (dict(dim=30), "at most 2\\^24"),
    (dict(dim=8, frac_per_sample_entropy=0.0), "frac_per_sample_entropy must be in"),
    (dict(dim=8, soft_clamp_input_value=0.5), "must be >= codebook_scale"),
    (dict(dim=8, codebook_size=16, num_codebooks=2, keep_num_codebooks_dim=False), "needs num_codebooks == 1"),
])
def test_bad_arguments(kw, message):
    with pytest.raises(ValueError, match=message):
        LookupFreeQuantizer(**kw)


def test_bad_input_and_large_codebooks_without_entropy():
    lfq = LookupFreeQuantizer(dim=8)
    with pytest.raises(ValueError, match=r"x must be Tensor\[B, N, 8\]"):
        lfq(torch.randn(2, 5, 7))
    big = LookupFreeQuantizer(dim=30, entropy_loss_weight=0.0).eval()  # 2^30 codes: no buffer of codes
    q, i, _ = big(torch.randn(1, 4, 30))
    assert i.max() < 2 ** 30 and torch.equal(big.indices_to_codes(i), q)


@pytest.mark.parametrize("kw, seed", [
    (dict(dim=16, num_quantizers=3, codebook_size=256), None),
    (dict(dim=8, num_quantizers=4, codebook_size=64, commitment_loss_weight=0.25, soft_clamp_input_value=2.0), None),
    (dict(dim=10, num_quantizers=4, codebook_size=1024, quantize_dropout=True), 5),
])
def test_residual_lfq_parity(kw, seed):
    from tsvq.nn import ResidualLFQ
    torch.manual_seed(0)
    ref = vqp.ResidualLFQ(**kw)
    ours = ResidualLFQ(**kw)
    ours.load_state_dict(ref.state_dict(), strict=False)
    x = torch.randn(2, 30, kw["dim"])
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    qa, ia, la, ca = ours(xa, return_all_codes=True, rand_quantize_dropout_fixed_seed=seed)
    qb, ib, lb, cb = ref(xb, return_all_codes=True, rand_quantize_dropout_fixed_seed=seed)
    assert torch.equal(ia, ib) and ia.shape == (2, 30, kw["num_quantizers"])
    if seed is not None:
        assert (ia == -1).any()
    torch.testing.assert_close(qa, qb)
    torch.testing.assert_close(la, lb)
    torch.testing.assert_close(ca, cb)
    w = torch.randn_like(qa)
    ((qa * w).sum() + la.sum()).backward()
    ((qb * w).sum() + lb.sum()).backward()
    # Later layers see small residuals at inverse temperature 100: many code probabilities sit near
    # the 1e-5 clamp, where rounding decides which side of it a probability falls and so whether
    # its term enters the derivative; the two codes differ there by about 1e-4 of a unit gradient.
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(ours.get_output_from_indices(ia), ref.get_output_from_indices(ib))


def test_grouped_residual_lfq_parity_with_dropout():
    from tsvq.nn import GroupedResidualLFQ
    kw = dict(dim=16, groups=2, num_quantizers=3, codebook_size=64, quantize_dropout=True)
    torch.manual_seed(0)
    ref = vqp.GroupedResidualLFQ(**kw)
    ours = GroupedResidualLFQ(**kw)
    ours.load_state_dict(ref.state_dict(), strict=False)
    x = torch.randn(2, 20, 16)
    for seed in range(4):  # the same CPU seed draw: the same dropped layers in both groups
        torch.manual_seed(seed)
        qa, ia, la = ours(x)
        torch.manual_seed(seed)
        qb, ib, lb = ref(x)
        assert ia.shape == (2, 2, 20, 3) and torch.equal(ia, ib)
        assert torch.equal(ia[0] == -1, ia[1] == -1)
        torch.testing.assert_close(qa, qb)
        torch.testing.assert_close(la, lb)
    torch.testing.assert_close(ours.get_output_from_indices(ia), ref.get_output_from_indices(ib))
