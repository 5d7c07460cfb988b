"""NC-VQVAE: the TimeVQVAE tokenizer with a non-contrastive SSL term on the encoder
(Mathisen & Lokna 2024; the BT-VQVAE variant of the Barlow Twins thesis).

Two views of each series (the original and an augmented one, or two augmented ones for the
BT-VQVAE preset) go through the shared STFT + encoder; the continuous latents (or, with
``original_latent="z_q"``, the original view's quantised latents) are pooled (global average ⊕
global max, or global max), projected (Linear 4096-4096-4096 with BN/ReLU) and compared with
Barlow Twins, VICReg or VIbCReg. Total loss = VQ-VAE loss (on the original view) + ``ssl_weight``
x SSL loss (+ ``aug_recon_weight`` x the augmented views' reconstruction from their continuous
latents). The SSL head (projector) is only used in training. The choices and how they move the
linear probe are compared with the reference code in ``docs/ncvqvae-reference.md``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..data.augment import ViewSpec
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
        original_latent: what the SSL head sees of the original (un-augmented) view: "z", the
            encoder output, or "z_q", its quantised codewords with the straight-through gradient,
            as the NC-VQVAE reference code (erlendlokna/Generative-SSL-VQVAE-modelling,
            ``Exp_SIAM_VQVAE``). Augmented views are always seen as z.
        aug_recon_weight: weight of the reconstruction loss (time + time-frequency MSE) of each
            augmented view decoded from its continuous latent, without quantisation (the
            reference code's ``aug_recon_rate``, 0.1 there); 0 = none.
    """

    ssl_loss: str = "barlow_twins"
    ssl_weight: float | None = None
    augmentation: str = "slice"
    two_augmented_views: bool = False
    pooling: str = "gap_gmp"
    projector_widths: tuple[int, ...] = field(default_factory=lambda: (4096, 4096, 4096))
    original_latent: str = "z"
    aug_recon_weight: float = 0.0


@register_model("ncvqvae", NCVQVAEConfig, trainable=True, tokenizer=True)
class NCVQVAE(VQVAE):
    """VQ-VAE + non-contrastive SSL on the encoder. ``forward(x, views)`` adds ``ssl`` to the loss
    breakdown of :class:`~tsvq.models.vqvae.VQVAE`; in training it needs the two views
    ``tsvq.data.make_views(x, model.view_spec, generator)`` (the run engine makes them)."""

    name = "ncvqvae"

    def __init__(self, cfg: NCVQVAEConfig):
        if cfg.ssl_loss not in SSL_LOSSES:
            raise ValueError(f"ssl_loss must be one of {SSL_LOSSES}, got {cfg.ssl_loss!r}")
        view_spec = ViewSpec(cfg.augmentation, with_original=not cfg.two_augmented_views)
        if cfg.ssl_weight is not None and not 0.0 <= cfg.ssl_weight < math.inf:
            raise ValueError(f"ssl_weight must be a finite number >= 0 or None (the loss's default), got {cfg.ssl_weight}")
        if cfg.original_latent not in ("z", "z_q"):
            raise ValueError(f"original_latent must be 'z' or 'z_q', got {cfg.original_latent!r}")
        if cfg.original_latent == "z_q" and cfg.two_augmented_views:
            raise ValueError("original_latent='z_q' needs an original view: set two_augmented_views=False")
        if not 0.0 <= cfg.aug_recon_weight < math.inf:
            raise ValueError(f"aug_recon_weight must be a finite number >= 0, got {cfg.aug_recon_weight}")
        if cfg.pooling not in ("gap_gmp", "gmp"):
            raise ValueError(f"pooling must be 'gap_gmp' or 'gmp', got {cfg.pooling!r}")
        super().__init__(cfg)
        self.view_spec = view_spec
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
        return self._encode_view(x)[1]

    def _encode_view(self, x: torch.Tensor):
        """(time-frequency parts, continuous latents) of a view, one per branch."""
        parts = self._split(self.to_time_frequency(x))
        return parts, [b.encoder(p) for b, p in zip(self.branches, parts)]

    def _aug_recon(self, view: torch.Tensor, parts, zs) -> torch.Tensor:
        """Time + time-frequency MSE of a view decoded from its continuous latents (no VQ)."""
        u_hats = [b.decoder(z) for b, z in zip(self.branches, zs)]
        recon_tf = sum(F.mse_loss(u_hat, u) for u_hat, u in zip(u_hats, parts))
        return F.mse_loss(self.to_time(sum(u_hats)), view) + recon_tf

    def forward(self, x: torch.Tensor, views: tuple[torch.Tensor, torch.Tensor] | None = None,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Loss breakdown of ``x: Tensor[B, C, L]``; in training ``views`` (two ``Tensor[B, C, L]``)
        are required, and a view that is ``x`` itself reuses the reconstruction pass's latents.

        Raises:
            ValueError: training without ``views`` (or with views of another shape than ``x``).
        """
        out = super().forward(x, generator)
        if self.training:
            if views is None:
                raise ValueError("views: ncvqvae trains on two SSL views; pass "
                                 "views=tsvq.data.make_views(x, model.view_spec, generator)")
            if len(views) != 2 or any(v.shape != x.shape for v in views):
                raise ValueError(f"views must be two tensors of x's shape {list(x.shape)}, "
                                 f"got {[list(v.shape) for v in views]}")
            latents, aug_recon = [], torch.zeros((), device=x.device)
            for view in views:
                if view is x:
                    latents.append(out["z_q"] if self.cfg.original_latent == "z_q" else out["z"])
                    continue
                parts, zs = self._encode_view(view)
                latents.append(zs)
                if self.cfg.aug_recon_weight > 0:
                    aug_recon = aug_recon + self._aug_recon(view, parts, zs)
            ssl = self.ssl(*self.projector.pair(self._pool(latents[0]), self._pool(latents[1])))
            if self.cfg.aug_recon_weight > 0:
                out["aug_recon"] = aug_recon
                out["loss"] = out["loss"] + self.cfg.aug_recon_weight * aug_recon
        else:
            ssl = torch.zeros((), device=x.device)
        out["ssl"] = ssl
        out["loss"] = out["loss"] + self.ssl_weight * ssl
        return out
