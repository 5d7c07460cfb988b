"""MaskGIT prior: mask schedule, classifier-free guidance, training loss, iterative decoding."""
import math

import pytest
import torch

from tsvq.models import create_model
from tsvq.models.maskgit import gamma, guided_logits, n_masked_for_training


def _prior(n_branches=1, n_classes=3, **kw):
    torch.manual_seed(0)
    cbs = [torch.randn(16, 8) for _ in range(n_branches)]
    shapes = [(3, 4), (3, 5)][:n_branches]
    return create_model("maskgit", cbs, shapes, n_classes, hidden=32, n_layers=2, **kw), cbs, shapes


def test_cosine_schedule_and_training_mask_counts():
    assert gamma(0.0) == 1.0 and abs(gamma(1.0)) < 1e-12 and abs(gamma(0.5) - math.cos(math.pi / 4)) < 1e-12
    r = torch.tensor([0.0, 1e-4, 0.5, 0.9, 1.0])
    n = n_masked_for_training(r, 40)
    assert n.tolist() == [40, 40, math.ceil(math.cos(math.pi / 4) * 40), math.ceil(math.cos(0.45 * math.pi) * 40), 1]


def test_guidance_arithmetic():
    cond, uncond = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    torch.testing.assert_close(guided_logits(cond, uncond, 1.0), cond)
    torch.testing.assert_close(guided_logits(cond, uncond, 0.0), uncond)
    torch.testing.assert_close(guided_logits(cond, uncond, 3.0), torch.tensor([4.0, -2.0]))


@pytest.mark.parametrize("n_branches", [1, 2])
def test_loss_backward_masks_and_embeddings_from_codebook(n_branches):
    prior, cbs, shapes = _prior(n_branches)
    for stage, cb in zip(prior.stages, cbs):
        torch.testing.assert_close(stage.tok_emb.weight[:16], cb)  # initialised from the codebook
    tokens = [torch.randint(0, 16, (5, *s)) for s in shapes]
    out = prior.loss(tokens, torch.tensor([0, 1, 2, 0, 1]), generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"]) and ("loss_1" in out) == (n_branches == 2)
    out["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in prior.parameters() if p.grad is not None)
    # the loss only looks at masked positions: with r ~ U(0, 1) and the same generator it is reproducible
    again = prior.loss(tokens, torch.tensor([0, 1, 2, 0, 1]), generator=torch.Generator().manual_seed(0))
    prior.eval()
    a = prior.loss(tokens, None, generator=torch.Generator().manual_seed(1))["loss"]
    b = prior.loss(tokens, None, generator=torch.Generator().manual_seed(1))["loss"]
    torch.testing.assert_close(a, b)
    assert again["loss"].shape == ()


def test_class_dropout_replaces_classes_with_the_unconditional_entry():
    prior, _, shapes = _prior(class_dropout=1.0)
    seen = []
    prior.stages[0].cls_emb.register_forward_hook(lambda m, inp, out: seen.append(inp[0].clone()))
    prior.loss([torch.randint(0, 16, (4, *shapes[0]))], torch.tensor([0, 1, 2, 0]))
    assert (seen[0] == 3).all()


@pytest.mark.parametrize("n_branches", [1, 2])
def test_sampling_is_reproducible_complete_and_guided(n_branches):
    prior, _, shapes = _prior(n_branches)
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    a = prior.sample(6, classes=1, guidance_scale=2.0, generator=g())
    b = prior.sample(6, classes=1, guidance_scale=2.0, generator=g())
    for t, u, s in zip(a, b, shapes):
        assert t.shape == (6, *s) and t.dtype == torch.long
        assert torch.equal(t, u) and int(t.min()) >= 0 and int(t.max()) < 16  # no [MASK] left
    c = prior.sample(6, classes=None, generator=g())
    assert not all(torch.equal(t, u) for t, u in zip(a, c))
    assert prior.sample(2, classes=torch.tensor([0, 2]), generator=g())[0].shape == (2, *shapes[0])


def test_decoding_fills_tokens_on_the_cosine_schedule():
    prior, _, shapes = _prior(n_steps=4)
    N = shapes[0][0] * shapes[0][1]
    counts = []
    orig = prior.stages[0].forward

    def spy(tokens, classes, context=None):
        counts.append(int((tokens == prior.stages[0].mask_id).sum(1)[0]))
        return orig(tokens, classes, context)

    prior.stages[0].forward = spy
    prior.sample(3, generator=torch.Generator().manual_seed(0))
    assert counts == [N] + [math.floor(math.cos(math.pi / 2 * (t + 1) / 4) * N) for t in range(3)]


def test_bad_input():
    prior, _, shapes = _prior()
    with pytest.raises(ValueError, match="n must be"):
        prior.sample(0)
    with pytest.raises(ValueError, match="classes must be in"):
        prior.sample(2, classes=5)
    with pytest.raises(ValueError, match="guidance_scale must be a finite float"):
        prior.sample(2, classes=1, guidance_scale=float("inf"))
    for temperature in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature must be a finite float >= 0"):
            prior.sample(2, temperature=temperature)
    with pytest.raises(ValueError, match="cfg.choice_temperature"):
        create_model("maskgit", [torch.randn(4, 2)], [(1, 2)], 2, choice_temperature=float("nan"))
    with pytest.raises(ValueError, match="tokens must be int64"):
        prior.loss([torch.zeros(2, 5, 5, dtype=torch.long)])
    with pytest.raises(ValueError, match="n_classes"):
        create_model("maskgit", [torch.randn(4, 2)], [(1, 2)], 0)
    with pytest.raises(ValueError, match="divisible"):
        create_model("maskgit", [torch.randn(4, 2)], [(1, 2)], 2, hidden=30, n_heads=4)


def test_decode_returns_the_tokenizer_length():
    tok = create_model("vqvae", length=77, d=8, n_resnet_blocks=1).eval()
    _, _, idx = tok.encode(torch.randn(2, 1, 77))
    prior = create_model("maskgit", [tok.branches[0].vq.codebook.detach()], [tuple(idx[0].shape[1:])], 2, hidden=32,
                         n_layers=1)
    grids = prior.sample(3, classes=0, generator=torch.Generator().manual_seed(0))
    assert tok.decode_indices(grids).shape == (3, 1, 77)
    with pytest.raises(ValueError, match="indices must be a list of 1 tensors"):
        tok.decode_indices(grids * 2)


def test_prior_learns_a_class_conditional_token_distribution():
    """Class 0 = every token 3, class 1 = tokens alternating 5/7 along time: after a short training
    the guided samples reproduce each class's pattern (checks masking, targets, class token, decoding)."""
    torch.manual_seed(0)
    prior, _, shapes = _prior(n_classes=2, class_dropout=0.1, dropout=0.0)
    h, w = shapes[0]
    pattern = {0: torch.full((h, w), 3), 1: torch.tensor([5, 7] * (w // 2)).expand(h, w)}
    y = torch.arange(64) % 2
    tokens = torch.stack([pattern[int(c)] for c in y])
    opt = torch.optim.AdamW(prior.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        loss = prior.loss([tokens], y, generator=g)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    prior.eval()
    for c in (0, 1):
        grid = prior.sample(8, classes=c, guidance_scale=2.0, generator=torch.Generator().manual_seed(c))[0]
        assert (grid == pattern[c]).float().mean() > 0.95
