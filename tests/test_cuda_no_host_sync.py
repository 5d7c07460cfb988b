"""On CUDA, the ops and a whole VectorQuantizer training step never synchronise with the host
(SPEC section 6: "full VectorQuantizer training step ... with no host synchronisation"; the
README's "no host sync" for the EMA update, the STFT pair and code_stats).

Each call runs once as a warm-up (lazy CUDA / cuBLAS initialisation, the STFT window's one host
copy) and then again under ``torch.cuda.set_sync_debug_mode("error")``, which raises on any
synchronising call (``.item()``, a device-to-host copy, a blocking host-to-device copy, a boolean
mask index, ``nonzero``). The STFT pair has its own test in tests/ops/test_stft.py.
"""
import pytest
import torch
from helpers import CUDA

import tsvq
from tsvq.nn import GroupedResidualVectorQuantizer, ResidualVectorQuantizer, VectorQuantizer
from tsvq.ops import barlow_twins_loss, code_stats, ema_codebook_update_, nearest_code, nearest_code_topk

pytestmark = [pytest.mark.cuda, CUDA,
              pytest.mark.skipif(not tsvq.has_ops(), reason="tsvq._C not built")]


def _no_sync(fn) -> None:
    fn()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        fn()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()


def test_nearest_code_topk_forward_backward_no_sync():
    x = torch.randn(1000, 16, device="cuda", requires_grad=True)
    cb = torch.randn(32, 16, device="cuda", requires_grad=True)

    def step():
        x.grad = cb.grad = None
        _, dist = nearest_code_topk(x, cb, 4)
        dist.sum().backward()

    _no_sync(step)


def test_nearest_code_forward_backward_no_sync():
    x = torch.randn(1000, 16, device="cuda", requires_grad=True)
    cb = torch.randn(32, 16, device="cuda", requires_grad=True)

    def step():
        x.grad = cb.grad = None
        _, dist = nearest_code(x, cb)
        dist.sum().backward()

    _no_sync(step)


@pytest.mark.parametrize("deterministic", [False, True])
def test_code_stats_and_ema_update_no_sync(deterministic):
    x = torch.randn(1000, 16, device="cuda")
    idx = torch.randint(0, 32, (1000,), device="cuda")
    state = (torch.ones(32, device="cuda"), torch.randn(32, 16, device="cuda"), torch.randn(32, 16, device="cuda"))
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic)
    try:
        _no_sync(lambda: code_stats(x, idx, 32))
        _no_sync(lambda: ema_codebook_update_(*state, x, idx, 0.9, 1e-5))
    finally:
        torch.use_deterministic_algorithms(previous)


@pytest.mark.parametrize("N,D", [(64, 256), (512, 128)], ids=["gram", "cross-correlation"])
def test_barlow_twins_forward_backward_no_sync(N, D):
    z1 = torch.randn(N, D, device="cuda", requires_grad=True)
    z2 = torch.randn(N, D, device="cuda", requires_grad=True)

    def step():
        z1.grad = z2.grad = None
        barlow_twins_loss(z1, z2, 0.005, 1e-5, False, True).backward()

    _no_sync(step)


@pytest.mark.parametrize("kw", [dict(decay=0.8), dict(decay=0.8, threshold_ema_dead_code=2.0),
                                dict(decay=None), dict(decay=0.8, use_cosine_sim=True),
                                dict(decay=0.8, rotation_trick=True),
                                dict(decay=0.8, orthogonal_reg_weight=10.0, orthogonal_reg_active_codes_only=True,
                                     orthogonal_reg_max_codes=16),
                                dict(decay=0.8, threshold_ema_dead_code=2.0, mask=True),
                                dict(decay=None, mask=True),
                                dict(decay=0.8, heads=4, codebook_dim=4, separate_codebook_per_head=True,
                                     threshold_ema_dead_code=2.0, orthogonal_reg_weight=1.0, mask=True),
                                dict(decay=0.8, commitment_use_cross_entropy_loss=True, mask=True),
                                dict(decay=0.8, stochastic_sample_codes=True, codebook_diversity_loss_weight=0.1,
                                     heads=2, codebook_dim=8),
                                dict(decay=None, stochastic_sample_codes=True, codebook_diversity_loss_weight=0.1,
                                     heads=2, codebook_dim=8, separate_codebook_per_head=True, mask=True)],
                         ids=["ema", "ema-dead-code-restart", "loss-trained", "cosine", "rotation-trick",
                              "orthogonal-reg", "mask-ema-dead-code-restart", "mask-loss-trained",
                              "separate-heads", "cross-entropy-commitment", "sampling-diversity",
                              "sampling-diversity-separate-loss-trained"])
def test_vector_quantizer_training_step_no_sync(kw):
    kw = dict(kw)
    mask = torch.rand(8, 64, device="cuda") < 0.7 if kw.pop("mask", False) else None
    vq = VectorQuantizer(16, 32, commitment_weight=1.0, **kw).cuda().train()
    x = torch.randn(8, 64, 16, device="cuda", requires_grad=True)

    def step():
        x.grad = None
        q, _, loss = vq(x, mask=mask)
        (q.square().mean() + loss).backward()
        return vq.perplexity, vq.fraction_used

    _no_sync(step)


@pytest.mark.parametrize("cls, kw", [(ResidualVectorQuantizer, {}), (ResidualVectorQuantizer, dict(shared_codebook=True)),
                                     (GroupedResidualVectorQuantizer, dict(groups=2)),
                                     (ResidualVectorQuantizer, dict(beam_size=4))],
                         ids=["residual", "shared-codebook", "grouped", "beam-search"])
def test_residual_vector_quantizer_quantize_dropout_step_no_sync(cls, kw):
    """Quantize dropout draws its layer count on the host (torch's CPU generator): no device sync;
    nor the shared codebook's deferred EMA step, nor the groups."""
    torch.manual_seed(0)
    rvq = cls(16, num_quantizers=4, codebook_size=32, decay=0.8, quantize_dropout=True, threshold_ema_dead_code=1.0,
              **kw).cuda()
    x = torch.randn(8, 64, 16, device="cuda", requires_grad=True)

    def step():
        x.grad = None
        q, _, losses = rvq(x)
        (q.square().mean() + losses.sum()).backward()

    for _ in range(3):  # several draws of the number of layers
        _no_sync(step)


@pytest.mark.parametrize("name, kw", [
    ("vqvae", {}),
    ("vqvae", dict(two_branch=True, kmeans_init=True)),
    ("ncvqvae", dict(projector_widths=(256, 256))),
    ("ncvqvae", dict(projector_widths=(256, 256), ssl_loss="vicreg", augmentation="warp")),
    ("ncvqvae", dict(projector_widths=(256, 256), ssl_loss="vibcreg", augmentation="gauss")),
], ids=["vqvae", "vqvae-two-branch", "ncvqvae-bt-slice", "ncvqvae-vicreg-warp", "ncvqvae-vibcreg-gauss"])
def test_tokenizer_training_step_no_sync(name, kw):
    """A whole tokenizer step (views, STFT, encoder, quantiser with EMA update, decoder, ISTFT, SSL
    loss, backward, AdamW) as the benchmarks time it (benchmarks/harness.py adamw_step): a host
    synchronisation here would bound the SPEC's NC-VQVAE step target on a GPU. The first step
    (k-means initialisation included) is the warm-up."""
    from harness import adamw_step
    from tsvq.models import create_model

    torch.manual_seed(0)
    model = create_model(name, length=150, **kw).cuda().train()
    _no_sync(adamw_step(model, torch.randn(16, 1, 150, device="cuda")))
