"""SimVQ: parity with vector_quantize_pytorch.SimVQ (outputs, indices, loss, gradients of the input and
of the codebook transform), the fused search, usage statistics, compile and bad input."""
import pytest
import torch

from tsvq.nn import SimVQ

vqp = pytest.importorskip("vector_quantize_pytorch")


def _pair(**kw):
    torch.manual_seed(0)
    ref = vqp.SimVQ(**kw)
    ours = SimVQ(**kw)
    ours.load_state_dict(ref.state_dict(), strict=False)
    return ours, ref


@pytest.mark.parametrize("kw, shape", [
    (dict(dim=16, codebook_size=64), (2, 50, 16)),
    (dict(dim=16, codebook_size=64, rotation_trick=False), (2, 50, 16)),
    (dict(dim=8, codebook_size=32, channel_first=True, frozen_codebook_dim=12), (2, 8, 5, 6)),
    (dict(dim=16, codebook_size=1000, commitment_weight=0.5, input_to_quantize_commit_loss_weight=0.1), (3, 40, 16)),
])
def test_parity_with_vector_quantize_pytorch(kw, shape):
    ours, ref = _pair(**kw)
    x = torch.randn(*shape)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    qa, ia, la = ours(xa)
    qb, ib, lb = ref(xb)
    assert torch.equal(ia, ib)
    torch.testing.assert_close(qa, qb, rtol=1e-4, atol=1e-5)  # rotation trick: vqp's value is lambda R z
    torch.testing.assert_close(la, lb)
    w = torch.randn_like(qa)
    ((qa * w).sum() + la).backward()
    ((qb * w).sum() + lb).backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.code_transform.weight.grad, ref.code_transform.weight.grad)
    torch.testing.assert_close(ours.indices_to_codes(ia), ref.indices_to_codes(ib))


def test_every_code_follows_the_transform_and_usage_is_counted():
    sim = SimVQ(dim=4, codebook_size=8)
    x = torch.randn(1, 200, 4)
    _, idx, loss = sim(x)
    loss.backward()
    assert (sim.code_transform.weight.grad != 0).any()  # the codebook trains through W
    counts = torch.bincount(idx.flatten(), minlength=8).float()
    assert torch.equal(sim.batch_counts, counts) and float(sim.fraction_used) == float((counts > 0).float().mean())
    nearest = torch.cdist(x[0], sim.codebook.detach()).argmin(1)
    assert torch.equal(idx[0], nearest)


def test_compiles_without_graph_breaks():
    torch._dynamo.reset()
    sim = SimVQ(dim=16, codebook_size=64)
    x = torch.randn(2, 30, 16)
    q, i, loss = torch.compile(sim, fullgraph=True, backend="aot_eager")(x)
    q2, i2, loss2 = sim(x)
    assert torch.equal(i, i2)
    torch.testing.assert_close(q, q2)
    torch.testing.assert_close(loss, loss2)


@pytest.mark.parametrize("kw, message", [
    (dict(dim=0, codebook_size=8), "dim must be an int >= 1"),
    (dict(dim=4, codebook_size=0), "codebook_size must be an int >= 1"),
    (dict(dim=4, codebook_size=8, frozen_codebook_dim=-1), "frozen_codebook_dim must be an int >= 1"),
])
def test_bad_arguments(kw, message):
    with pytest.raises(ValueError, match=message):
        SimVQ(**kw)


def test_bad_input():
    sim = SimVQ(dim=4, codebook_size=8)
    with pytest.raises(ValueError, match="x must end in dim = 4"):
        sim(torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="NaN"):
        sim(torch.full((1, 2, 4), float("nan")))


@pytest.mark.parametrize("kw, seed, shape", [
    (dict(dim=16, num_quantizers=3, codebook_size=64), None, (2, 30, 16)),
    (dict(dim=16, num_quantizers=4, codebook_size=32, quantize_dropout=True), 7, (2, 30, 16)),
    (dict(dim=8, num_quantizers=2, codebook_size=32, channel_first=True, rotation_trick=False), None, (2, 8, 5, 6)),
])
def test_residual_simvq_parity(kw, seed, shape):
    from tsvq.nn import ResidualSimVQ
    torch.manual_seed(0)
    ref = vqp.ResidualSimVQ(**kw)
    ours = ResidualSimVQ(**kw)
    ours.load_state_dict(ref.state_dict(), strict=False)
    x = torch.randn(*shape)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    qa, ia, la, ca = ours(xa, return_all_codes=True, rand_quantize_dropout_fixed_seed=seed)
    qb, ib, lb, cb = ref(xb, return_all_codes=True, rand_quantize_dropout_fixed_seed=seed)
    assert torch.equal(ia, ib)
    if seed is not None:
        assert (ia == -1).any()
    torch.testing.assert_close(qa, qb, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(la, lb)
    torch.testing.assert_close(ca, cb)
    w = torch.randn_like(qa)
    ((qa * w).sum() + la.sum()).backward()
    ((qb * w).sum() + lb.sum()).backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.get_output_from_indices(ia), ref.get_output_from_indices(ib))
