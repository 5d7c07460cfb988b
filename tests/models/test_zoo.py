"""The rest of the zoo: VAE / MS-SSIM-VAE and the standalone SSL encoders; MS-SSIM as a metric."""
import math

import pytest
import torch

from tsvq.nn.ssim import ms_ssim_1d, ms_ssim_scales, ssim_1d
from tsvq.engine.module import stage1_step
from tsvq.models import TOKENIZERS, TRAINABLE, create_model
from tsvq.models.vae import VAE

ZOO = [name for name in TRAINABLE if name not in TOKENIZERS]  # every registered zoo model
SMALL = {"projector_widths": (64, 32), "predictor_hidden": 32, "widths": (16, 32)}


def _make(name, L=96, **kw):
    torch.manual_seed(0)
    if name in ("vae", "mssim_vae"):
        return create_model(name, length=L, in_channels=2, widths=(8, 16), latent_dim=4, **kw)
    args = {k: v for k, v in SMALL.items() if k != "predictor_hidden" or name == "byol"}
    return create_model(name, length=L, in_channels=2, **args, **kw)


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("L", [64, 97])
def test_zoo_forward_backward_shapes(name, L):
    assert name in TRAINABLE
    m = _make(name, L)
    x = torch.randn(6, 2, L)
    out = stage1_step(m, (x,), torch.Generator().manual_seed(0), 0, 1)
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert any(g is not None for g in grads) and all(torch.isfinite(g).all() for g in grads if g is not None)
    m.eval()
    feats = m.representation(x)
    assert feats.dim() == 2 and feats.shape[0] == 6 and torch.isfinite(feats).all()
    if name in ("vae", "mssim_vae"):
        assert out["x_hat"].shape == x.shape and m.reconstruct(x).shape == x.shape
        assert m.sample(3, generator=torch.Generator().manual_seed(1)).shape == (3, 2, L)
        assert {"recon", "kl", "neg_elbo"} <= set(out)


def test_kl_closed_form_matches_monte_carlo():
    torch.manual_seed(0)
    mu, logvar = torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([[0.2, -0.7, 0.0]])
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    z = q.sample((400_000,))
    mc = (q.log_prob(z) - torch.distributions.Normal(0.0, 1.0).log_prob(z)).sum(-1).mean()
    closed = VAE.kl_divergence(mu, logvar)
    assert closed.shape == (1,) and abs(float(closed) - float(mc)) < 0.02
    torch.testing.assert_close(closed, torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1))


def test_reparameterisation_gradient_flows_to_mu_and_sigma():
    mu = torch.zeros(4, 3, requires_grad=True)
    logvar = torch.zeros(4, 3, requires_grad=True)
    z = VAE.reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    (z ** 2).sum().backward()
    assert mu.grad.abs().sum() > 0 and logvar.grad.abs().sum() > 0


def test_kl_annealing_is_linear_and_reaches_beta():
    m = _make("vae", beta=2.0, kl_anneal_steps=10)
    m.training_progress(0, 100)
    assert m.beta_now == 0.0
    m.training_progress(5, 100)
    assert m.beta_now == pytest.approx(1.0)
    m.training_progress(50, 100)
    assert m.beta_now == 2.0
    out = m(torch.randn(4, 2, 96), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out["loss"], out["recon"] + 2.0 * out["kl"])


def test_byol_target_gets_no_gradient_and_follows_the_ema():
    m = _make("byol", tau_base=0.9)
    stage1_step(m, (torch.randn(6, 2, 64),), torch.Generator().manual_seed(0), 0, 10)["loss"].backward()
    assert all(p.grad is None for p in (*m.target_backbone.parameters(), *m.target_projector.parameters()))
    with torch.no_grad():
        for p in m.backbone.parameters():
            p.add_(1.0)
    before = [p.clone() for p in m.target_backbone.parameters()]
    online = [p.clone() for p in m.backbone.parameters()]
    m.training_progress(5, 10)  # cos(pi/2) = 0 -> tau = 1 - 0.1 * 0.5 = 0.95
    assert m.tau == pytest.approx(0.95)
    for b, o, t in zip(before, online, m.target_backbone.parameters()):
        torch.testing.assert_close(t, 0.95 * b + 0.05 * o)
    m.training_progress(10, 10)
    assert m.tau == pytest.approx(1.0)


def test_ms_ssim_known_values():
    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 4 * math.pi, 200)
    x = torch.sin(t).expand(3, 1, 200).clone()
    assert torch.allclose(ssim_1d(x, x, 2.0), torch.ones(3)) and torch.allclose(ms_ssim_1d(x, x, 2.0), torch.ones(3))
    y = x + 0.1 * torch.randn(x.shape, generator=g)
    torch.testing.assert_close(ms_ssim_1d(x, y, 2.0), ms_ssim_1d(y, x, 2.0))
    torch.testing.assert_close(ssim_1d(x, y, 2.0), ssim_1d(y, x, 2.0))
    scores = [float(ms_ssim_1d(x, x + s * torch.randn(x.shape, generator=g), 2.0).mean()) for s in (0.05, 0.2, 0.8)]
    assert 1.0 > scores[0] > scores[1] > scores[2]
    assert ms_ssim_scales(200) == 5 and ms_ssim_scales(150) == 4 and ms_ssim_scales(24) == 2 and ms_ssim_scales(11) == 1
    short = torch.randn(2, 1, 30, generator=g)  # 2 scales with renormalised weights; still 1 on identical series
    torch.testing.assert_close(ms_ssim_1d(short, short, 2.0), torch.ones(2))
    with pytest.raises(ValueError, match="shorter than win_size"):
        ssim_1d(torch.zeros(1, 1, 5), torch.zeros(1, 1, 5), 1.0)
    with pytest.raises(ValueError, match="data_range"):
        ssim_1d(x, x, 0.0)


def test_zoo_bad_input():
    with pytest.raises(ValueError, match="augmentation"):
        create_model("simclr", augmentation="mixup")
    with pytest.raises(ValueError, match="recon"):
        create_model("vae", recon="l1")
    with pytest.raises(ValueError, match=r"Tensor\[B, 2, 96\]"):
        _make("vae")(torch.randn(2, 2, 95))
    with pytest.raises(ValueError, match="at least 2"):
        stage1_step(_make("simclr"), (torch.randn(1, 2, 64),), None, 0, 1)
    with pytest.raises(ValueError, match="views: simclr trains on two augmented views"):
        _make("simclr")(torch.randn(4, 2, 64))


@pytest.mark.parametrize("name", ["simclr", "barlow_twins", "vicreg", "vibcreg"])
def test_ssl_loss_is_the_method_loss_of_the_two_views(name):
    # The training loss is the method's loss between the projections of the two given views (not
    # of one view twice, not of x), and swapping the views leaves it unchanged (all are symmetric).
    from tsvq.data import make_views
    m = _make(name, 64)
    for mod in m.modules():  # BatchNorm with fixed statistics, so separate passes are comparable
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.eval()
    x = torch.randn(8, 2, 64, generator=torch.Generator().manual_seed(0))
    v1, v2 = make_views(x, m.view_spec, torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = m(x, views=(v1, v2))["loss"]
        expected = m.loss_fn(m.projector(m.backbone(v1)), m.projector(m.backbone(v2)))
        torch.testing.assert_close(out, expected)
        torch.testing.assert_close(m(x, views=(v2, v1))["loss"], out, rtol=1e-4, atol=1e-5)
        same = m(x, views=(v1, v1))["loss"]
    assert not torch.isclose(same, out)
