"""FiniteScalarQuantizer: step-for-step parity with vector_quantize_pytorch.FSQ, bf16, compile,
usage statistics and bad input."""
import math

import pytest
import torch

from tsvq.nn import FiniteScalarQuantizer

vqp = pytest.importorskip("vector_quantize_pytorch")


def _pair(**kw):
    torch.manual_seed(0)
    ref = vqp.FSQ(**kw)
    ours = FiniteScalarQuantizer(**kw)
    ours.load_state_dict(ref.state_dict(), strict=False)  # the projections, when there are any
    return ours, ref


@pytest.mark.parametrize("kw, shape", [
    (dict(levels=[8, 5, 5, 5]), (2, 50, 4)),
    (dict(levels=[7, 5, 5], dim=16), (3, 20, 16)),
    (dict(levels=[4, 4, 3], dim=12, num_codebooks=2), (2, 30, 12)),
    (dict(levels=[8, 6, 5], dim=8, channel_first=True), (2, 8, 40)),
    (dict(levels=[5, 4], dim=6), (2, 6, 7, 9)),  # 4-D: channel-first feature map
    (dict(levels=[2, 2, 3, 4], preserve_symmetry=True), (2, 64, 4)),
    (dict(levels=[6, 5], bound_hard_clamp=True), (2, 33, 2)),
])
def test_parity_with_vector_quantize_pytorch(kw, shape):
    ours, ref = _pair(**kw)
    x = torch.randn(*shape) * 2
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_a, idx_a = ours(xa)
    out_b, idx_b = ref(xb)
    torch.testing.assert_close(out_a, out_b)
    assert idx_a.dtype == idx_b.dtype == torch.int32 and torch.equal(idx_a, idx_b)
    w = torch.randn_like(out_a)
    (out_a * w).sum().backward()
    (out_b * w).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    torch.testing.assert_close(ours.indices_to_codes(idx_a), ref.indices_to_codes(idx_b))
    torch.testing.assert_close(ours.implicit_codebook, ref.implicit_codebook)
    assert ours.codebook_size == ref.codebook_size == math.prod(kw["levels"])


def test_every_code_round_trips_and_the_grid_is_exact():
    fsq = FiniteScalarQuantizer([8, 5, 5, 5])
    codes = fsq.implicit_codebook
    assert codes.shape == (1000, 4) and codes.abs().max() <= 1
    assert torch.equal(fsq.codes_to_indices(codes), torch.arange(1000, dtype=torch.int32))
    out, idx = fsq(codes.unsqueeze(0) * 3)  # far outside: tanh saturates to the outer levels
    assert out.abs().max() <= 1 and idx.min() >= 0 and idx.max() < 1000
    # a code decodes to itself: quantising it again finds the same index (even levels: offset grid)
    fsq.eval()
    again = fsq.codes_to_indices(fsq.bound(torch.atanh((codes * (torch.tensor([4, 2, 2, 2]) / ((torch.tensor([8, 5, 5, 5]) - 1) * 1.001 / 2))).clamp(-0.999, 0.999))))
    assert (again == torch.arange(1000, dtype=torch.int32)).float().mean() > 0.99


def test_usage_statistics_count_the_last_training_batch():
    fsq = FiniteScalarQuantizer([3, 3])
    _, idx = fsq(torch.randn(4, 500, 2) * 3)
    counts = torch.bincount(idx.flatten().long(), minlength=9).float()
    p = counts / counts.sum()
    expected = torch.exp(-(p[p > 0] * p[p > 0].log()).sum())
    torch.testing.assert_close(fsq.perplexity, expected)
    assert float(fsq.fraction_used) == float((counts > 0).float().mean())
    fsq.eval()
    fsq(torch.zeros(1, 10, 2))  # evaluation leaves the statistics alone
    torch.testing.assert_close(fsq.perplexity, expected)


def test_bf16_autocast_keeps_the_levels():
    # The rounding runs in float32 whatever autocast does: under bf16 the codes used on clustered data
    # stay those of float32 (bf16 rounding of tanh before the level rounding would merge neighbours).
    torch.manual_seed(0)
    fsq = FiniteScalarQuantizer([8, 8, 8, 5, 5, 5], dim=32)
    centres = torch.randn(64, 32)
    x = centres[torch.randint(0, 64, (4096,))] + 0.05 * torch.randn(4096, 32)
    _, idx32 = fsq(x.unsqueeze(0))
    used32 = float(fsq.fraction_used)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, idx16 = fsq(x.unsqueeze(0))
    assert out.dtype == torch.bfloat16 and idx16.dtype == torch.int32
    assert abs(float(fsq.fraction_used) - used32) <= 0.01 * used32
    assert (idx16 == idx32).float().mean() > 0.95  # only the bf16 projection differs
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = FiniteScalarQuantizer([8, 8, 8, 5, 5, 5], force_quantization_f32=False)
        raw = torch.randn(1, 4096, 6).bfloat16()
        low(raw)
    assert float(low.fraction_used) > 0  # runs, in bf16 arithmetic, when asked to


def test_compiles_without_graph_breaks():
    torch._dynamo.reset()
    fsq = FiniteScalarQuantizer([8, 5, 5, 5], dim=16)
    x = torch.randn(2, 40, 16)
    compiled = torch.compile(fsq, fullgraph=True, backend="aot_eager")
    out_c, idx_c = compiled(x)
    out_e, idx_e = fsq(x)
    torch.testing.assert_close(out_c, out_e)
    assert torch.equal(idx_c, idx_e)


@pytest.mark.parametrize("kw, message", [
    (dict(levels=[]), "non-empty list of ints"),
    (dict(levels=[8, 2.5]), "non-empty list of ints"),
    (dict(levels=[8, 1]), "levels must be >= 3"),
    (dict(levels=[8, 2]), "level 2 needs preserve_symmetry=True"),
    (dict(levels=[1, 2], preserve_symmetry=True), "levels must be >= 2"),
    (dict(levels=[65536] * 2), "does not fit int32 indices"),
    (dict(levels=[5, 5], num_codebooks=0), "num_codebooks must be an int >= 1"),
    (dict(levels=[5, 5], num_codebooks=2, keep_num_codebooks_dim=False), "needs num_codebooks == 1"),
    (dict(levels=[5, 5], dim=0), "dim must be an int >= 1"),
])
def test_bad_arguments(kw, message):
    with pytest.raises(ValueError, match=message):
        FiniteScalarQuantizer(**kw)


def test_bad_input():
    fsq = FiniteScalarQuantizer([5, 5], dim=8)
    with pytest.raises(ValueError, match=r"z must be Tensor\[B, N, 8\]"):
        fsq(torch.randn(2, 10, 7))
    with pytest.raises(ValueError, match="codes must end in d = 2"):
        fsq.codes_to_indices(torch.zeros(3, 4))
    x = torch.randn(1, 3, 8)
    x[0, 1, 0] = float("nan")
    out, idx = fsq(x)  # NaN in, NaN out (as FSQ), index -1, not counted: no silent code, no sync
    assert torch.isnan(out[0, 1]).all() and not torch.isnan(out[0, [0, 2]]).any()
    assert idx[0, 1] == -1 and idx[0, 0] >= 0 and float(fsq.batch_counts.sum()) == 2


def _rpair(cls_ours, cls_ref, **kw):
    torch.manual_seed(0)
    ref = cls_ref(**kw)
    ours = cls_ours(**kw)
    ours.load_state_dict(ref.state_dict(), strict=False)
    return ours, ref


@pytest.mark.parametrize("kw, seed", [
    (dict(levels=[8, 5, 5, 5], num_quantizers=3), None),
    (dict(levels=[7, 5, 5], num_quantizers=4, dim=16), None),
    (dict(levels=[4, 4, 4], num_quantizers=4, dim=8, quantize_dropout=True), 3),
    (dict(levels=[5, 5], num_quantizers=6, quantize_dropout=True, quantize_dropout_multiple_of=2), 11),
    (dict(levels=[6, 5], num_quantizers=2, dim=4, bound_hard_clamp=False, soft_clamp_input_value=1.5), None),
])
def test_residual_fsq_parity(kw, seed):
    from tsvq.nn import ResidualFSQ
    ours, ref = _rpair(ResidualFSQ, vqp.ResidualFSQ, **kw)
    x = torch.randn(2, 40, kw.get("dim", len(kw["levels"])))
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_a, idx_a, codes_a = ours(xa, return_all_codes=True, rand_quantize_dropout_fixed_seed=seed)
    out_b, idx_b, codes_b = ref(xb, return_all_codes=True, rand_quantize_dropout_fixed_seed=seed)
    torch.testing.assert_close(out_a, out_b)
    assert torch.equal(idx_a.long(), idx_b.long()) and idx_a.dtype == idx_b.dtype
    torch.testing.assert_close(codes_a, codes_b)
    if seed is not None:
        assert (idx_a == -1).any()  # this seed drops layers
    w = torch.randn_like(out_a)
    (out_a * w).sum().backward()
    (out_b * w).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    torch.testing.assert_close(ours.get_output_from_indices(idx_a), ref.get_output_from_indices(idx_b))


def test_residual_fsq_layers_refine_and_dropout_draws_on_the_cpu():
    from tsvq.nn import ResidualFSQ
    rfsq = ResidualFSQ(levels=[5, 5, 5], num_quantizers=4).eval()
    x = torch.randn(1, 500, 3) * 0.5
    _, idx = rfsq(x)
    errors = [float((rfsq.get_output_from_indices(idx[..., :q]) - torch.tanh(x / rfsq.soft_clamp_input_value)
                     * rfsq.soft_clamp_input_value).pow(2).mean()) for q in (1, 2, 3, 4)]
    assert errors[0] > errors[1] > errors[2] > errors[3]  # each layer quantises what the previous left
    drop = ResidualFSQ(levels=[5, 5], num_quantizers=4, quantize_dropout=True, quantize_dropout_cutoff_index=1)
    kept = set()
    for _ in range(40):
        _, idx = drop(torch.randn(1, 8, 2))
        kept.add(int((idx[0, 0] >= 0).sum()))
    assert kept == {2, 3, 4}  # at least cutoff + 1 layers, every depth drawn


def test_grouped_residual_fsq_parity():
    from tsvq.nn import GroupedResidualFSQ
    ours, ref = _rpair(GroupedResidualFSQ, vqp.GroupedResidualFSQ, dim=12, groups=2, levels=[5, 5, 4],
                       num_quantizers=3)
    x = torch.randn(2, 30, 12)
    out_a, idx_a = ours(x)
    out_b, idx_b = ref(x)
    torch.testing.assert_close(out_a, out_b)
    assert idx_a.shape == (2, 2, 30, 3) and torch.equal(idx_a, idx_b)
    torch.testing.assert_close(ours.get_output_from_indices(idx_a), ref.get_output_from_indices(idx_b))
    with pytest.raises(ValueError, match="divisible by groups"):
        GroupedResidualFSQ(dim=10, groups=3, levels=[5, 5], num_quantizers=2)


@pytest.mark.parametrize("kw, message", [
    (dict(levels=[5, 5], num_quantizers=0), "num_quantizers must be an int >= 1"),
    (dict(levels=[5, 5], num_quantizers=2, quantize_dropout_cutoff_index=2), "cutoff_index must be in"),
    (dict(levels=[5, 5], num_quantizers=2, quantize_dropout_multiple_of=0), "multiple_of must be >= 1"),
    (dict(levels=[5, 5], num_quantizers=2, soft_clamp_input_value=1.2), "set by bound_hard_clamp=True"),
    (dict(levels=[5, 1], num_quantizers=2), "levels must be >= 2"),
])
def test_residual_fsq_bad_arguments(kw, message):
    from tsvq.nn import ResidualFSQ
    with pytest.raises(ValueError, match=message):
        ResidualFSQ(**kw)
