"""Evaluation passes of a trained model over a split: probe features, reconstructions, codes."""
from __future__ import annotations

import torch

from ..nn.ssim import ms_ssim_1d


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def encode_split(model, x: torch.Tensor, batch_size: int = 256, data_range: float | None = None) -> dict:
    """Evaluation pass over ``x: Tensor[N, C, L]`` (eval mode, batches, results on the CPU).

    Returns a dict: ``features`` (probe features ``[N, F]``: pooled z_q of a tokenizer, the
    representation of the other models); for models that reconstruct, ``mse_time`` ``[N]`` and,
    with ``data_range``, ``ms_ssim`` ``[N]``; for tokenizers also ``mse_timefreq`` ``[N]`` and
    ``codes`` ``int64[N, tokens]`` (the branches' code grids flattened and concatenated).
    """
    model.eval()
    device = _device(model)
    tokenizer = hasattr(model, "decode_indices")
    parts: dict[str, list] = {}

    def add(key, value):
        parts.setdefault(key, []).append(value.cpu())

    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device)
        if tokenizer:
            _, z_q, codes = model.encode(xb)
            add("features", torch.cat([t.mean(dim=(2, 3)) for t in z_q], 1))
            x_hat = model.decode(z_q)
            u, u_hat = model.to_time_frequency(xb), model.to_time_frequency(x_hat)
            add("mse_timefreq", ((u_hat - u) ** 2).mean(dim=(1, 2, 3)))
            add("codes", torch.cat([c.flatten(1) for c in codes], 1))
        else:
            add("features", model.representation(xb))
            x_hat = model.reconstruct(xb) if hasattr(model, "reconstruct") else None
        if x_hat is not None:
            add("mse_time", ((x_hat - xb) ** 2).mean(dim=(1, 2)))
            if data_range is not None and xb.shape[-1] >= 11:  # MS-SSIM's 11-sample window
                add("ms_ssim", ms_ssim_1d(x_hat, xb, data_range))
    return {k: torch.cat(v) for k, v in parts.items()}


@torch.no_grad()
def tokenize(tokenizer, x: torch.Tensor, batch_size: int = 256) -> list[torch.Tensor]:
    """Codes of ``x: Tensor[N, C, L]`` (tokenizer units) under the frozen tokenizer: one
    ``int64[N, F', T']`` per branch, on the CPU."""
    tokenizer.eval()
    device = _device(tokenizer)
    out: list[list[torch.Tensor]] | None = None
    for i in range(0, len(x), batch_size):
        codes = tokenizer.encode(x[i:i + batch_size].to(device))[2]
        out = [[c.cpu()] for c in codes] if out is None else [o + [c.cpu()] for o, c in zip(out, codes)]
    return [torch.cat(o) for o in out]
