"""The optimiser every tsvq training loop uses (tokenizers, the prior, the FCN evaluator)."""
from __future__ import annotations

from typing import Iterable

import torch


def adamw(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """``torch.optim.AdamW`` (Loshchilov & Hutter 2019) with PyTorch's fused implementation when every
    parameter is on a CPU or a CUDA device: one kernel over all parameters per step instead of about
    ten per parameter (torch's default on CPUs). Same update rule; results differ from the per-parameter
    loop only by rounding. On the NC-VQVAE model with the paper's projector (35 M parameters) a step
    of it takes 25 ms instead of 164 ms on a 2-core CPU (a seventh of the whole training step).

    Args:
        params: the parameters to optimise (an iterable, consumed once).
        lr: learning rate.
        weight_decay: decoupled weight decay.
    """
    params = list(params)
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)
