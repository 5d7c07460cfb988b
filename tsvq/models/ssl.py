"""Standalone self-supervised encoders on a ResNet-1D backbone: SimCLR, BYOL, Barlow Twins,
VICReg and VIbCReg, the image-style SSL methods that Lee & Aune 2021 ("Computer Vision
Self-supervised Learning Methods on Time Series") and the NC-VQVAE thesis compare with.

Every model trains on two augmented views of each series (``model.view_spec``: a
``tsvq.data.augment`` preset, default ``bt``: amplitude resize, flip, slope, STFT phase shift,
jitter; made by ``tsvq.data.make_views``, which the run engine calls), encodes them with the shared
backbone (global average pooling -> the representation) and a projector, and applies its loss.
``representation(x)`` (the pooled backbone output, never the projector's) feeds the probes.

Sources: SimCLR (Chen et al. 2020, NT-Xent eq. 1), BYOL (Grill et al. 2020, eq. 2 and the
cosine schedule of the target decay, section 3.2 / appendix), Barlow Twins (Zbontar et al. 2021),
VICReg (Bardes et al. 2022), VIbCReg (Lee & Aune 2021).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.augment import ViewSpec
from ..nn import BarlowTwinsLoss, NTXentLoss, Projector, VIbCRegLoss, VICRegLoss
from .registry import register_model


class _ResBlock1d(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv1d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm1d(cout)
        self.conv2 = nn.Conv1d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm1d(cout)
        self.skip = (nn.Sequential(nn.Conv1d(cin, cout, 1, stride, bias=False), nn.BatchNorm1d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.skip(x))


class ResNet1d(nn.Module):
    """ResNet-1D encoder (the backbone style of Lee & Aune 2021): a Conv1d(k=7) + BN + ReLU stem,
    then one residual block of two Conv1d(k=3) per width (stride 2 from the second width on),
    global average pooling. ``Tensor[B, C, L] -> Tensor[B, widths[-1]]``; any L >= 1."""

    def __init__(self, in_channels: int, widths: tuple[int, ...] = (64, 128, 256)):
        super().__init__()
        if not widths:
            raise ValueError("widths must name at least one stage")
        self.stem = nn.Sequential(nn.Conv1d(in_channels, widths[0], 7, 1, 3, bias=False), nn.BatchNorm1d(widths[0]),
                                  nn.ReLU())
        dims = (widths[0], *widths)
        self.blocks = nn.Sequential(*[_ResBlock1d(dims[i], dims[i + 1], 1 if i == 0 else 2) for i in range(len(widths))])
        self.out_dim = widths[-1]

    def forward(self, x):
        return self.blocks(self.stem(x)).mean(dim=-1)


SSL_METHODS = ("simclr", "byol", "barlow_twins", "vicreg", "vibcreg")


@dataclass
class SSLConfig:
    """Settings shared by the standalone SSL encoders.

    Attributes:
        in_channels, length: input shape (length is only checked).
        widths: ResNet-1D widths (64, 128, 256); the representation has ``widths[-1]`` features.
        projector_widths: projector MLP widths (None: the method's default: SimCLR (512, 128),
            BYOL (4096, 256), Barlow Twins / VICReg / VIbCReg (4096, 4096, 4096)).
        augmentation: ``tsvq.data.augment`` preset of both views (default "bt").
        temperature: NT-Xent tau (SimCLR, 0.5). tau_base: BYOL target decay at step 0 (0.99,
            raised to 1 with a cosine schedule). predictor_hidden: BYOL predictor width (4096).
        lambd: Barlow Twins off-diagonal weight (0.005).
    """

    in_channels: int = 1
    length: int = 128
    widths: tuple[int, ...] = (64, 128, 256)
    projector_widths: tuple[int, ...] | None = None
    augmentation: str = "bt"
    temperature: float = 0.5
    tau_base: float = 0.99
    predictor_hidden: int = 4096
    lambd: float = 0.005


DEFAULT_PROJECTOR = {"simclr": (512, 128), "byol": (4096, 256), "barlow_twins": (4096, 4096, 4096),
                     "vicreg": (4096, 4096, 4096), "vibcreg": (4096, 4096, 4096)}


class SSLEncoder(nn.Module):
    """Base class: backbone + projector + two augmented views. Subclasses set ``method``."""

    method = ""

    def __init__(self, cfg: SSLConfig):
        super().__init__()
        self.view_spec = ViewSpec(cfg.augmentation)
        self.cfg = cfg
        self.name = self.method
        self.backbone = ResNet1d(cfg.in_channels, tuple(cfg.widths))
        widths = tuple(cfg.projector_widths or DEFAULT_PROJECTOR[self.method])
        self.projector = Projector(self.backbone.out_dim, widths, final_iternorm=self.method == "vibcreg")
        self.loss_fn = self.make_loss(cfg)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.cfg.in_channels:
            raise ValueError(f"x must be Tensor[B, {self.cfg.in_channels}, L], got {list(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError("x: empty batch")

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """Probe features: the pooled backbone output ``Tensor[B, widths[-1]]`` (no projector)."""
        self._check(x)
        return self.backbone(x)

    def _views(self, x: torch.Tensor, views) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(x)
        if views is None:
            raise ValueError(f"views: {self.method} trains on two augmented views; pass "
                             "views=tsvq.data.make_views(x, model.view_spec, generator)")
        if len(views) != 2 or any(v.shape != x.shape for v in views):
            raise ValueError(f"views must be two tensors of x's shape {list(x.shape)}, "
                             f"got {[list(v.shape) for v in views]}")
        return views

    def make_loss(self, cfg: SSLConfig) -> nn.Module:
        """The method's loss on two batches of projections (set as ``self.loss_fn``)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, views: tuple[torch.Tensor, torch.Tensor] | None = None,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Training loss ``{"loss", "ssl"}`` on the two views (``Tensor[B, C, L]`` each, B >= 2) of
        ``x: Tensor[B, C, L]``, made by ``tsvq.data.make_views(x, model.view_spec, generator)``.

        Raises:
            ValueError: bad ``x``, ``views`` missing or not two tensors of x's shape.
        """
        v1, v2 = self._views(x, views)
        loss = self.loss_fn(*self.projector.pair(self.backbone(v1), self.backbone(v2)))
        return {"loss": loss, "ssl": loss.detach()}


@register_model("simclr", SSLConfig, trainable=True)
class SimCLR(SSLEncoder):
    """SimCLR: NT-Xent over the 2N projected views (temperature ``cfg.temperature``)."""

    method = "simclr"

    def make_loss(self, cfg: SSLConfig) -> nn.Module:
        return NTXentLoss(cfg.temperature)


@register_model("barlow_twins", SSLConfig, trainable=True)
class BarlowTwins(SSLEncoder):
    """Barlow Twins: cross-correlation of the standardised projections towards the identity."""

    method = "barlow_twins"

    def make_loss(self, cfg: SSLConfig) -> nn.Module:
        return BarlowTwinsLoss(lambd=cfg.lambd)


@register_model("vicreg", SSLConfig, trainable=True)
class VICReg(SSLEncoder):
    """VICReg: invariance 25, variance 25, covariance 1."""

    method = "vicreg"

    def make_loss(self, cfg: SSLConfig) -> nn.Module:
        return VICRegLoss(25.0, 25.0, 1.0)


@register_model("vibcreg", SSLConfig, trainable=True)
class VIbCReg(SSLEncoder):
    """VIbCReg: invariance 25, variance 25, normalised covariance 200, IterNorm after the projector."""

    method = "vibcreg"

    def make_loss(self, cfg: SSLConfig) -> nn.Module:
        return VIbCRegLoss(25.0, 25.0, 200.0)


@register_model("byol", SSLConfig, trainable=True)
class BYOL(SSLEncoder):
    """BYOL: online backbone + projector + predictor regress the target network's projection of
    the other view; symmetric loss ``2 - 2 cos(q(z1), sg(z2')) + 2 - 2 cos(q(z2), sg(z1'))``
    (eq. 2, both directions, averaged over the batch). The target (backbone + projector) is an
    exponential moving average of the online network with decay
    ``tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2`` at step k of K (from 0.99 to 1), updated
    by :meth:`training_progress` before every training step; it never receives gradients.
    """

    method = "byol"

    def __init__(self, cfg: SSLConfig):
        super().__init__(cfg)
        out = self.projector.net[-1].out_features
        self.predictor = Projector(out, (cfg.predictor_hidden, out))
        self.target_backbone = copy.deepcopy(self.backbone)
        self.target_projector = copy.deepcopy(self.projector)
        for p in (*self.target_backbone.parameters(), *self.target_projector.parameters()):
            p.requires_grad_(False)
        self.tau = cfg.tau_base

    def make_loss(self, cfg: SSLConfig) -> None:
        return None  # the regression loss needs the target network: computed in forward

    @torch.no_grad()
    def training_progress(self, step: int, total_steps: int) -> None:
        """EMA update of the target from the online network (skipped at step 0)."""
        self.tau = 1 - (1 - self.cfg.tau_base) * (math.cos(math.pi * step / max(1, total_steps)) + 1) / 2
        if step == 0:
            return
        for online, target in ((self.backbone, self.target_backbone), (self.projector, self.target_projector)):
            for po, pt in zip(online.parameters(), target.parameters()):
                pt.mul_(self.tau).add_(po.detach(), alpha=1 - self.tau)
            for bo, bt in zip(online.buffers(), target.buffers()):
                bt.copy_(bo)

    def forward(self, x: torch.Tensor, views: tuple[torch.Tensor, torch.Tensor] | None = None,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        v1, v2 = self._views(x, views)
        q1, q2 = self.predictor.pair(*self.projector.pair(self.backbone(v1), self.backbone(v2)))
        with torch.no_grad():
            t1, t2 = self.target_projector.pair(self.target_backbone(v1), self.target_backbone(v2))
        loss = (2 - 2 * F.cosine_similarity(q1, t2, dim=-1)).mean() + (2 - 2 * F.cosine_similarity(q2, t1, dim=-1)).mean()
        return {"loss": loss, "ssl": loss.detach(), "tau": torch.tensor(self.tau)}
