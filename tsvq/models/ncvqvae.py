"""NC-VQVAE: the TimeVQVAE tokenizer with a non-contrastive SSL term on the encoder
(Mathisen & Lokna 2024; the BT-VQVAE variant of the Barlow Twins thesis).

Two views of each series (the original and an augmented one, or two augmented ones for the
BT-VQVAE preset) go through the shared STFT + encoder; the continuous latents are pooled (global
average ⊕ global max, or global max), projected (Linear 4096-4096-4096 with BN/ReLU) and compared
with Barlow Twins, VICReg or VIbCReg. Total loss = VQ-VAE loss (on the original view) +
``ssl_weight`` x SSL loss. The SSL head (projector) is only used in training.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..data.augment import PRESETS, augment
from ..nn import BarlowTwinsLoss, Projector, VIbCRegLoss, VICRegLoss
from .registry import register_model
from .vqvae import VQVAE, VQVAEConfig

SSL_LOSSES = ("barlow_twins", "vicreg", "vibcreg")
DEFAULT_SSL_WEIGHT = {"barlow_twins": 1.0, "vicreg": 0.01, "vibcreg": 0.01}


@dataclass
class NCVQVAEConfig(VQVAEConfig):
    """VQ-VAE settings plus the SSL head (SPEC section 4).

    Attributes:
        ssl_loss: "barlow_twins" (lambda 0.005, loss / projector width), "vicreg" (25, 25, 1) or
            "vibcreg" (25, 25, 100, IterNorm after the projector).
        ssl_weight: weight of the SSL term; None = 1 for Barlow Twins, 0.01 for (VI(b))CReg.
        augmentation: view augmentation set, "slice" | "warp" | "gauss" (NC-VQVAE) | "bt" (BT-VQVAE).
        two_augmented_views: both views augmented (BT-VQVAE) instead of original + augmented.
        pooling: "gap_gmp" (global average ⊕ global max, 2d features) or "gmp" (d features).
        projector_widths: hidden/output widths of the projector.
    """

    ssl_loss: str = "barlow_twins"
    ssl_weight: float | None = None
    augmentation: str = "slice"
    two_augmented_views: bool = False
    pooling: str = "gap_gmp"
    projector_widths: tuple[int, ...] = field(default_factory=lambda: (4096, 4096, 4096))


@register_model("ncvqvae", NCVQVAEConfig, trainable=True, tokenizer=True)
class NCVQVAE(VQVAE):
    """VQ-VAE + non-contrastive SSL on the encoder. ``forward(x, generator=None)`` adds
    ``ssl`` to the loss breakdown of :class:`~tsvq.models.vqvae.VQVAE`."""

    name = "ncvqvae"

    def __init__(self, cfg: NCVQVAEConfig):
        if cfg.ssl_loss not in SSL_LOSSES:
            raise ValueError(f"ssl_loss must be one of {SSL_LOSSES}, got {cfg.ssl_loss!r}")
        if cfg.augmentation not in PRESETS:
            raise ValueError(f"augmentation must be one of {sorted(PRESETS)}, got {cfg.augmentation!r}")
        if cfg.ssl_weight is not None and not 0.0 <= cfg.ssl_weight < math.inf:
            raise ValueError(f"ssl_weight must be a finite number >= 0 or None (the loss's default), got {cfg.ssl_weight}")
        if cfg.pooling not in ("gap_gmp", "gmp"):
            raise ValueError(f"pooling must be 'gap_gmp' or 'gmp', got {cfg.pooling!r}")
        super().__init__(cfg)
        n_branches = 2 if cfg.two_branch else 1
        in_dim = cfg.d * n_branches * (2 if cfg.pooling == "gap_gmp" else 1)
        widths = tuple(cfg.projector_widths)
        self.projector = Projector(in_dim, widths, final_iternorm=cfg.ssl_loss == "vibcreg")
        if cfg.ssl_loss == "barlow_twins":
            self.ssl = BarlowTwinsLoss(lambd=0.005, scale_by_dim=True)
        elif cfg.ssl_loss == "vicreg":
            self.ssl = VICRegLoss(25.0, 25.0, 1.0)
        else:
            self.ssl = VIbCRegLoss(25.0, 25.0, 100.0)
        self.ssl_weight = DEFAULT_SSL_WEIGHT[cfg.ssl_loss] if cfg.ssl_weight is None else cfg.ssl_weight

    def _pool(self, zs: list[torch.Tensor]) -> torch.Tensor:
        feats = []
        for t in zs:
            if self.cfg.pooling == "gap_gmp":
                feats += [t.mean(dim=(2, 3)), t.amax(dim=(2, 3))]
            else:
                feats.append(t.amax(dim=(2, 3)))
        return torch.cat(feats, 1)

    def _latent(self, x: torch.Tensor):
        u = self.to_time_frequency(x)
        return [b.encoder(p) for b, p in zip(self.branches, self._split(u))]

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        out = super().forward(x, generator)
        if self.training:
            if x.shape[0] < 2:
                raise ValueError("x: the SSL loss needs a batch of at least 2 series in training")
            view_a = augment(x, self.cfg.augmentation, generator) if self.cfg.two_augmented_views else None
            view_b = augment(x, self.cfg.augmentation, generator)
            z_a = out["z"] if view_a is None else self._latent(view_a)
            z_b = self._latent(view_b)
            ssl = self.ssl(self.projector(self._pool(z_a)), self.projector(self._pool(z_b)))
        else:
            ssl = torch.zeros((), device=x.device)
        out["ssl"] = ssl
        out["loss"] = out["loss"] + self.ssl_weight * ssl
        return out
