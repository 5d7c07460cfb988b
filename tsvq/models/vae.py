"""Gaussian VAE and MS-SSIM-VAE for time series (Kingma & Welling 2014; Snell et al. 2017 for the
perceptual MS-SSIM reconstruction loss; the VAE chapter in ../shared/seeds/004).

Encoder: strided Conv1d + BN + LeakyReLU blocks, flatten, linear maps to the posterior mean and
log-variance ``(mu, log sigma^2)`` of a ``latent_dim`` Gaussian. Reparameterisation
``z = mu + sigma * eps``, ``eps ~ N(0, I)``. Decoder: linear, transposed Conv1d blocks, linear
interpolation back to exactly L.

Loss (``vae``): ``recon + beta_t * KL(q(z|x) || N(0, I))`` with the closed-form KL
``-1/2 sum(1 + log sigma^2 - mu^2 - sigma^2)`` (Kingma & Welling 2014, appendix B) summed over
latent dimensions, and ``recon`` the squared error summed over (C, L) (the Gaussian negative
log-likelihood with variance 1/2, up to a constant); both averaged over the batch. ``beta_t``
rises linearly from 0 to ``beta`` over ``kl_anneal_steps`` training steps (KL annealing, Bowman
et al. 2016) against posterior collapse. ``mssim_vae`` replaces ``recon`` with
``L * (1 - MS-SSIM(x, x_hat))`` (+ ``mse_weight`` x the squared error), MS-SSIM over 1-D
Gaussian windows (:func:`tsvq.eval.ms_ssim_1d`); the factor L keeps it on the scale of a sum
over time so that the same beta means the same trade-off.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import _random
from ..nn.ssim import ms_ssim_1d
from .registry import register_model


@dataclass
class VAEConfig:
    """VAE settings.

    Attributes:
        in_channels, length: input shape ``[B, C, L]``.
        widths: channels of the strided conv blocks (64, 128, 256; each halves the length).
        latent_dim: size of z (16). beta: target KL weight (1). kl_anneal_steps: steps of the
            linear beta warm-up (200; 0 = no annealing).
        recon: "mse" (``vae``) or "ms_ssim" (``mssim_vae``). mse_weight: weight of the squared
            error added to the MS-SSIM term (0). data_range: dynamic range R for MS-SSIM's C1/C2
            (None: set from the train split by ``tsvq train``; 4 if built directly).
    """

    in_channels: int = 1
    length: int = 128
    widths: tuple[int, ...] = (64, 128, 256)
    latent_dim: int = 16
    beta: float = 1.0
    kl_anneal_steps: int = 200
    recon: str = "mse"
    mse_weight: float = 0.0
    data_range: float | None = None


@dataclass
class MSSIMVAEConfig(VAEConfig):
    """:class:`VAEConfig` with the MS-SSIM reconstruction loss."""

    recon: str = "ms_ssim"


@register_model("mssim_vae", MSSIMVAEConfig, trainable=True)
@register_model("vae", VAEConfig, trainable=True)
class VAE(nn.Module):
    """Gaussian VAE over ``Tensor[B, C, L]``. ``forward(x, generator=None)`` returns ``loss``,
    ``recon``, ``kl``, ``beta`` (current weight), ``neg_elbo`` (recon + KL, beta = 1), ``x_hat``."""

    name = "vae"

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        if cfg.recon not in ("mse", "ms_ssim"):
            raise ValueError(f"recon must be 'mse' or 'ms_ssim', got {cfg.recon!r}")
        if cfg.latent_dim < 1 or not cfg.widths:
            raise ValueError("latent_dim must be >= 1 and widths non-empty")
        if cfg.length < 2 ** len(cfg.widths):
            raise ValueError(f"length must be >= {2 ** len(cfg.widths)} for {len(cfg.widths)} stride-2 blocks, "
                             f"got {cfg.length}")
        self.cfg = cfg
        self.name = "mssim_vae" if cfg.recon == "ms_ssim" else "vae"
        self.beta_now = cfg.beta if cfg.kl_anneal_steps <= 0 else 0.0
        enc, c, n = [], cfg.in_channels, cfg.length
        for w in cfg.widths:
            enc += [nn.Conv1d(c, w, 4, 2, 1), nn.BatchNorm1d(w), nn.LeakyReLU(0.2)]
            c, n = w, n // 2
        self.encoder = nn.Sequential(*enc, nn.Flatten())
        self.bottleneck = (c, n)
        self.to_stats = nn.Linear(c * n, 2 * cfg.latent_dim)
        self.from_z = nn.Linear(cfg.latent_dim, c * n)
        dec, widths = [], list(cfg.widths[::-1])
        for a, b in zip(widths[:-1], widths[1:]):
            dec += [nn.ConvTranspose1d(a, b, 4, 2, 1), nn.BatchNorm1d(b), nn.LeakyReLU(0.2)]
        dec += [nn.ConvTranspose1d(widths[-1], cfg.in_channels, 4, 2, 1)]
        self.decoder = nn.Sequential(*dec)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.cfg.in_channels or x.shape[2] != self.cfg.length:
            raise ValueError(f"x must be Tensor[B, {self.cfg.in_channels}, {self.cfg.length}], got {list(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError("x: empty batch")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mu, logvar)``, each ``Tensor[B, latent_dim]``."""
        self._check(x)
        mu, logvar = self.to_stats(self.encoder(x)).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z: Tensor[B, latent_dim] -> x_hat: Tensor[B, C, L]``."""
        h = self.from_z(z).view(z.shape[0], *self.bottleneck)
        return F.interpolate(self.decoder(h), size=self.cfg.length, mode="linear", align_corners=False)

    @staticmethod
    def reparameterize(mu, logvar, generator: torch.Generator | None = None) -> torch.Tensor:
        """``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)`` (gradients flow to mu and logvar)."""
        eps = _random.randn(*mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    @staticmethod
    def kl_divergence(mu, logvar) -> torch.Tensor:
        """Closed-form ``KL(N(mu, sigma^2) || N(0, I))`` per sample, summed over dimensions: ``Tensor[B]``."""
        return -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(-1)

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """Probe features: the posterior mean ``Tensor[B, latent_dim]``."""
        return self.encode(x)[0]

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder output at the posterior mean, ``Tensor[B, C, L]``."""
        return self.decode(self.encode(x)[0])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` series from the prior: ``z ~ N(0, I)`` decoded, ``Tensor[n, C, L]``."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        device = self.to_stats.weight.device
        return self.decode(_random.randn(n, self.cfg.latent_dim, generator=generator, device=device))

    def training_progress(self, step: int, total_steps: int) -> None:
        """Linear KL annealing: ``beta_t = beta * min(1, step / kl_anneal_steps)``."""
        k = self.cfg.kl_anneal_steps
        self.beta_now = self.cfg.beta if k <= 0 else self.cfg.beta * min(1.0, step / k)

    def reconstruction_loss(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """Per-sample reconstruction term ``Tensor[B]`` (see the module docstring)."""
        sq = ((x_hat - x) ** 2).sum(dim=(1, 2))
        if self.cfg.recon == "mse":
            return sq
        r = self.cfg.data_range if self.cfg.data_range is not None else 4.0
        return self.cfg.length * (1 - ms_ssim_1d(x_hat, x, data_range=r)) + self.cfg.mse_weight * sq

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, generator) if self.training else mu
        x_hat = self.decode(z)
        recon = self.reconstruction_loss(x, x_hat).mean()
        kl = self.kl_divergence(mu, logvar).mean()
        return {"loss": recon + self.beta_now * kl, "recon": recon, "kl": kl, "neg_elbo": (recon + kl).detach(),
                "beta": torch.tensor(self.beta_now), "x_hat": x_hat}
