"""The optimiser and schedule every tsvq training loop uses (tokenizers, the prior, the FCN evaluator)."""
from __future__ import annotations

from typing import Iterable

import torch


def adamw(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """``torch.optim.AdamW`` (Loshchilov & Hutter 2019) with PyTorch's fused implementation when every
    parameter is on a CPU or a CUDA device: one kernel over all parameters per step instead of about
    ten per parameter (torch's default on CPUs). Same update rule; results differ from the per-parameter
    loop only by rounding (timings: ``benchmarks/RESULTS.md``, model step).

    Args:
        params: the parameters to optimise (an iterable, consumed once).
        lr: learning rate.
        weight_decay: decoupled weight decay.
    """
    params = list(params)
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


def total_steps(cfg, steps_per_epoch: int) -> int:
    """Optimiser steps of a run: ``min(epochs * steps_per_epoch, max_steps)`` (max_steps <= 0: no cap), >= 1."""
    total = cfg.epochs * steps_per_epoch
    return max(1, min(total, cfg.max_steps) if cfg.max_steps > 0 else total)


def adamw_cosine(model: torch.nn.Module, cfg, steps_per_epoch: int) -> dict:
    """Lightning optimiser config: :func:`adamw` (``cfg.lr``, ``cfg.weight_decay``) with a per-step
    cosine schedule over all :func:`total_steps` of the run."""
    opt = adamw(model.parameters(), cfg.lr, cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps(cfg, steps_per_epoch))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
