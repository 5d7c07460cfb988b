"""One LightningModule for every tsvq training run (stage-1 models, the prior, the zoo)."""
from __future__ import annotations

import random
import time
from typing import Callable

import lightning.pytorch as pl
import numpy as np
import torch

from ..data import make_views
from .optim import adamw_cosine, total_steps

# ``step(model, batch, generator, step, total_steps) -> dict`` of losses; "loss" is optimised.
StepFn = Callable[[torch.nn.Module, tuple, torch.Generator, int, int], dict]


def stage1_step(model, batch, generator, step: int, total: int) -> dict:
    """Training step of a stage-1 model: ``model(x, generator=...)`` on a batch ``(x,)``. Models
    with a ``view_spec`` (the SSL models) also get their two views, drawn here from ``generator``;
    models with a schedule (BYOL's target EMA, the VAEs' KL annealing) get
    ``training_progress(step, total)`` first."""
    (x,) = batch
    if hasattr(model, "training_progress"):
        model.training_progress(step, total)
    spec = getattr(model, "view_spec", None)
    if spec is None:
        return model(x, generator=generator)
    return model(x, views=make_views(x, spec, generator), generator=generator)


def prior_step(model, batch, generator, step: int, total: int) -> dict:
    """Training step of the MaskGIT prior on a batch ``(*token grids, y)``."""
    *tokens, y = batch
    return model.loss(tokens, y, generator=generator)


class TrainModule(pl.LightningModule):
    """Trains ``model`` with ``step`` under AdamW and a per-step cosine schedule.

    Each optimiser step draws its random numbers (augmentations, masks, restarts) from a generator
    seeded with ``(seed, global step)``, so they depend on the step, not on the history of the
    process. The checkpoint also carries the global RNG states (dropout, initialisations) and the
    data loader's shuffle generator, so a resumed run continues exactly where the saved one stood.

    Args:
        model: the ``nn.Module`` to train (its state dict is saved under ``model.``).
        step: a :data:`StepFn` returning a dict with a scalar ``"loss"``; every other scalar is
            logged as ``train/<name>`` once per epoch.
        cfg: a run config with ``seed``, ``lr``, ``weight_decay``, ``epochs``, ``max_steps``.
        steps_per_epoch: optimiser steps per epoch (for the schedule).
        shuffle: the data loader's generator (its state is saved with the checkpoint), or None.
        on_epoch_end: called as ``on_epoch_end(module, epoch)`` after each epoch; returns a dict of
            numbers to log (e.g. probe accuracies) or None.
    """

    def __init__(self, model: torch.nn.Module, step: StepFn, cfg, steps_per_epoch: int,
                 shuffle: torch.Generator | None = None, on_epoch_end=None):
        super().__init__()
        self.model = model
        self._step = step
        self._cfg = cfg
        self._steps_per_epoch = steps_per_epoch
        self._shuffle = shuffle
        self._on_epoch_end = on_epoch_end
        self._epoch_start: float | None = None
        self._epoch_times: list[float] = []  # this session's epochs

    def training_step(self, batch, batch_idx):
        n = batch[-1].shape[0]
        g = torch.Generator(device=batch[0].device).manual_seed(self._cfg.seed * 1_000_003 + self.global_step)
        out = self._step(self.model, batch, g, self.global_step, total_steps(self._cfg, self._steps_per_epoch))
        logs = {f"train/{k}": v.detach() for k, v in out.items() if isinstance(v, torch.Tensor) and v.dim() == 0}
        self.log_dict(logs, on_step=False, on_epoch=True, batch_size=n)
        self.log("loss", out["loss"].detach(), on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        return out["loss"]

    def on_train_epoch_start(self):
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self):
        if self._epoch_start is not None:  # None when a resumed run re-enters the end of its saved epoch
            self._epoch_times.append(time.perf_counter() - self._epoch_start)
            self.log("epoch_time_s", self._epoch_times[-1], on_epoch=True)
            # the run's figure: the mean over this session's epochs (the last one includes the final saves)
            self.log("epoch_time_mean_s", sum(self._epoch_times) / len(self._epoch_times), on_epoch=True)
        if self._on_epoch_end is not None:
            logs = self._on_epoch_end(self, self.current_epoch)
            if logs:
                self.log_dict(logs, on_epoch=True)

    def configure_optimizers(self):
        return adamw_cosine(self.model, self._cfg, self._steps_per_epoch)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        # plain types and tensors only: Lightning loads checkpoints with torch.load(weights_only=True)
        rng = {"torch": torch.get_rng_state(), "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
               "python": random.getstate()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        if self._shuffle is not None:
            rng["shuffle"] = self._shuffle.get_state()
        checkpoint["tsvq_rng"] = rng

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        rng = checkpoint.get("tsvq_rng")
        if rng is None:  # a checkpoint written before the states were saved
            return
        torch.set_rng_state(rng["torch"])
        kind, keys, pos, has_gauss, gauss = rng["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        random.setstate(rng["python"])
        if "cuda" in rng and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(rng["cuda"])
        if self._shuffle is not None and "shuffle" in rng:
            self._shuffle.set_state(rng["shuffle"])
