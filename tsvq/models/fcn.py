"""Fully convolutional network (FCN) for time-series classification (Wang, Yan & Oates,
"Time series classification from scratch with deep neural networks: a strong baseline",
IJCNN 2017), the evaluator behind FID / IS / CAS in TimeVQVAE (Lee et al., AISTATS 2023).

Three Conv1d blocks (1 -> 128 k8, 128 -> 256 k5, 256 -> 128 k3; stride 1, TensorFlow "same"
padding: k - 1 zeros, the extra one on the right for even k; BatchNorm, ReLU), global average
pooling over time (the 128-d feature vector used for FID) and a linear head (softmax for IS).

Inputs are scaled like the published evaluator: one mean and one population variance over the
whole *raw* train matrix (:func:`fcn_scale`), for train, test and generated series alike.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model



@dataclass
class FCNConfig:
    """FCN settings (Wang et al. 2017; defaults = the published evaluator).

    Attributes:
        in_channels: input channels C. n_classes: number of classes (>= 1).
        widths / kernel_sizes: channels and kernel size of the three conv blocks.
        length: accepted for registry compatibility; any length works (global pooling).
    """

    in_channels: int = 1
    n_classes: int = 2
    widths: tuple[int, ...] = (128, 256, 128)
    kernel_sizes: tuple[int, ...] = (8, 5, 3)
    length: int | None = None


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, k: int):
        super().__init__()
        # TensorFlow "same" with stride 1: k - 1 zeros, (k - 1) // 2 on the left, the rest on the right
        self.conv = nn.Conv1d(cin, cout, k)
        self.bn = nn.BatchNorm1d(cout)
        self.pad = ((k - 1) // 2, k - 1 - (k - 1) // 2)

    def forward(self, x):
        return F.relu(self.bn(self.conv(F.pad(x, self.pad))))


@register_model("fcn", FCNConfig)
class FCN(nn.Module):
    """``features(x: Tensor[B, C, L]) -> Tensor[B, 128]`` (pooled), ``forward(x) -> logits [B, n_classes]``."""

    name = "fcn"

    def __init__(self, cfg: FCNConfig):
        super().__init__()
        if cfg.n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {cfg.n_classes}")
        if len(cfg.widths) != len(cfg.kernel_sizes):
            raise ValueError("widths and kernel_sizes must have the same length")
        self.cfg = cfg
        chans = (cfg.in_channels, *cfg.widths)
        self.blocks = nn.ModuleList(_ConvBlock(a, b, k) for a, b, k in zip(chans[:-1], chans[1:], cfg.kernel_sizes))
        self.head = nn.Linear(chans[-1], cfg.n_classes)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.cfg.in_channels:
            raise ValueError(f"x must be Tensor[B, {self.cfg.in_channels}, L], got {list(x.shape)}")
        if x.shape[0] == 0 or x.shape[2] == 0:
            raise ValueError(f"x: empty batch or series, got {list(x.shape)}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled features ``Tensor[B, widths[-1]]`` (the FID features)."""
        self._check(x)
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def fcn_scale(x: torch.Tensor, x_train_raw: torch.Tensor) -> torch.Tensor:
    """Scale ``x: Tensor[N, C, L]`` (raw data units) like the published FCN evaluator:
    ``(x - mean) / sqrt(var)`` with ONE mean and ONE population variance over the whole raw train
    matrix (float64), then NaN -> 0; for ``C > 1`` (tsvq's own FCN only: the published one is
    univariate) one mean and variance per channel, as the models' scaling. Returns float32."""
    t = x_train_raw.double()
    if t.dim() == 3 and t.shape[1] > 1:
        mean = t.mean(dim=(0, 2), keepdim=True)
        std = t.var(dim=(0, 2), unbiased=False, keepdim=True).sqrt()
        return torch.nan_to_num((x.double() - mean) / std).float()
    mean, var = float(t.mean()), float(t.var(unbiased=False))
    return torch.nan_to_num((x.double() - mean) / math.sqrt(var)).float()


def load_supervised_fcn(path: str | os.PathLike, in_channels: int = 1) -> FCN:
    """Load a per-dataset FCN state dict of ``danelee2601/supervised-FCN`` (v1, the weights of the
    TimeVQVAE paper's FID / IS / CAS; e.g. ``../shared/fcn/supervised_fcn_v1/GunPoint.ckpt``) into
    :class:`FCN` through a key mapping (``layers.{i}.layers.0`` -> ``blocks.{i}.conv``,
    ``layers.{i}.layers.1`` -> ``blocks.{i}.bn``, ``final`` -> ``head``). Returned in eval mode.

    Raises:
        FileNotFoundError: no such file. KeyError/RuntimeError: not an FCN state dict of that layout.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FCN weights {path} not found")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    mapped = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "final":
            mapped["head." + ".".join(parts[1:])] = value
        elif parts[0] == "layers" and len(parts) == 5 and parts[2] == "layers" and parts[3] in ("0", "1"):
            mapped[f"blocks.{parts[1]}.{'conv' if parts[3] == '0' else 'bn'}.{parts[4]}"] = value
        else:
            raise KeyError(f"{path}: unexpected key {key!r} for a supervised-FCN state dict")
    if "head.weight" not in mapped:
        raise KeyError(f"{path}: no 'final.weight' (not a supervised-FCN state dict)")
    widths = tuple(mapped[f"blocks.{i}.conv.weight"].shape[0] for i in range(3))
    kernels = tuple(mapped[f"blocks.{i}.conv.weight"].shape[2] for i in range(3))
    model = FCN(FCNConfig(in_channels=in_channels, n_classes=mapped["head.weight"].shape[0], widths=widths,
                          kernel_sizes=kernels))
    model.load_state_dict(mapped, strict=True)
    return model.eval()


@torch.no_grad()
def fcn_predict(model: FCN, x: torch.Tensor, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features Tensor[N, 128], probabilities Tensor[N, n_classes])`` of scaled ``x`` in eval mode (CPU)."""
    model.eval()
    device = next(model.parameters()).device
    feats, probs = [], []
    for i in range(0, len(x), batch_size):
        f = model.features(x[i:i + batch_size].to(device))
        feats.append(f.cpu())
        probs.append(model.head(f).softmax(-1).cpu())
    return torch.cat(feats), torch.cat(probs)
