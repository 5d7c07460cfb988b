import random

import pytest
import torch

from helpers import compiled_twin

from tsvq.nn import GroupedResidualVectorQuantizer, ResidualVectorQuantizer, VectorQuantizer

try:  # the parity target; only the parity tests need it
    import vector_quantize_pytorch as vqp
except ImportError:
    vqp = None
needs_vqp = pytest.mark.skipif(vqp is None, reason="vector_quantize_pytorch (the parity target) is not installed")


def _pair(Q=3, K=8, dim=16, **kw):
    torch.manual_seed(0)
    ours = ResidualVectorQuantizer(dim, Q, K, decay=0.9, **kw)
    theirs = vqp.ResidualVQ(dim=dim, num_quantizers=Q, codebook_size=K, decay=0.9, **{"rotation_trick": False, **kw})
    if "codebook_dim" in kw:
        theirs.project_in.load_state_dict(ours.project_in.state_dict())
        theirs.project_out.load_state_dict(ours.project_out.state_dict())
    for a, b in zip(ours.layers, theirs.layers):
        b._codebook.embed.data.copy_(a.codebook.detach()[None])
        b._codebook.embed_avg.data.copy_(a.codebook.detach()[None])
    return ours, theirs


def _assert_same_step(ours, theirs, x, mask=None, seed=None, **forward_kw):
    """One training step of both (output squared plus the losses, backward): the same indices, and
    outputs, losses and input gradients equal to float32 rounding. Returns (quantized, indices).
    ``seed``: reseed torch's generator before each step (the same sampled codes)."""
    res = []
    for m in (ours, theirs):
        xr = x.clone().requires_grad_()
        if seed is not None:
            torch.manual_seed(seed)
        q, i, losses = m(xr, mask=mask, **forward_kw)
        (q.square().sum() + losses.sum()).backward()
        res.append((q.detach(), i, losses.detach(), xr.grad))
    (q1, i1, l1, g1), (q2, i2, l2, g2) = res
    assert torch.equal(i1, i2) and l1.shape == (ours.num_quantizers,)
    torch.testing.assert_close(q1, q2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-5)
    return q1, i1


@needs_vqp
@pytest.mark.parametrize("kw, masked", [({}, False), ({"rotation_trick": True}, False), ({}, True),
                                        ({"commitment_weight": 0.25, "threshold_ema_dead_code": 0}, False),
                                        ({"codebook_dim": 6}, False), ({"codebook_dim": 6}, True)],
                         ids=["ste", "rotation-trick", "mask", "beta", "projection", "projection-mask"])
def test_matches_residual_vq_over_training_steps(kw, masked):
    ours, theirs = _pair(**kw)
    g = torch.Generator().manual_seed(1)
    for step in range(3):
        x = torch.randn(4, 20, 16, generator=g) * (1 + step)
        mask = torch.rand(4, 20, generator=g) < 0.7 if masked else None
        q1, i1 = _assert_same_step(ours, theirs, x, mask)
        assert i1.shape == (4, 20, 3) and (not masked or (q1[~mask] == 0).all())
        for a, b in zip(ours.layers, theirs.layers):
            torch.testing.assert_close(a.codebook, b.codebook.reshape(a.codebook.shape), rtol=1e-5, atol=1e-5)


@needs_vqp
@pytest.mark.parametrize("frac", [0.5, 1.0])
def test_quant_grad_frac_matches_residual_vq(frac):
    # A fraction of each layer's output gradient flows on through the next residual: the same
    # input gradients as ResidualVQ over EMA training steps (and different from frac = 0).
    ours, theirs = _pair(quant_grad_frac=frac)
    g = torch.Generator().manual_seed(1)
    for step in range(3):
        x = torch.randn(4, 20, 16, generator=g) * (1 + step)
        _assert_same_step(ours, theirs, x)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours.eval()
    (ours(xa)[0].square().sum()).backward()
    ours.quant_grad_frac = 0.0
    (ours(xb)[0].square().sum()).backward()
    assert not torch.allclose(xa.grad, xb.grad)


@needs_vqp
def test_stochastic_sampling_matches_residual_vq():
    # Every layer draws its codes (same seed, same draws as ResidualVQ's layers on a CPU), with the
    # codebook diversity term; the per-call temperature reaches every layer. Frozen codebooks for
    # the gradients (ResidualVQ's backward sees its EMA-updated codebooks).
    kw = dict(stochastic_sample_codes=True, sample_codebook_temp=0.5, codebook_diversity_loss_weight=0.2,
              codebook_diversity_temperature=2.0)
    ours, theirs = _pair(**kw)
    g = torch.Generator().manual_seed(1)
    for step in range(3):
        x = torch.randn(4, 20, 16, generator=g)
        torch.manual_seed(step)
        q1, i1, l1 = ours(x)
        torch.manual_seed(step)
        q2, i2, l2 = theirs(x)
        assert torch.equal(i1, i2)
        torch.testing.assert_close(q1, q2, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-6)
        for a, b in zip(ours.layers, theirs.layers):
            torch.testing.assert_close(a.codebook, b.codebook.reshape(a.codebook.shape), rtol=1e-5, atol=1e-5)
    _assert_same_step(ours, theirs, x, seed=7, freeze_codebook=True)  # (ResidualVQ ignores its layers' attribute)
    _, i_hot = _assert_same_step(ours, theirs, x, seed=7, freeze_codebook=True, sample_codebook_temp=5.0)
    _, i_cold = _assert_same_step(ours, theirs, x, seed=7, freeze_codebook=True, sample_codebook_temp=0.0)
    assert not torch.equal(i_hot, i_cold)
    assert torch.equal(i_cold, ours.eval()(x)[1])  # temperature 0: the nearest codes


def test_grouped_quantizer_passes_the_sampling_temperature_to_every_group():
    torch.manual_seed(0)
    grvq = GroupedResidualVectorQuantizer(8, 2, 2, 16, stochastic_sample_codes=True)
    x = torch.randn(3, 10, 8)
    nearest = grvq.eval()(x)[1]
    grvq.train()
    assert torch.equal(grvq(x, sample_codebook_temp=0.0, freeze_codebook=True)[1], nearest)
    sampled = grvq(x, sample_codebook_temp=10.0, freeze_codebook=True)[1]
    assert all((sampled[g] != nearest[g]).any() for g in range(2))


@pytest.mark.parametrize("kw, shape", [({}, (3, 7, 6)), ({"channel_last": False}, (3, 6, 7)),
                                       ({"accept_image_fmap": True}, (2, 6, 3, 4)), ({}, (5, 6))])
def test_each_layer_quantises_the_residual_and_codes_sum_back(kw, shape):
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(6, 3, 8, **kw).eval()
    x = torch.randn(*shape)
    q, idx, losses = rvq(x)
    assert q.shape == x.shape and idx.shape[-1] == 3 and losses.shape == (3,)
    torch.testing.assert_close(rvq.indices_to_codes(idx), q)
    # Layer by layer: layer i sees x minus the previous layers' output.
    residual, total = x, torch.zeros_like(x)
    for i, layer in enumerate(rvq.layers):
        qi, ii, li = layer(residual)
        assert torch.equal(ii, idx[..., i])
        torch.testing.assert_close(li, losses[i])
        residual, total = residual - qi, total + qi
    torch.testing.assert_close(total, q)
    assert rvq.codebooks.shape == (3, 8, 6)


def test_masked_padding_is_zero_and_indices_minus_one():
    rvq = ResidualVectorQuantizer(4, 2, 8).eval()
    x = torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]], dtype=torch.bool)
    x[~mask] = float("nan")
    q, idx, losses = rvq(x, mask=mask)
    assert (q[~mask] == 0).all() and (idx[~mask] == -1).all() and torch.isfinite(losses).all()
    torch.testing.assert_close(rvq.indices_to_codes(idx), q)


def test_one_quantizer_is_the_plain_layer():
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(6, 1, 8, decay=0.8)
    vq = VectorQuantizer(6, 8, decay=0.8)
    vq.load_state_dict(rvq.layers[0].state_dict())
    x = torch.randn(4, 9, 6)
    (q1, i1, l1), (q2, i2, l2) = rvq(x), vq(x)
    assert torch.equal(q1, q2) and torch.equal(i1[..., 0], i2) and torch.equal(l1[0], l2)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(num_quantizers=0), ValueError, "num_quantizers"),
    (dict(codebook_dim=0), ValueError, "codebook_dim"),
    (dict(codebook_size=0), ValueError, "codebook_size"),
    (dict(heads=2), ValueError, "heads"),
    (dict(quantize_dropout=True, quantize_dropout_cutoff_index=2), ValueError, "quantize_dropout_cutoff_index"),
    (dict(quantize_dropout=True, quantize_dropout_multiple_of=0), ValueError, "quantize_dropout_multiple_of"),
])
def test_bad_constructor(kw, exc, match):
    with pytest.raises(exc, match=match):
        ResidualVectorQuantizer(**{"dim": 4, "num_quantizers": 2, "codebook_size": 8, **kw})


def test_bad_indices():
    rvq = ResidualVectorQuantizer(4, 2, 8)
    with pytest.raises(ValueError, match="num_quantizers = 2"):
        rvq.indices_to_codes(torch.zeros(3, 5, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        rvq.indices_to_codes(torch.zeros(3, 2))


def _residual_vq_dropout_seed(d, cutoff, Q, multiple_of):
    """A seed for which ResidualVQ's quantize dropout keeps layers 0..d (its own draw: random.Random
    (seed).randrange(cutoff, Q), rounded up to a multiple)."""
    for seed in range(10_000):
        r = random.Random(seed).randrange(cutoff, Q)
        if -(-(r + 1) // multiple_of) * multiple_of - 1 == d:
            return seed
    raise AssertionError(d)


@needs_vqp
@pytest.mark.parametrize("multiple_of", [1, 2])
def test_quantize_dropout_matches_residual_vq_over_training_steps(multiple_of):
    # Each step tsvq draws d; ResidualVQ gets a seed that makes it draw the same d. Then outputs,
    # indices (-1 for the dropped layers), losses (0 there), input gradients and codebooks agree.
    kw = dict(quantize_dropout=True, quantize_dropout_cutoff_index=1, quantize_dropout_multiple_of=multiple_of)
    ours, theirs = _pair(Q=4, **kw)
    g = torch.Generator().manual_seed(1)
    seen = set()
    for step in range(8):
        x = torch.randn(4, 20, 16, generator=g) * (1 + step % 3)
        torch.manual_seed(step)
        xr = x.clone().requires_grad_()
        q1, i1, l1 = ours(xr)
        (q1.square().sum() + l1.sum()).backward()
        d = int((i1 >= 0).flatten(0, -2).any(0).sum()) - 1
        assert (i1[..., : d + 1] >= 0).all() and (i1[..., d + 1:] == -1).all() and (l1[d + 1:] == 0).all()
        seen.add(d)
        xt = x.clone().requires_grad_()
        q2, i2, l2 = theirs(xt, rand_quantize_dropout_fixed_seed=_residual_vq_dropout_seed(d, 1, 4, multiple_of))
        (q2.square().sum() + l2.sum()).backward()
        assert torch.equal(i1, i2)
        torch.testing.assert_close(q1, q2, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(xr.grad, xt.grad, rtol=1e-4, atol=1e-5)
        for a, b in zip(ours.layers, theirs.layers):
            torch.testing.assert_close(a.codebook, b.codebook.reshape(a.codebook.shape), rtol=1e-5, atol=1e-5)
    assert seen == ({1, 2, 3} if multiple_of == 1 else {1, 3})
    ours.eval()
    assert (ours(torch.randn(3, 5, 16))[1] >= 0).all()  # eval: every layer


@pytest.mark.parametrize("cutoff, multiple_of, expected", [(0, 1, [1 / 4] * 4), (1, 1, [0, 1 / 3, 1 / 3, 1 / 3]),
                                                           (1, 2, [0, 1 / 3, 0, 2 / 3]), (0, 3, [0, 0, 3 / 4, 1 / 4])])
def test_quantize_dropout_draws_the_number_of_layers(cutoff, multiple_of, expected):
    # d uniform on [cutoff, Q - 1], then d + 1 rounded up to a multiple (4 layers; for a multiple
    # of 3, d + 1 in {1, 2, 3} -> 3 and 4 -> 6, i.e. every layer: d = 5 >= Q - 1 counts as the last).
    rvq = ResidualVectorQuantizer(4, 4, 8, quantize_dropout=True, quantize_dropout_cutoff_index=cutoff,
                                  quantize_dropout_multiple_of=multiple_of)
    torch.manual_seed(0)
    n = 3000
    counts = torch.zeros(4)
    for _ in range(n):
        counts[min(rvq._last_layer(torch.device("cpu")), 3)] += 1
    torch.testing.assert_close(counts / n, torch.tensor(expected), atol=0.035, rtol=0)


def test_quantize_dropout_keeps_the_dropped_layers_untouched_and_decodes():
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(6, 4, 8, decay=0.8, threshold_ema_dead_code=2.0, quantize_dropout=True)
    x = torch.randn(3, 10, 6)
    dropped = 0
    for step in range(6):
        before = [{k: v.clone() for k, v in layer.state_dict().items()} for layer in rvq.layers]
        q, idx, losses = rvq(x)
        d = int((idx >= 0).flatten(0, -2).any(0).sum()) - 1
        dropped += d < 3
        for i, (layer, state) in enumerate(zip(rvq.layers, before)):
            same = all(torch.equal(v, state[k]) for k, v in layer.state_dict().items())
            assert same == (i > d), (step, i, d)  # the used layers' EMA moved, the dropped ones' did not
    assert dropped
    for layer in rvq.layers:
        layer.freeze_codebook = True
    for seed in range(20):
        torch.manual_seed(seed)
        q, idx, _ = rvq(x)
        if (idx == -1).any():  # this draw dropped layers
            torch.testing.assert_close(rvq.indices_to_codes(idx), q)  # -1 decodes as nothing
            break
    else:
        raise AssertionError("no draw dropped a layer")


@needs_vqp
@pytest.mark.parametrize("q", [3, 2, 1])
def test_codes_from_indices_match_residual_vq(q):
    # get_codes_from_indices: every layer's codes, [Q, ...]; get_output_from_indices: their sum.
    # Fewer than Q indices per vector decode from the first q layers (ResidualVQ: with quantize dropout).
    ours, theirs = _pair()
    x = torch.randn(4, 20, 16)
    for m in (ours, theirs):
        m(x)  # one EMA step, the same in both
    theirs.quantize_dropout = True  # ResidualVQ decodes fewer than Q indices only with it; tsvq always
    ours.eval()
    _, idx, _ = ours(x)
    mask = torch.rand(4, 20, generator=torch.Generator().manual_seed(0)) < 0.8
    idx = torch.where(mask.unsqueeze(-1), idx, -1)[..., :q]  # padding -1, the first q layers
    codes = ours.get_codes_from_indices(idx)
    assert codes.shape == (3, 4, 20, 16) and (codes[q:] == 0).all() and (codes[:, ~mask] == 0).all()
    torch.testing.assert_close(codes, theirs.get_codes_from_indices(idx), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours.get_output_from_indices(idx), theirs.get_output_from_indices(idx), rtol=1e-6,
                               atol=1e-6)
    torch.testing.assert_close(ours.indices_to_codes(idx), codes.sum(0))


@needs_vqp
@pytest.mark.parametrize("quantize_dropout", [False, True])
def test_return_all_codes_and_freeze_codebook_match_residual_vq(quantize_dropout):
    # return_all_codes: a fourth output, every layer's codes [Q, ...] (0 where dropped), as ResidualVQ;
    # forward(freeze_codebook=True) leaves every layer's codebook as it was, in both.
    ours, theirs = _pair(quantize_dropout=quantize_dropout)
    g = torch.Generator().manual_seed(1)
    for step, freeze in enumerate([False, True, False, True]):
        x = torch.randn(4, 20, 16, generator=g) * (1 + step)
        before = ours.codebooks.clone()
        torch.manual_seed(step)
        q1, i1, l1, c1 = ours(x, freeze_codebook=freeze, return_all_codes=True)
        d = int((i1 >= 0).flatten(0, -2).any(0).sum()) - 1
        extra = {"rand_quantize_dropout_fixed_seed": _residual_vq_dropout_seed(d, 0, 3, 1)} if quantize_dropout else {}
        q2, i2, l2, c2 = theirs(x, freeze_codebook=freeze, return_all_codes=True, **extra)
        assert c1.shape == (3, 4, 20, 16) and (c1[d + 1:] == 0).all()
        torch.testing.assert_close(c1, ours.get_codes_from_indices(i1))
        assert torch.equal(ours.codebooks, before) == freeze
        assert torch.equal(i1, i2)
        torch.testing.assert_close(q1, q2, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(c1, c2, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours.codebooks, theirs.codebooks.reshape(ours.codebooks.shape), rtol=1e-5,
                                   atol=1e-5)
    assert len(ours.eval()(x)) == 3


def _shared_pair(Q=3, K=16, dim=8, **kw):
    torch.manual_seed(0)
    ours = ResidualVectorQuantizer(dim, Q, K, decay=0.9, shared_codebook=True, **kw)
    theirs = vqp.ResidualVQ(dim=dim, num_quantizers=Q, codebook_size=K, decay=0.9, shared_codebook=True,
                            rotation_trick=False, **kw)
    theirs.layers[0]._codebook.embed.data.copy_(ours.layers[0].codebook.detach()[None])
    theirs.layers[0]._codebook.embed_avg.data.copy_(ours.layers[0].codebook.detach()[None])
    return ours, theirs


@needs_vqp
@pytest.mark.parametrize("masked", [False, True])
def test_shared_codebook_matches_residual_vq_within_a_step_and_in_eval(masked):
    # One codebook for every depth. A training step: every depth searches the codebook as it was
    # at the start of the step, in both, so codes, outputs, losses and input gradients agree; the
    # EMA afterwards differs by design (see the next test). Eval: equal at every step.
    ours, theirs = _shared_pair()
    assert all(layer is ours.layers[0] for layer in ours.layers)
    assert len(list(ours.parameters())) == len(list(ours.layers[0].parameters()))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 20, 8, generator=g)
    mask = torch.rand(4, 20, generator=g) < 0.7 if masked else None
    _, i1 = _assert_same_step(ours, theirs, x, mask)
    assert len(set(i1[..., 1].flatten().tolist()) & set(i1[..., 0].flatten().tolist()) - {-1}) > 0  # shared codes
    ours.eval(), theirs.eval()
    theirs.layers[0]._codebook.embed.data.copy_(ours.layers[0].codebook.detach()[None])
    for _ in range(2):
        x = torch.randn(4, 20, 8, generator=g)
        (q1, i1, l1), (q2, i2, _) = ours(x), theirs(x)
        assert torch.equal(i1, i2)
        torch.testing.assert_close(q1, q2, rtol=1e-5, atol=1e-5)


@needs_vqp
@pytest.mark.parametrize("masked", [False, True])
def test_shared_codebook_takes_one_ema_step_on_every_depths_vectors(masked):
    # Oracle: the residuals of every depth searched against the start-of-step codebook (reference
    # nearest_code), then one reference EMA step on their union (padding left out).
    from tsvq.ops import reference

    ours, _ = _shared_pair(Q=3, K=16)
    layer = ours.layers[0]
    cs, es, cb = layer.cluster_size.clone(), layer.embed_sum.clone(), layer.codebook.clone()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 20, 8, generator=g)
    mask = torch.rand(4, 20, generator=g) < 0.7 if masked else torch.ones(4, 20, dtype=torch.bool)
    _, idx, _ = ours(x, mask=mask if masked else None)
    rows, codes, r = [], [], x[mask]
    for q in range(3):
        i = reference.nearest_code(r, cb)[0]
        assert torch.equal(i, idx[mask][:, q])
        rows.append(r), codes.append(i)
        r = r - cb[i]
    counts = reference.ema_codebook_update_(cs, es, cb, torch.cat(rows), torch.cat(codes), 0.9, 1e-5)
    torch.testing.assert_close(layer.cluster_size, cs)
    torch.testing.assert_close(layer.embed_sum, es, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer.codebook, cb, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer.batch_counts, counts)  # perplexity over every depth's codes
    assert counts.sum() == 3 * mask.sum()


def test_shared_codebook_restarts_loss_trained_and_frozen():
    torch.manual_seed(0)
    # dead-code restarts draw from every depth's vectors, after the EMA step
    from tsvq.ops import reference

    rvq = ResidualVectorQuantizer(8, 3, 64, shared_codebook=True, threshold_ema_dead_code=2.0)
    x = torch.randn(2, 10, 8)
    cb, rows, r = rvq.layers[0].codebook.clone(), [], x.reshape(-1, 8)
    for _ in range(3):
        rows.append(r)
        r = r - cb[reference.nearest_code(r, cb)[0]]
    rvq(x)
    restarted = rvq.layers[0].codebook[rvq.layers[0].cluster_size == 2.0]
    assert len(restarted) > 10
    dist, row = torch.cdist(restarted, torch.cat(rows), compute_mode="donot_use_mm_for_euclid_dist").min(1)
    assert dist.max() < 1e-6 and (row // 20 > 0).any()  # rows of depth 1 and 2 too
    # a loss-trained shared codebook gets the gradient of every depth's codebook loss
    rvq = ResidualVectorQuantizer(8, 3, 16, shared_codebook=True, decay=None)
    _, _, losses = rvq(x)
    losses.sum().backward()
    assert isinstance(rvq.layers[0].codebook, torch.nn.Parameter) and rvq.layers[0].codebook.grad.abs().sum() > 0
    # frozen: nothing moves
    rvq = ResidualVectorQuantizer(8, 3, 16, shared_codebook=True, decay=0.9)
    state = {k: v.clone() for k, v in rvq.state_dict().items()}
    rvq(x, freeze_codebook=True)
    assert all(torch.equal(v, state[k]) for k, v in rvq.state_dict().items())
    with pytest.raises(ValueError, match="orthogonal_reg_weight"):
        ResidualVectorQuantizer(8, 3, 16, shared_codebook=True, orthogonal_reg_weight=1.0)


@needs_vqp
@pytest.mark.parametrize("masked", [False, True])
def test_grouped_matches_grouped_residual_vq_over_training_steps(masked):
    torch.manual_seed(0)
    ours = GroupedResidualVectorQuantizer(16, groups=2, num_quantizers=3, codebook_size=8, decay=0.9)
    theirs = vqp.GroupedResidualVQ(dim=16, groups=2, num_quantizers=3, codebook_size=8, decay=0.9, rotation_trick=False)
    for rvq_ours, rvq_theirs in zip(ours.rvqs, theirs.rvqs):
        for a, b in zip(rvq_ours.layers, rvq_theirs.layers):
            b._codebook.embed.data.copy_(a.codebook.detach()[None])
            b._codebook.embed_avg.data.copy_(a.codebook.detach()[None])
    g = torch.Generator().manual_seed(1)
    for step in range(3):
        x = torch.randn(4, 20, 16, generator=g) * (1 + step)
        mask = torch.rand(4, 20, generator=g) < 0.7 if masked else None
        res = []
        for m in (ours, theirs):
            xr = x.clone().requires_grad_()
            q, i, losses, codes = m(xr, mask=mask, return_all_codes=True)
            (q.square().sum() + losses.sum()).backward()
            res.append((q.detach(), i, losses.detach(), xr.grad, torch.stack(tuple(codes))))
        (q1, i1, l1, g1, c1), (q2, i2, l2, g2, c2) = res
        assert i1.shape == (2, 4, 20, 3) and l1.shape == (2, 3) and c1.shape == (2, 3, 4, 20, 8)
        assert torch.equal(i1, i2)
        for a, b in [(q1, q2), (l1, l2), (g1, g2), (c1, c2)]:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert ours.codebooks.shape == (2, 3, 8, 8)
    torch.testing.assert_close(ours.codebooks, theirs.codebooks.reshape(2, 3, 8, 8), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kw, shape", [({}, (3, 7, 12)), ({"channel_last": False}, (3, 12, 7)),
                                       ({"accept_image_fmap": True}, (2, 12, 3, 4)), ({}, (5, 12))])
def test_grouped_is_one_residual_quantiser_per_channel_group_and_decodes(kw, shape):
    torch.manual_seed(0)
    grvq = GroupedResidualVectorQuantizer(12, groups=3, num_quantizers=2, codebook_size=8, **kw).eval()
    x = torch.randn(*shape)
    q, idx, losses = grvq(x)
    split = 1 if len(shape) > 2 and kw else -1
    for g, (rvq, chunk) in enumerate(zip(grvq.rvqs, x.chunk(3, dim=split))):
        qg, ig, lg = rvq(chunk)
        assert torch.equal(ig, idx[g])
        torch.testing.assert_close(qg, q.chunk(3, dim=split)[g])
        torch.testing.assert_close(lg, losses[g])
    torch.testing.assert_close(grvq.indices_to_codes(idx), q)
    assert grvq.get_codes_from_indices(idx).shape[:2] == (3, 2)
    with pytest.raises(ValueError, match="groups"):
        grvq.indices_to_codes(idx[:2])
    with pytest.raises(ValueError, match="dim == 12"):
        grvq(torch.randn(3, 7, 10))
    with pytest.raises(ValueError, match="divide dim"):
        GroupedResidualVectorQuantizer(12, groups=5)


def test_grouped_quantize_dropout_keeps_the_same_layers_in_every_group():
    grvq = GroupedResidualVectorQuantizer(8, groups=4, num_quantizers=4, codebook_size=8, quantize_dropout=True)
    seen = set()
    for step in range(12):
        torch.manual_seed(step)
        _, idx, losses = grvq(torch.randn(2, 5, 8))
        kept = (idx >= 0).flatten(1, -2).all(1)  # [G, Q]
        assert (kept == kept[0]).all() and kept[0, 0]
        seen.add(int(kept[0].sum()))
    assert len(seen) > 1


@needs_vqp
def test_per_layer_codebook_sizes_match_residual_vq():
    # codebook_size=(16, 8, 4): one K per layer (num_quantizers implied), as ResidualVQ.
    torch.manual_seed(0)
    ours = ResidualVectorQuantizer(8, codebook_size=(16, 8, 4), decay=0.9)
    theirs = vqp.ResidualVQ(dim=8, codebook_size=(16, 8, 4), decay=0.9, rotation_trick=False)
    assert ours.num_quantizers == 3 and [layer.codebook_size for layer in ours.layers] == [16, 8, 4]
    for a, b in zip(ours.layers, theirs.layers):
        b._codebook.embed.data.copy_(a.codebook.detach()[None])
        b._codebook.embed_avg.data.copy_(a.codebook.detach()[None])
    g = torch.Generator().manual_seed(1)
    for step in range(3):
        x = torch.randn(4, 20, 8, generator=g)
        (q1, i1, l1), (q2, i2, l2) = ours(x), theirs(x)
        assert torch.equal(i1, i2) and (i1[..., 2] < 4).all() and (i1[..., 0] >= 8).any()
        torch.testing.assert_close(q1, q2, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-6)
    assert isinstance(ours.codebooks, tuple) and [c.shape[0] for c in ours.codebooks] == [16, 8, 4]
    for a, b in zip(ours.codebooks, theirs.codebooks):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.eval().indices_to_codes(ours(x)[1]), ours(x)[0])
    for kw, match in [(dict(num_quantizers=2, codebook_size=(16, 8, 4)), "one size per layer"),
                      (dict(codebook_size=16), "num_quantizers is required"), (dict(num_quantizers=2), "codebook_size"),
                      (dict(codebook_size=(16, 8), shared_codebook=True), "shared_codebook")]:
        with pytest.raises(ValueError, match=match):
            ResidualVectorQuantizer(8, **kw)


def test_lens_reaches_every_layer():
    torch.manual_seed(0)
    a = ResidualVectorQuantizer(6, 3, 8, decay=0.8)
    b = ResidualVectorQuantizer(6, 3, 8, decay=0.8)
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 9, 6)
    lens = torch.tensor([9, 4, 1])
    (q1, i1, l1), (q2, i2, l2) = a(x, lens=lens), b(x, mask=torch.arange(9) < lens.unsqueeze(1))
    assert torch.equal(q1, q2) and torch.equal(i1, i2) and torch.equal(l1, l2) and (i1[1, 4:] == -1).all()
    for s1, s2 in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(s1, s2)


@pytest.mark.parametrize("kw, shape", [({}, (3, 7, 16)), ({"channel_last": False}, (3, 16, 7)),
                                       ({"accept_image_fmap": True}, (3, 16, 7, 1))])
def test_projection_acts_on_the_channels_and_decodes(kw, shape):
    # codebook_dim != dim: the projections act on the channel dimension in every layout (the same
    # result as channel-last input), padding stays 0, and indices decode to the output.
    torch.manual_seed(0)
    ref = ResidualVectorQuantizer(16, 3, 8, codebook_dim=6).eval()
    rvq = ResidualVectorQuantizer(16, 3, 8, codebook_dim=6, **kw).eval()
    rvq.load_state_dict(ref.state_dict())
    x_last = torch.randn(3, 7, 16)
    x = x_last if not kw else x_last.transpose(1, 2).reshape(shape)
    lens = None if kw.get("accept_image_fmap") else torch.tensor([7, 3, 0])
    q, idx, losses = rvq(x, lens=lens)
    q_ref, idx_ref, losses_ref = ref(x_last, lens=lens)
    assert q.shape == x.shape and torch.equal(idx.reshape(idx_ref.shape), idx_ref)
    torch.testing.assert_close(q if not kw else q.reshape(3, 16, 7).transpose(1, 2), q_ref)
    torch.testing.assert_close(losses, losses_ref)
    if lens is not None:
        assert (q_ref[1, 3:] == 0).all() and (q_ref[2] == 0).all()
    torch.testing.assert_close(rvq.indices_to_codes(idx), q)
    assert rvq.codebooks.shape == (3, 8, 6) and rvq.get_codes_from_indices(idx).shape[0] == 3


@pytest.mark.parametrize("make", [lambda: ResidualVectorQuantizer(8, 3, 16, decay=0.9),
                                  lambda: ResidualVectorQuantizer(8, 3, 16, decay=0.9, shared_codebook=True),
                                  lambda: ResidualVectorQuantizer(8, 3, 16, decay=0.9, quantize_dropout=True),
                                  lambda: GroupedResidualVectorQuantizer(8, groups=2, num_quantizers=2, codebook_size=16,
                                                                         decay=0.9),
                                  lambda: ResidualVectorQuantizer(8, 3, 16, decay=0.9, beam_size=4)],
                         ids=["residual", "shared-codebook", "quantize-dropout", "grouped", "beam-search"])
def test_compiled_step_matches_eager(make):
    # One graph (fullgraph=True), except under quantize dropout: its draw of the number of layers is
    # data-dependent control flow, a graph break per step (fullgraph=True refuses it).
    dropout = getattr(make(), "quantize_dropout", False)
    compiled, model, eager = compiled_twin(make, fullgraph=not dropout, backend="aot_eager")
    for step in range(3):
        x = torch.randn(4, 10, 8, generator=torch.Generator().manual_seed(step))
        outs = []
        for m in (compiled, eager):
            torch.manual_seed(10 + step)  # the same dropout draw
            q, idx, losses = m(x)
            outs.append((q, idx, losses))
        torch.testing.assert_close(outs[0], outs[1])
        torch.testing.assert_close(dict(model.named_buffers()), dict(eager.named_buffers()))


# Beam search (beam_size > 1). ResidualVQ 1.32 updates only its first layer's EMA codebook after a
# beam search (it selects the residuals with [..., 0, :] on the layer axis, and the zip over the
# layers stops after one), so parity covers one training step (codes, outputs, losses, input
# gradients, the first codebook) and eval mode; the later layers' EMA update is checked against the
# chosen path's residuals instead.


@needs_vqp
@pytest.mark.parametrize("kw, masked", [({"beam_size": 4}, False), ({"beam_size": 4}, True),
                                        ({"beam_size": 3, "beam_score_quantizer_weights": [1.0, 0.5, 2.0]}, False),
                                        ({"beam_size": 2, "eval_beam_size": 5, "codebook_dim": 6}, False)],
                         ids=["beam", "beam-mask", "weights", "eval-beam-projection"])
def test_beam_search_matches_residual_vq(kw, masked):
    ours, theirs = _pair(**kw)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 20, 16, generator=g)
    mask = torch.rand(4, 20, generator=g) < 0.7 if masked else None
    greedy = ResidualVectorQuantizer(16, 3, 8, decay=0.9, **{k: v for k, v in kw.items() if "beam" not in k})
    greedy.load_state_dict(ours.state_dict())
    _, i1 = _assert_same_step(ours, theirs, x, mask)
    torch.testing.assert_close(ours.layers[0].codebook, theirs.layers[0].codebook.reshape(8, -1), rtol=1e-5, atol=1e-5)
    assert not torch.equal(i1, greedy(x, mask=mask)[1])  # the search changed codes
    ours.eval(), theirs.eval()
    for layer, their in zip(ours.layers, theirs.layers):  # the same codebooks for eval mode
        their._codebook.embed.data.copy_(layer.codebook.detach()[None])
    for step in range(3):
        x = torch.randn(4, 20, 16, generator=g) * (1 + step)
        (q1, i1, l1), (q2, i2, l2) = ours(x, mask=mask), theirs(x, mask=mask)
        assert torch.equal(i1, i2)
        torch.testing.assert_close(q1, q2, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(l1, l2, rtol=1e-5, atol=1e-6)


def test_beam_search_updates_every_codebook_from_the_chosen_path():
    # After one training step each layer's EMA statistics are those of its chosen codes and of the
    # residuals the chosen path left it: r_0 = x, r_{q+1} = r_q - c_q (codebooks before the step).
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(16, 3, 8, decay=0.8, beam_size=4)
    before = [(layer.codebook.detach().clone(), layer.cluster_size.clone(), layer.embed_sum.clone())
              for layer in rvq.layers]
    x = torch.randn(4, 20, 16)
    _, idx, _ = rvq(x)
    r, idx = x.reshape(-1, 16), idx.reshape(-1, 3)
    for q, (layer, (codebook, size, total)) in enumerate(zip(rvq.layers, before)):
        onehot = torch.nn.functional.one_hot(idx[:, q], 8).float()
        torch.testing.assert_close(layer.cluster_size, 0.8 * size + 0.2 * onehot.sum(0))
        torch.testing.assert_close(layer.embed_sum, 0.8 * total + 0.2 * onehot.t() @ r, rtol=1e-5, atol=1e-5)
        r = r - codebook[idx[:, q]]


def test_beam_search_lowers_the_residual_error():
    # In eval mode: beam_size=1 is the greedy search exactly; wider beams lower the mean squared
    # error of the sum of codes (each chosen path has the smallest score of its beam).
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(8, 4, 16, decay=0.9, kmeans_init=True)
    x = torch.randn(8, 64, 8)
    rvq(x)  # k-means initialisation of every layer
    rvq.eval()
    q0, i0, _ = rvq(x)
    q1, i1, _ = rvq(x, beam_size=1)
    assert torch.equal(i0, i1) and torch.equal(q0, q1)
    errors = [(x - rvq(x, beam_size=b)[0]).square().mean().item() for b in (1, 2, 4, 8)]
    assert errors[1] < errors[0] and errors[3] < errors[0] and errors[3] <= errors[1] * 1.01, errors


def test_beam_search_with_quantize_dropout_shared_codebook_and_half_input():
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(8, 4, 16, decay=0.9, beam_size=3, quantize_dropout=True, shared_codebook=True)
    x = torch.randn(2, 30, 8)
    for step in range(4):
        torch.manual_seed(step)
        q, idx, losses = rvq(x)
        d = int((idx >= 0).flatten(0, -2).any(0).sum()) - 1
        assert (idx[..., : d + 1] >= 0).all() and (idx[..., d + 1:] == -1).all() and (losses[d + 1:] == 0).all()
    rvq.eval()
    q, idx, _ = rvq(x)
    torch.testing.assert_close(rvq.indices_to_codes(idx), q, rtol=1e-5, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q16, idx16, _ = rvq(x.bfloat16())
    assert q16.dtype == torch.bfloat16 and (idx16 == idx).float().mean() > 0.95  # searched in float32


def test_grouped_residual_vq_takes_the_beam_size():
    torch.manual_seed(0)
    grvq = GroupedResidualVectorQuantizer(8, groups=2, num_quantizers=3, codebook_size=8, decay=0.9, beam_size=4)
    assert all(rvq.beam_size == 4 for rvq in grvq.rvqs)
    q, idx, losses = grvq(torch.randn(2, 10, 8))
    assert q.shape == (2, 10, 8) and (idx >= 0).all()


def test_beam_search_as_wide_as_every_path_finds_the_best_path():
    # With more beams than paths (16 x 2 x 4 codes) nothing is pruned: the chosen path must be the
    # brute-force minimum of the score, sum over layers of ||r_q - c_q||^2 (weighted). Layers with
    # fewer codes than beams propose all of them; padding (lens) gets -1.
    import itertools

    torch.manual_seed(0)
    weights = [1.0, 0.5, 2.0]
    rvq = ResidualVectorQuantizer(8, codebook_size=(16, 2, 4), decay=0.9, beam_size=128,
                                  beam_score_quantizer_weights=weights).eval()
    x = torch.randn(2, 10, 8)
    codebooks = [layer.codebook.detach() for layer in rvq.layers]
    rows = x.reshape(-1, 8)
    paths = torch.tensor(list(itertools.product(range(16), range(2), range(4))))
    scores = []
    for path in paths.tolist():
        r, score = rows, 0.0
        for w, cb, c in zip(weights, codebooks, path):
            score = score + w * (r - cb[c]).square().sum(1)
            r = r - cb[c]
        scores.append(score)
    best = paths[torch.stack(scores, 1).argmin(1)]
    _, idx, _ = rvq(x)
    assert torch.equal(idx.reshape(-1, 3), best)
    _, idx, _ = rvq(x, lens=torch.tensor([10, 4]))
    assert (idx[1, 4:] == -1).all() and torch.equal(idx[0], best[:10])
